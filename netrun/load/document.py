"""A loaded YAML document: plain data, and the source position of every path in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from yaml.nodes import MappingNode, Node, SequenceNode

from ..diagnostics import Diagnostic, Pos, YamlPath
from ..errors import NetrunError


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


def make_span(ref: NodeRef) -> Span:
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
        return make_span(ref) if ref is not None else None

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


def load_diag(pos: Pos, message: str, code: str, path: YamlPath = ()) -> Diagnostic:
    """A diagnostic of the load phase."""
    return Diagnostic(pos=pos, message=message, path=path, phase="load", code=code)
