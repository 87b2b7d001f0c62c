"""Includes: fragment files that share agents, tools, MCP servers, prompts and state.

A network (or a fragment) lists fragment files under ``include:``; their definitions are
added to the including file's, keeping their own file positions so that an error inside
a fragment points into the fragment. Including the same name twice is an error; an
include cycle is reported at the ``include`` entry that closes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .diagnostics import Diagnostic, Pos, YamlPath
from .load import Document, LoadError, load_text, read_text

SECTIONS = ("state", "prompts", "agents", "tools", "mcp_servers")
FRAGMENT_SUFFIXES = (".fragment.yaml", ".fragment.yml")


def is_fragment(path: Path) -> bool:
    return path.name.endswith(FRAGMENT_SUFFIXES)


def display(path: Path) -> str:
    """A path as shown in messages: relative to the working directory when below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class DocumentCache:
    """Loads each file once per validation run (a fragment may be included many times)."""

    def __init__(self) -> None:
        self._docs: dict[Path, Document | LoadError] = {}

    def load(self, path: Path) -> Document:
        path = path.resolve()
        found = self._docs.get(path)
        if found is None:
            name = display(path)
            try:
                found = load_text(read_text(path.read_bytes(), name), name)
            except LoadError as exc:
                found = exc
            except OSError as exc:
                found = LoadError(
                    [Diagnostic(Pos(name, 1, 1), f"cannot read the file: {exc.strerror}", phase="load", code="unreadable")]
                )
            self._docs[path] = found
        if isinstance(found, LoadError):
            raise found
        return found


def resolve_includes(doc: Document, path: Path, cache: DocumentCache, stack: tuple[Path, ...] = ()) -> list[Diagnostic]:
    """Merge the fragments ``doc`` includes into it (in place); return the problems found."""
    data = doc.data
    if not isinstance(data, dict) or "include" not in data:
        return []
    entries = data["include"]
    if not isinstance(entries, list):
        return []  # the schema reports the wrong type
    problems: list[Diagnostic] = []
    stack = (*stack, path.resolve())
    origin: dict[YamlPath, Pos] = {}
    for section in SECTIONS:
        if isinstance(data.get(section), dict):
            for name in data[section]:
                origin[(section, name)] = doc.pos((section, name), key=True)
    for i, entry in enumerate(entries):
        where: YamlPath = ("include", i)
        if not isinstance(entry, str):
            continue
        try:
            target = (path.parent / entry).resolve()
            exists = target.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long for the file system
            problems.append(_diag(doc, where, f"{entry!r} is not a usable file path", "include-missing"))
            continue
        if target in stack:
            chain = " -> ".join(display(p) for p in (*stack[stack.index(target) :], target))
            problems.append(_diag(doc, where, f"include cycle: {chain}", "include-cycle"))
            continue
        if not exists:
            problems.append(
                _diag(
                    doc,
                    where,
                    f"included file '{entry}' does not exist (paths are relative to {display(path.parent) or '.'})",
                    "include-missing",
                )
            )
            continue
        if not is_fragment(target):
            problems.append(
                _diag(
                    doc, where, f"'{entry}' is not a fragment: included files are named *.fragment.yaml", "include-not-fragment"
                )
            )
            continue
        try:
            frag = cache.load(target)
        except LoadError as exc:
            problems.extend(exc.diagnostics)
            continue
        if frag.data is None:
            continue
        if not isinstance(frag.data, dict):
            problems.append(
                Diagnostic(
                    frag.pos(()),
                    "a fragment file is a mapping with include, state, prompts, agents, tools or mcp_servers",
                    (),
                    phase="load",
                    code="not-a-mapping",
                )
            )
            continue
        # A fragment's own includes first, on a copy, so that the cached fragment stays as written.
        frag = Document(frag.file, dict(frag.data), dict(frag.nodes), frag.lines)
        problems.extend(resolve_includes(frag, target, cache, stack))
        problems.extend(_merge(doc, frag, origin))
    return problems


_NOUNS = {"state": "state field", "prompts": "prompt", "agents": "agent", "tools": "tool", "mcp_servers": "MCP server"}


def _merge(doc: Document, frag: Document, origin: dict[YamlPath, Pos]) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    for key in frag.data:
        if key not in SECTIONS and key != "include":
            allowed = ", ".join(("include", *SECTIONS))
            problems.append(Diagnostic(frag.pos((key,), key=True), f"unknown field '{key}' in a fragment; allowed: {allowed}", (key,), phase="spec", code="unknown-field"))
    for file, lines in frag.lines.items():
        doc.lines.setdefault(file, lines)
    for section in SECTIONS:
        items = frag.data.get(section)
        if not isinstance(items, dict):
            continue
        target: Any = doc.data.setdefault(section, {})
        if not isinstance(target, dict):
            continue
        if (section,) not in doc.nodes:
            doc.nodes[(section,)] = frag.nodes[(section,)]
        for name, value in items.items():
            key: YamlPath = (section, name)
            first = origin.get(key)
            if first is not None:
                here = frag.pos(key, key=True)
                problems.append(
                    Diagnostic(
                        here,
                        f"{_NOUNS[section]} '{name}' is already defined at {first.file}:{first.line}:{first.col}",
                        key,
                        phase="load",
                        code="duplicate-name",
                    )
                )
                continue
            origin[key] = frag.pos(key, key=True)
            target[name] = value
            for path, ref in frag.nodes.items():
                if path[:2] == key:
                    doc.nodes[path] = ref
    return problems


def _diag(doc: Document, path: YamlPath, message: str, code: str) -> Diagnostic:
    return Diagnostic(doc.pos(path), message, path, phase="load", code=code)
