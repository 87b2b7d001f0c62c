"""Load: YAML text -> plain data, with the source position of every node.

PyYAML's constructors drop positions and silently keep the last of two duplicate keys,
so netrun composes the node graph itself (libyaml's C parser when present) and builds
plain Python data from it, recording a :class:`Span` for every path. Scalars resolve
with the YAML 1.2 core schema: ``on``, ``yes`` and ``no`` stay strings and ``2024-01-01``
is not a date, so a state enum ``[yes, no]`` means what it says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from .diagnostics import Diagnostic, Pos, YamlPath
from .errors import NetrunError

try:  # libyaml is bundled with PyYAML's wheels; the pure-Python parser is the fallback.
    from yaml.cyaml import CParser as _Parser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser, Composer):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)


_TAG = "tag:yaml.org,2002:"
_MAX_NODES = 50_000  # alias expansion guard ("billion laughs"); real networks have a few thousand
MAX_DEPTH = 100
"""How deep a document may nest. Real networks nest a dozen levels; the bound keeps every
later walk over the data (spec validation, checks, templates, JSON Schemas, copies) far
from Python's recursion limit, so a hostile file is a located error, not a crash."""


class _Resolver12(BaseResolver):
    """YAML 1.2 core schema resolution of plain scalars (plus the ``<<`` merge key)."""

    yaml_implicit_resolvers: ClassVar[dict[str | None, list[tuple[str, re.Pattern[str]]]]] = {}


for _tag, _regexp, _first in [
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("merge", r"^(?:<<)$", "<"),
]:
    _Resolver12.add_implicit_resolver(_TAG + _tag, re.compile(_regexp), list(_first))


_STR, _MAP, _SEQ = _TAG + "str", _TAG + "map", _TAG + "seq"
_MAYBE_NOT_STR = frozenset("tTfFnN~-+0123456789.<")


class _Loader(_Parser, _Resolver12):  # type: ignore[misc,valid-type]
    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        _Resolver12.__init__(self)

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        # The parser calls this for every node; most plain scalars are words that cannot
        # be anything but strings, so skip the regexes for them.
        if kind is ScalarNode:
            if implicit[0] and (not value or value[0] in _MAYBE_NOT_STR):
                return str(_Resolver12.resolve(self, kind, value, implicit))
            return _STR
        return _MAP if kind is MappingNode else _SEQ


class Span(NamedTuple):
    """Where a node is: its value, and for a mapping entry its key (1-based)."""

    file: str
    line: int
    col: int
    key_line: int
    key_col: int
    style: str | None
    """Scalar style: None (plain), ``'``, ``"``, ``|`` or ``>``; ``{``/``[`` for collections."""
    end_line: int

    @property
    def pos(self) -> Pos:
        return Pos(self.file, self.line, self.col)

    @property
    def key_pos(self) -> Pos:
        return Pos(self.file, self.key_line, self.key_col)


NodeRef = tuple[str, Node, "Node | None"]
"""(file, node, key node): what a span is computed from, only when a position is needed."""


def _make_span(ref: NodeRef) -> Span:
    file, node, key = ref
    start, end = node.start_mark, node.end_mark
    k = key.start_mark if key is not None else start
    style = getattr(node, "style", None)
    if isinstance(node, MappingNode | SequenceNode):
        style = "{" if node.flow_style else None
    return Span(file, start.line + 1, start.column + 1, k.line + 1, k.column + 1, style, end.line + 1)


@dataclass
class Document:
    """One loaded YAML document: plain data plus the node of every path in it."""

    file: str
    data: Any
    nodes: dict[YamlPath, NodeRef] = field(default_factory=dict)
    """The source node of every path (positions are computed from it on demand)."""
    lines: dict[str, list[str]] = field(default_factory=dict)
    """Source lines per file (a document may hold nodes from included files)."""

    def span(self, path: YamlPath) -> Span | None:
        ref = self.nodes.get(path)
        return _make_span(ref) if ref is not None else None

    def pos(self, path: YamlPath, *, key: bool = False) -> Pos:
        """Position of ``path``, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            span = self.span(path[:cut])
            if span is not None:
                return span.key_pos if key and cut == len(path) else span.pos
        return Pos(self.file, 1, 1)

    def text_pos(self, path: YamlPath, line: int, col: int, needle: str | None = None) -> Pos:
        """Position of (0-based) ``line``/``col`` inside the string at ``path``.

        Exact for literal blocks (``|``) and one-line scalars; for folded scalars, where
        value lines do not map to source lines, ``needle`` is searched in the source.
        """
        span = self.span(path)
        if span is None:
            return self.pos(path)
        src = self.lines.get(span.file, [])
        if span.style == "|":
            row = span.line + 1 + line  # the block starts on the line after its indicator
            # The block's indentation is that of its first non-blank line.
            first = next((t for t in src[span.line : span.end_line] if t.strip()), "")
            indent = len(first) - len(first.lstrip(" "))
            if row - 1 < len(src):
                return Pos(span.file, row, indent + col + 1)
        elif span.end_line == span.line and line == 0:
            quote = 1 if span.style in ("'", '"') else 0
            guess = span.col + quote + col
            if quote and needle and span.line <= len(src):
                # Escapes (\" or '') make the source longer than the value: find the
                # needle at or after the column it would have without them.
                found = src[span.line - 1].find(needle, guess - 1)
                if found >= 0:
                    return Pos(span.file, span.line, found + 1)
            return Pos(span.file, span.line, guess)
        if needle:
            for row in range(span.line, min(span.end_line, len(src)) + 1):
                found = src[row - 1].find(needle)
                if found >= 0:
                    return Pos(span.file, row, found + 1)
        return span.pos


class LoadError(NetrunError, phase="load"):
    """The file could not be read as one YAML mapping; carries its diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


