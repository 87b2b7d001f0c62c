"""Finding a network used as a tool: the valid file of that name in the caller's folder.

The engines do not validate files; whoever builds one passes a finder
(``LocalEngine(networks=...)``): the CLI and ``netrun test`` pass :func:`find_network`,
``netrun serve`` answers from what it serves and falls back to it.
"""

from __future__ import annotations

from pathlib import Path

from .spec import NetworkSpec
from .validate import network_names, validate_paths


def find_network(folder: Path, name: str) -> NetworkSpec | None:
    """The valid network named ``name`` among the files of ``folder`` (None: there is none)."""
    for path, declared in network_names(folder).items():
        if declared == name:
            result = validate_paths([path])
            spec = result.files[0].spec if result.files and not result.errors else None
            if spec is not None:
                return spec
    return None
