"""The networks an edit can break: ``netrun validate --include-dependents`` (the pre-commit hook).

pre-commit passes the staged files. Validating only those misses what an edit breaks
elsewhere: a fragment's tool renamed breaks every network that includes the fragment, and
a network renamed (or its input changed) breaks the networks whose ``network:`` tools call
it. Validating the whole tree instead reports files nobody touched (an unrelated file a
colleague left broken, unstaged work in progress) and costs the time of every file.

:func:`with_dependents` takes the changed files and the folders to search and returns the
changed network files plus every network or fragment file under those folders that
includes one of them (``include:``, through any chain of fragments) or calls one of them
(a ``network:`` tool, its own or from a fragment it includes, naming a network beside it,
as :mod:`netrun.finder` finds it, or naming one the folder no longer has: the changed file
may be that network renamed), repeated until nothing new is reached.

A changed file that is gone (a caller passing a diff's deleted paths, as ``git diff
--name-only`` does) counts as changed: what includes or calls it is validated. A fragment
renamed reaches the files whose includes name a file that no longer exists. pre-commit
itself passes only the files a commit adds or modifies and runs no hook for a commit that
only deletes: CI's ``netrun validate`` of the whole folder covers that case.

The search reads each file's YAML only (no schema, no checks), so it costs a fraction of
validating the tree; a file whose YAML does not parse is skipped here (when it is among
the changed files, validation reports it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .includes import is_fragment
from .validate import SKIPPED_SUFFIXES, YAML_SUFFIXES
from .validate.files import files_under

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it


@dataclass
class _File:
    """What one file says about others: the fragments it includes, the networks it calls."""

    name: str | None = None
    includes: set[Path] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)


def is_network_file(path: Path) -> bool:
    """Whether ``path`` is named as a network or fragment file (``*.yaml``/``*.yml``, not a
    test or replies file)."""
    return path.name.endswith(YAML_SUFFIXES) and not path.name.endswith(SKIPPED_SUFFIXES)


def _read(path: Path) -> _File:
    try:
        data = yaml.load(path.read_bytes(), Loader=_Loader)  # a safe loader (C or Python)
    except (OSError, yaml.YAMLError, RecursionError):
        return _File()
    found = _File()
    if not isinstance(data, dict):
        return found
    if isinstance(data.get("name"), str):
        found.name = data["name"]
    entries = data.get("include")
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, str):
            try:
                found.includes.add((path.parent / entry).resolve())
            except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop: validation says so
                continue
    tools = data.get("tools")
    for tool in tools.values() if isinstance(tools, dict) else ():
        ref = tool.get("network") if isinstance(tool, dict) else None
        if isinstance(ref, dict):
            ref = ref.get("name")
        if isinstance(ref, str):
            found.calls.add(ref)
    return found


def with_dependents(changed: Iterable[Path], search: Iterable[Path]) -> list[Path]:
    """The network and fragment files among ``changed`` that are inside ``search`` (folders),
    and every file under ``search`` that includes or calls one of them, directly or not;
    sorted, the changed files first. Files outside ``search`` and files that are not
    network files (a workflow's YAML, a test file) are left out."""
    roots = [root.resolve() for root in search]
    files = {p.resolve(): p for root in roots for p in files_under(root, YAML_SUFFIXES, SKIPPED_SUFFIXES)}
    start: list[Path] = []
    gone: set[Path] = set()  # changed files no longer there: deleted, or renamed away
    for path in changed:
        real = path.resolve()
        if is_network_file(path) and any(real.is_relative_to(root) for root in roots):
            if path.is_file():
                files.setdefault(real, path)
            elif not path.exists():
                gone.add(real)
            else:
                continue
            start.append(real)
    read = {real: _read(real) for real in files}
    dangling = {real for real, info in read.items() if any(not target.is_file() for target in info.includes)}

    def closure(real: Path, seen: set[Path]) -> _File:
        """The file with the includes and calls of the fragments it includes, at any depth."""
        own = read.get(real) or _File()
        merged = _File(own.name, set(own.includes), set(own.calls))
        for target in own.includes:
            if target not in seen and target in read:
                seen.add(target)
                inner = closure(target, seen)
                merged.includes |= inner.includes
                merged.calls |= inner.calls
        return merged

    whole = {real: closure(real, {real}) for real in read}
    declared: dict[Path, set[str]] = {}
    for real, info in read.items():
        if info.name is not None and not is_fragment(real):
            declared.setdefault(real.parent, set()).add(info.name)
    reached: dict[Path, None] = dict.fromkeys(start)
    queue = list(start)
    while queue:
        real = queue.pop()
        fragment = is_fragment(real)
        name = read[real].name if real in read else None
        # A network renamed leaves its callers naming a network the folder no longer has.
        called = {name} if name is not None else set()
        for other, info in whole.items():
            if other in reached:
                continue
            # A fragment renamed (or deleted) leaves its includers naming a file that is gone.
            includes_it = fragment and (real in info.includes or other in dangling)
            beside = not fragment and other.parent == real.parent
            calls_it = beside and bool(info.calls & called or info.calls - declared.get(real.parent, set()))
            if includes_it or calls_it:
                reached[other] = None
                queue.append(other)
    first = [files[r] for r in start if r in files]
    rest = sorted(files[r] for r in reached if r not in set(start) and r in files)
    return list(dict.fromkeys([*first, *rest]))


__all__ = ["is_network_file", "with_dependents"]
