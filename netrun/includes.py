"""Includes: fragment files that share agents, tools, MCP servers, prompts and state.

A network (or a fragment) lists fragment files under ``include:``; their definitions are
added to the including file's, keeping their own file positions so that an error inside
a fragment points into the fragment. Including the same name twice is an error; an
include cycle is reported at the ``include`` entry that closes it.

Only files inside the folders being validated (or served) are read: a fragment, an
include path or a symlink that resolves outside them is refused with a message that names
the path, so that no message ever shows a line of a file outside those folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .diagnostics import Diagnostic, Pos, YamlPath
from .load import Document, LoadError, load_text, read_text

SECTIONS = ("state", "prompts", "agents", "tools", "mcp_servers")
FRAGMENT_SUFFIXES = (".fragment.yaml", ".fragment.yml")
MAX_BYTES = 5_000_000
"""The largest file read (real networks are a few kilobytes)."""
MAX_INCLUDE_DEPTH = 20
"""How many fragments deep includes may chain (each level is a recursion of resolve_includes)."""


def is_fragment(path: Path) -> bool:
    return path.name.endswith(FRAGMENT_SUFFIXES)


def display(path: Path) -> str:
    """A path as shown in messages: relative to the working directory when below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class DocumentCache:
    """Loads each file once per validation run (a fragment may be included many times).

    With ``roots``, only files whose real path (symlinks resolved) is inside one of them
    are read; the others are refused without being opened."""

    def __init__(self, roots: tuple[Path, ...] = ()) -> None:
        self._docs: dict[Path, Document | LoadError] = {}
        self.roots = tuple(root.resolve() for root in roots)

    def inside(self, path: Path) -> bool:
        """Whether ``path`` really is inside the roots (always, without roots)."""
        if not self.roots:
            return True
        try:
            real = path.resolve()
        except (OSError, ValueError, RuntimeError):  # a symlink loop, a NUL byte
            return False
        return any(real.is_relative_to(root) for root in self.roots)

    def load(self, path: Path) -> Document:
        if not self.inside(path):
            raise LoadError(
                [Diagnostic(Pos(display(path), 1, 1), outside_message(path, self.roots), phase="load", code="outside")]
            )
        path = path.resolve()
        found = self._docs.get(path)
        if found is None:
            name = display(path)
            try:
                if path.stat().st_size > MAX_BYTES:
                    message = f"the file is larger than {MAX_BYTES // 1_000_000} MB; a network file is a few kilobytes"
                    raise LoadError([Diagnostic(Pos(name, 1, 1), message, phase="load", code="too-large")])
                found = load_text(read_text(path.read_bytes(), name), name)
            except LoadError as exc:
                found = exc
            except OSError as exc:
                found = LoadError(
                    [Diagnostic(Pos(name, 1, 1), f"cannot read the file: {exc.strerror or exc}", phase="load", code="unreadable")]
                )
            self._docs[path] = found
        if isinstance(found, LoadError):
            raise found
        return found


def outside_message(path: Path, roots: tuple[Path, ...]) -> str:
    """Why ``path`` is not read (names the path only, never what it points at)."""
    folders = ", ".join(display(root) or "." for root in roots)
    return f"'{display(path)}' resolves outside the validated folder ({folders}); files outside it are not read"


def resolve_includes(
    doc: Document, path: Path, cache: DocumentCache, stack: tuple[Path, ...] = (), included: set[Path] | None = None
) -> list[Diagnostic]:
    """Merge the fragments ``doc`` includes into it (in place); return the problems found.

    ``included`` collects the real path of every fragment included, directly or not, even
    the ones with errors (a hot reload keeps the networks that include a broken fragment)."""
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
        except RuntimeError:  # Python 3.11 resolves a symlink loop to this
            problems.append(_diag(doc, where, f"included file '{entry}' is a symlink loop", "include-missing"))
            continue
        except (OSError, ValueError):  # a NUL byte, a name too long for the file system
            problems.append(_diag(doc, where, f"{entry!r} is not a usable file path", "include-missing"))
            continue
        if not cache.inside(target):
            folders = ", ".join(display(root) or "." for root in cache.roots)
            message = f"included file '{entry}' resolves outside the validated folder ({folders}); files outside it are not read"
            problems.append(_diag(doc, where, message, "include-outside"))
            continue
        if len(stack) > MAX_INCLUDE_DEPTH and target not in stack:
            message = f"includes nested deeper than {MAX_INCLUDE_DEPTH} files: '{entry}' is not read"
            problems.append(_diag(doc, where, message, "include-too-deep"))
            continue
        if target in stack:
            chain = " -> ".join(display(p) for p in (*stack[stack.index(target) :], target))
            problems.append(_diag(doc, where, f"include cycle: {chain}", "include-cycle"))
            continue
        if not exists and target.is_dir():
            problems.append(_diag(doc, where, f"included path '{entry}' is a directory, not a fragment file", "include-missing"))
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
        if included is not None:
            included.add(target)
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
        frag = Document(frag.file, dict(frag.data), dict(frag.nodes), dict(frag.lines))
        problems.extend(resolve_includes(frag, target, cache, stack, included))
        problems.extend(_merge(doc, frag, origin))
    return problems


_NOUNS = {"state": "state field", "prompts": "prompt", "agents": "agent", "tools": "tool", "mcp_servers": "MCP server"}


def _merge(doc: Document, frag: Document, origin: dict[YamlPath, Pos]) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    for field in frag.data:
        if field not in SECTIONS and field != "include":
            allowed = ", ".join(("include", *SECTIONS))
            problems.append(
                Diagnostic(
                    frag.pos((field,), key=True),
                    f"unknown field '{field}' in a fragment; allowed: {allowed}",
                    (field,),
                    phase="spec",
                    code="unknown-field",
                )
            )
    for file, lines in frag.lines.items():
        doc.lines.setdefault(file, lines)
    for section in SECTIONS:
        items = frag.data.get(section)
        if not isinstance(items, dict):
            continue
        target: Any = doc.data.get(section, {})
        if not isinstance(target, dict):
            continue
        # A copy: the section may be the cached document's own (loaded once, included many times).
        target = doc.data[section] = dict(target)
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