def read_text(raw: bytes, file: str) -> str:
    """Decode a file as UTF-8 text, or explain why it is not text."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LoadError(
            [
                _load_diag(
                    Pos(file, line, col), f"not a UTF-8 text file (byte 0x{raw[exc.start]:02x} cannot be decoded)", "not-text"
                )
            ]
        ) from None
    bad = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise LoadError(
            [
                _load_diag(
                    Pos(file, line, col),
                    f"control character {bad.group()!r} in the file; a network file is plain text",
                    "not-text",
                )
            ]
        )
    return text


def load_text(text: str, file: str) -> Document:
    """Parse YAML ``text`` into a :class:`Document`; raise :class:`LoadError` if it is not YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise LoadError([_yaml_error(exc, file, text)]) from None
    except yaml.YAMLError as exc:  # pragma: no cover - unmarked errors are rare
        raise LoadError([_load_diag(Pos(file, 1, 1), f"invalid YAML: {exc}", "yaml-syntax")]) from None
    except RecursionError:  # pragma: no cover - only the pure-Python composer recurses per level
        raise LoadError([_load_diag(Pos(file, 1, 1), f"nested deeper than {MAX_DEPTH} levels", "too-deep")]) from None
    finally:
        loader.dispose()
    doc = Document(file=file, data=None, lines={file: text.splitlines()})
    if node is None:
        return doc
    builder = _Builder(doc)
    doc.data = builder.build(node, (), None)
    if builder.errors:
        raise LoadError(sorted(builder.errors, key=Diagnostic.sort_key))
    return doc


def _load_diag(pos: Pos, message: str, code: str, path: YamlPath = ()) -> Diagnostic:
    return Diagnostic(pos=pos, message=message, path=path, phase="load", code=code)


# libyaml's messages are terse; these hints say what the author most likely did.
_HINTS = [
    ("found character '\\t' that cannot start any token", "tab character: YAML indents with spaces only"),
    ("found a tab character", "tab character: YAML indents with spaces only"),
    ("mapping values are not allowed", "unexpected ':' (quote a value that contains ': ', or check the indentation)"),
    ("could not find expected ':'", "expected 'key: value' (a ':' is missing, or the indentation is off)"),
    ("did not find expected key", "bad indentation or a stray line: expected another 'key: value' at this level"),
    ("did not find expected '-' indicator", "bad indentation in a list: expected another '- item' at this level"),
    ("found undefined alias", "undefined alias"),
    ("but found another document", "a network file holds one YAML document, found a second one (remove the extra '---')"),
    ("found unexpected end of stream", "unexpected end of file (an unclosed quote or bracket?)"),
    ("found unknown escape character", "unknown escape in a double-quoted string (use single quotes, or write '\\\\')"),
]


