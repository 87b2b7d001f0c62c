"""Where netrun keeps its files: the one rule every layer reads.

The journal (``runs.db``), SQLite thread stores and the work folders of sandboxed commands
live in the engine's data directory: ``$NETRUN_DATA_DIR`` (when set and not empty), else
``.netrun`` in the current folder, for ``netrun run``, ``netrun serve`` and the Python API
alike. A run carries its engine's directory (``ToolContext.data_dir``); this default is for
what runs without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def data_dir(environ: Mapping[str, str]) -> Path:
    """``$NETRUN_DATA_DIR`` when set and not empty, else ``.netrun``."""
    return Path(environ.get("NETRUN_DATA_DIR") or ".netrun")


__all__ = ["data_dir"]
