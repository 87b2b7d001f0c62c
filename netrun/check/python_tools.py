"""Check phase, ``python`` tools: the module can be found and has the function, without
running any of the user's code.

What is checked, and how:

* ``python`` is ``package.module:function`` (dotted identifiers, one colon).
* The module is found as the run will import it: in the network file's folder first (its
  files and folders, walked part by part), else in the installed environment
  (``importlib``'s path finder, one part at a time, so no package's ``__init__`` runs).
* When the module is Python source, it is parsed (``ast``, never executed) and the function
  must be one of its top-level names: a ``def``/``async def``, a class, an assignment or an
  import, also inside a top-level ``if``/``try``/``with``. A misspelling gets a "did you mean".

What cannot be checked without running code: a name the module makes at import time in a
way the source does not spell (``globals()[...]``, a module-level ``__getattr__``, ``from x
import *``: the function check is skipped), whether the name is callable, the type hints
the schema is derived from, and modules with no source (built-in or compiled extension
modules: only found, not inspected). Those fail when a run builds its tools, naming the tool.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..diagnostics import YamlPath
from ..python_refs import folder_modules, split_ref
from ..spec.tools import PythonCall, PythonTool
from ..suggest import did_you_mean, one_of
from .spec_errors import show

if TYPE_CHECKING:
    from .network import NetworkChecker


@dataclass(frozen=True)
class _Found:
    origin: Path | None
    """The module's source file (None: found, but no Python source to read)."""


def _in_folder(folder: Path, parts: list[str]) -> _Found | str:
    """The module ``parts`` under ``folder``, or why it is not there (its first missing part)."""
    here = folder
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last and (here / f"{part}.py").is_file():
            return _Found(here / f"{part}.py")
        if (here / part).is_dir():
            if last:
                init = here / part / "__init__.py"
                return _Found(init if init.is_file() else None)
            here = here / part
            continue
        if (here / f"{part}.py").is_file():
            return f"'{'.'.join(parts[: i + 1])}' is a module, not a package: it has no module '{parts[i + 1]}'"
        return _missing(".".join(parts[:i]), part, folder_modules(here))
    raise AssertionError("unreachable")  # pragma: no cover


def _installed(parts: list[str]) -> _Found | str | None:
    """The installed module ``parts``, found without importing it; None when even its
    top-level name is unknown; a reason when a later part is missing."""
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    for i, part in enumerate(parts[1:], start=1):
        locations = spec.submodule_search_locations
        found = importlib.machinery.PathFinder.find_spec(part, list(locations)) if locations is not None else None
        if found is None:
            import pkgutil  # lists a package's modules from its folders, importing none

            options = [m.name for m in pkgutil.iter_modules(list(locations or []))]
            return _missing(".".join(parts[:i]), part, options)
        spec = found
    origin = spec.origin
    return _Found(Path(origin) if origin and origin.endswith(".py") else None)


def _missing(parent: str, part: str, options: list[str]) -> str:
    near = did_you_mean(part, options)
    return f"'{parent}' has no module '{part}'" + (f"; did you mean '{near}'?" if near else "")


def _top_level_names(tree: ast.Module) -> set[str] | None:
    """The names a module binds at its top (None when some are made in ways the source does
    not spell: ``from x import *`` or a module ``__getattr__``)."""
    names: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for target in node.targets for t in ast.walk(target) if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.partition(".")[0])
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.AsyncWith | ast.For | ast.While):
            for block in ("body", "orelse", "finalbody"):
                pending.extend(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                pending.extend(handler.body)
    return None if "__getattr__" in names else names


def _function_names(tree: ast.Module) -> list[str]:
    """The module's top-level ``def``s: what a "did you mean" proposes."""
    return sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))


def check(c: NetworkChecker) -> None:
    """Each ``python`` tool of the network (see the module docstring for what is checked)."""
    folder = Path(c.doc.file).parent
    for name, tool in c.spec.tools.items():
        if not isinstance(tool, PythonTool):
            continue
        ref = tool.python.function if isinstance(tool.python, PythonCall) else tool.python
        where: YamlPath = (
            ("tools", name, "python", "function") if isinstance(tool.python, PythonCall) else ("tools", name, "python")
        )
        problem = _problem(folder, ref)
        if problem is not None:
            message, code = problem
            c.report(where, message, code)


def _problem(folder: Path, ref: str) -> tuple[str, str] | None:
    try:
        module, function = split_ref(ref)
    except ValueError:
        return f"{show(ref)} is not 'package.module:function' (like tools.orders:lookup)", "bad-python-function"
    parts = module.split(".")
    local = parts[0] in folder_modules(folder)
    found = _in_folder(folder, parts) if local else _installed(parts)
    if found is None:
        options = folder_modules(folder)
        near = did_you_mean(parts[0], options)
        tail = (f"did you mean '{near}'? " if near else "") + (
            f"modules in the network's folder: {one_of(options)}" if options else "the network's folder has no modules"
        )
        return f"unknown module '{module}' (not in the network's folder nor installed); {tail}", "unknown-python-module"
    if isinstance(found, str):
        return f"unknown module '{module}': {found}", "unknown-python-module"
    if found.origin is None:
        return None  # no source to read: found is all that can be said
    try:
        tree = ast.parse(found.origin.read_text(encoding="utf-8"), filename=str(found.origin))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"module '{module}' cannot be read: {exc}", "unreadable-python-module"
    except SyntaxError as exc:
        return f"module '{module}' has a syntax error: {exc.msg} ({found.origin.name}, line {exc.lineno})", "python-syntax-error"
    names = _top_level_names(tree)
    if names is None or function in names:
        return None
    defs = _function_names(tree)
    near = did_you_mean(function, defs or sorted(names))
    return (
        f"module '{module}' has no function '{function}'"
        + "; "
        + (f"did you mean '{near}'? " if near else "")
        + (f"defined functions: {one_of(defs)}" if defs else "it defines no functions"),
        "unknown-python-function",
    )


__all__ = ["check"]