def _yaml_error(exc: yaml.MarkedYAMLError, file: str, text: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    context = exc.context or ""
    lines = text.splitlines()
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    at = lines[line - 1][col - 1 : col] if 0 < line <= len(lines) else ""
    opened = exc.context_mark
    message = problem
    for needle, better in _HINTS:
        if needle in problem or needle in context:
            message = better
            break
    if "cannot start any token" in problem and (at == "\t" or "\t" in (lines[line - 1] if 0 < line <= len(lines) else "")):
        message = "tab character: YAML indents with spaces only"
        col = lines[line - 1].find("\t") + 1
    elif message == "undefined alias" and 0 < line <= len(lines):
        found = re.match(r"\*([^\s,\]}]+)", lines[line - 1][col - 1 :])
        name = found.group(1) if found else "?"
        message = f"undefined alias '*{name}' (no anchor '&{name}' before it)"
    elif opened is not None and ("flow mapping" in context or "flow sequence" in context or "quoted scalar" in context):
        # The problem is where the parser gave up; the cause is what was opened and never closed.
        what = "'{'" if "mapping" in context else "'['" if "sequence" in context else "quote"
        message = f"unclosed {what}: no matching {'closing bracket' if what != 'quote' else 'closing quote'} after it"
        line, col = opened.line + 1, opened.column + 1
    return _load_diag(Pos(file, line, col), f"YAML syntax: {message}", "yaml-syntax")


class _Builder:
    """Builds plain data from composed nodes, recording spans and collecting errors."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.file = doc.file
        self.errors: list[Diagnostic] = []
        self.count = 0
        self.too_deep = False
        self.active: set[int] = set()
        self.nodes = doc.nodes

    def _error(self, node: Node, path: YamlPath, message: str, code: str) -> None:
        pos = Pos(self.file, node.start_mark.line + 1, node.start_mark.column + 1)
        self.errors.append(_load_diag(pos, message, code, path))

    def build(self, node: Node, path: YamlPath, key: Node | None) -> Any:
        if len(path) > MAX_DEPTH:
            # One error per document: below the first node past the limit nothing is built,
            # so nothing after load walks deeper than MAX_DEPTH.
            if not self.too_deep:
                self.too_deep = True
                self._error(node, path[:1], f"nested deeper than {MAX_DEPTH} levels", "too-deep")
            return None
        self.count += 1
        if self.count > _MAX_NODES:
            if self.count == _MAX_NODES + 1:
                self._error(
                    node, path, f"the document expands to more than {_MAX_NODES} nodes (aliases nested too deep?)", "too-large"
                )
            return None
        self.nodes[path] = (self.file, node, key)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.active:
            self._error(node, path, "recursive alias: a node contains itself (the alias points at an anchor around it)", "recursive-alias")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _TAG + "seq":
                    self._error(node, path, f"unsupported tag '{node.tag}'", "unsupported-tag")
                return [self.build(item, (*path, i), None) for i, item in enumerate(node.value)]
            if node.tag != _TAG + "map":
                self._error(node, path, f"unsupported tag '{node.tag}'", "unsupported-tag")
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        tag, value = node.tag, node.value
        if tag == _TAG + "str":
            return value
        if tag == _TAG + "int":
            sign, digits = (-1, value[1:]) if value.startswith("-") else (1, value.lstrip("+"))
            base = 8 if digits.startswith("0o") else 16 if digits.startswith("0x") else 10
            return sign * int(digits[2:] if base != 10 else digits, base)
        if tag == _TAG + "float":
            low = value.lower().lstrip("+")
            if low in (".inf", "-.inf"):
                return float("-inf" if low.startswith("-") else "inf")
            return float("nan") if low == ".nan" else float(value)
        if tag == _TAG + "bool":
            return value.lower() == "true"
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "merge":
            return value
        self._error(
            node,
            path,
            f"unsupported tag '{tag}' (netrun reads plain YAML: strings, numbers, booleans, null, lists and mappings)",
            "unsupported-tag",
        )
        return value

    def _key(self, node: Node, path: YamlPath) -> str | None:
        if isinstance(node, ScalarNode):
            return node.value  # keys stay text: `on:` and `1:` are names, not a bool or int
        kind = "list" if isinstance(node, SequenceNode) else "mapping"
        self._error(node, path, f"a key must be a name, not a {kind}", "bad-key")
        return None

    def _merge_sources(self, node: Node, path: YamlPath) -> list[tuple[Node, Node]]:
        """The (key, value) pairs a ``<<`` merge brings, earlier sources winning."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        pairs: list[tuple[Node, Node]] = []
        seen: set[str] = set()
        for src in sources:
            if not isinstance(src, MappingNode):
                self._error(src, path, "'<<' merges mappings only (write '<<: *anchor' or '<<: [*a, *b]')", "bad-merge")
                continue
            for k, v in self._flatten(src, path):
                name = k.value if isinstance(k, ScalarNode) else None
                if name is not None and name not in seen:
                    seen.add(name)
                    pairs.append((k, v))
        return pairs

    def _flatten(self, node: MappingNode, path: YamlPath) -> list[tuple[Node, Node]]:
        explicit = [(k, v) for k, v in node.value if k.tag != _TAG + "merge"]
        merged: list[tuple[Node, Node]] = []
        for k, v in node.value:
            if k.tag == _TAG + "merge":
                merged.extend(self._merge_sources(v, path))
        names = {k.value for k, _ in explicit if isinstance(k, ScalarNode)}
        return [(k, v) for k, v in merged if k.value not in names] + explicit

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, Node] = {}
        for k, _ in node.value:  # duplicates among the keys written here (merges may override)
            if k.tag == _TAG + "merge" or not isinstance(k, ScalarNode):
                continue
            if k.value in first:
                prev = first[k.value].start_mark
                self._error(
                    k,
                    (*path, k.value),
                    f"duplicate key '{k.value}' (first defined at line {prev.line + 1}); YAML keeps only one, so remove or rename one of them",
                    "duplicate-key",
                )
            else:
                first[k.value] = k
        for k, v in self._flatten(node, path):
            name = self._key(k, path)
            if name is None or name in out:
                continue
            out[name] = self.build(v, (*path, name), k)
        return out
