"""Plain Python data from a composed YAML node graph, recording every node's path.

PyYAML's constructors drop positions and silently keep the last of two duplicate keys;
the builder reports duplicates, unsupported tags, recursive aliases and documents too
deep or too large, all at once, each where it is.
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..diagnostics import Diagnostic, Pos, YamlPath
from .document import Document, load_diag
from .yaml12 import TAG

_MAX_NODES = 50_000  # alias expansion guard ("billion laughs"); real networks have a few thousand
MAX_DEPTH = 100
"""How deep a document may nest. Real networks nest a dozen levels; the bound keeps every
later walk over the data (spec validation, checks, templates, JSON Schemas, copies) far
from Python's recursion limit, so a hostile file is a located error, not a crash."""


class Builder:
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
        self.errors.append(load_diag(pos, message, code, path))

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
            self._error(
                node, path, "recursive alias: a node contains itself (the alias points at an anchor around it)", "recursive-alias"
            )
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != TAG + "seq":
                    self._error(node, path, f"unsupported tag '{node.tag}'", "unsupported-tag")
                return [self.build(item, (*path, i), None) for i, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)  # the composer makes scalars, sequences and mappings only
            if node.tag != TAG + "map":
                self._error(node, path, f"unsupported tag '{node.tag}'", "unsupported-tag")
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        tag, value = node.tag, node.value
        if tag == TAG + "str":
            return value
        if tag == TAG + "int":
            sign, digits = (-1, value[1:]) if value.startswith("-") else (1, value.lstrip("+"))
            base = 8 if digits.startswith("0o") else 16 if digits.startswith("0x") else 10
            return sign * int(digits[2:] if base != 10 else digits, base)
        if tag == TAG + "float":
            low = value.lower().lstrip("+")
            if low in (".inf", "-.inf"):
                return float("-inf" if low.startswith("-") else "inf")
            return float("nan") if low == ".nan" else float(value)
        if tag == TAG + "bool":
            return value.lower() == "true"
        if tag == TAG + "null":
            return None
        if tag == TAG + "merge":
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
            name: str = node.value
            return name  # keys stay text: `on:` and `1:` are names, not a bool or int
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
        explicit = [(k, v) for k, v in node.value if k.tag != TAG + "merge"]
        merged: list[tuple[Node, Node]] = []
        for k, v in node.value:
            if k.tag == TAG + "merge":
                merged.extend(self._merge_sources(v, path))
        names = {k.value for k, _ in explicit if isinstance(k, ScalarNode)}
        return [(k, v) for k, v in merged if k.value not in names] + explicit

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, Node] = {}
        for k, _ in node.value:  # duplicates among the keys written here (merges may override)
            if k.tag == TAG + "merge" or not isinstance(k, ScalarNode):
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
