"""Importing a ``python`` tool's function: from the network's folder, or the installed environment.

``package.module:function`` is looked up first in the folder of the network file, then
among the installed packages. A module of the folder is imported with the folder first on
``sys.path`` for that import only, and what the import put in ``sys.modules`` under the
folder's top-level names is taken out again afterwards (what was there before is put
back): two networks in different folders may each have a ``tools.py`` of their own, and a
module of one folder never shadows another's, nor an installed package, for the rest of
the process. Imports a module makes while it is imported resolve in its folder; imports a
function makes later, when it is called, are ordinary imports (from ``sys.path``).

A module is imported once per process and folder, and again when its file changes (its
modification time): a running ``netrun serve`` picks up an edited module at the next run.
A folder module named like a standard-library module is not imported from the folder
(the standard library's stays what every other import in the process sees).
"""

from __future__ import annotations

import importlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..python_refs import folder_modules, split_ref
from ..runtime.results import RunError

_LOCK = threading.Lock()
"""Imports from a folder change ``sys.path`` and ``sys.modules`` for their duration: one at a time."""


@dataclass(frozen=True)
class _Loaded:
    module: ModuleType
    mtime: int | None


_CACHE: dict[tuple[str, str], _Loaded] = {}


class PythonImportError(RunError):
    """A ``python`` tool's module cannot be imported, or has no such function: the run
    cannot offer the tool (``netrun validate`` reports what it can find out beforehand)."""


def _owned(name: str, tops: frozenset[str]) -> bool:
    return name.partition(".")[0] in tops


def folder_names(folder: Path) -> frozenset[str]:
    """The top-level module names the folder defines (:func:`netrun.python_refs.folder_modules`)."""
    return frozenset(folder_modules(folder))


def _mtime(module: ModuleType) -> int | None:
    file = getattr(module, "__file__", None)
    try:
        return Path(file).stat().st_mtime_ns if file else None
    except OSError:
        return None


def load_module(folder: Path, dotted: str) -> ModuleType:
    """The module ``dotted``, from ``folder`` when the folder defines its top-level name, else
    from the installed environment. Raises :class:`PythonImportError` (any exception the module
    raises while it is imported is reported in it)."""
    base = folder.resolve()
    tops = folder_names(base)
    if dotted.partition(".")[0] not in tops:
        try:
            return importlib.import_module(dotted)
        except Exception as exc:
            raise PythonImportError(_why(dotted, exc)) from exc
    key = (str(base), dotted)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.mtime == _mtime(cached.module):
            return cached.module
        saved = {name: sys.modules.pop(name) for name in list(sys.modules) if _owned(name, tops)}
        sys.path.insert(0, str(base))
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(dotted)
        except Exception as exc:
            raise PythonImportError(_why(dotted, exc)) from exc
        finally:
            sys.path.remove(str(base))
            for name in [n for n in sys.modules if _owned(n, tops)]:
                del sys.modules[name]
            sys.modules.update(saved)
        _CACHE[key] = _Loaded(module, _mtime(module))
        return module


def load_function(folder: Path, ref: str) -> Any:
    """The function ``package.module:function`` names (see :func:`load_module`)."""
    try:
        dotted, name = split_ref(ref)
    except ValueError as exc:
        raise PythonImportError(str(exc)) from None
    module = load_module(folder, dotted)
    try:
        function = getattr(module, name)
    except AttributeError:
        raise PythonImportError(f"module '{dotted}' has no function '{name}'") from None
    if not callable(function):
        raise PythonImportError(f"'{ref}' is a {type(function).__name__}, not a function")
    return function


def _why(dotted: str, exc: Exception) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name is not None and dotted.startswith(exc.name):
        return f"no module named '{exc.name}' (in the network's folder or the installed environment)"
    return f"importing '{dotted}' raised {type(exc).__name__}: {exc}"


__all__ = ["PythonImportError", "folder_names", "load_function", "load_module", "split_ref"]
