"""``package.module:function`` references of ``python`` tools, read the same way by
``netrun validate`` (:mod:`netrun.check.python_tools`, which runs no user code) and by the run
that imports them (:mod:`netrun.tools.python_import`)."""

from __future__ import annotations

import sys
from pathlib import Path


def split_ref(ref: str) -> tuple[str, str]:
    """``package.module:function`` -> (``package.module``, ``function``); ValueError if malformed."""
    module, sep, function = ref.partition(":")
    parts = module.split(".")
    if not sep or not all(p.isidentifier() for p in parts) or not function.isidentifier():
        raise ValueError(f"'{ref}' is not 'package.module:function'")
    return module, function


def folder_modules(folder: Path) -> list[str]:
    """The top-level module names a network's folder defines (``x.py``, a folder ``x/`` with
    Python files), sorted; the standard library's and netrun's own names are not the folder's
    to take (an ``os.py`` or a ``netrun/`` there is not imported in their place)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    names = []
    for entry in entries:
        if entry.suffix == ".py" and entry.stem.isidentifier():
            names.append(entry.stem)
        elif entry.is_dir() and entry.name.isidentifier() and any(entry.glob("*.py")):
            names.append(entry.name)
    return [n for n in names if n not in sys.stdlib_module_names and n != "netrun"]


__all__ = ["folder_modules", "split_ref"]
