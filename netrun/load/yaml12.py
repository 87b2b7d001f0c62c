"""YAML 1.2 core schema resolution on libyaml's parser (PyYAML's resolves YAML 1.1).

With YAML 1.1, ``on``, ``yes`` and ``no`` are booleans and ``2024-01-01`` is a date; with
the 1.2 core schema they stay strings, so a state enum ``[yes, no]`` means what it says.
"""

from __future__ import annotations

import re
from typing import Any

from yaml.nodes import MappingNode, ScalarNode
from yaml.resolver import BaseResolver

try:  # libyaml is bundled with PyYAML's wheels; the pure-Python parser is the fallback.
    from yaml._yaml import CParser as _Parser  # where yaml.cyaml takes it from (and the stubs export it)
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


TAG = "tag:yaml.org,2002:"


class _Resolver12(BaseResolver):
    """YAML 1.2 core schema resolution of plain scalars (plus the ``<<`` merge key)."""

    # A table of its own, holding only the core schema's resolvers (added below).
    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}


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
    _Resolver12.add_implicit_resolver(TAG + _tag, re.compile(_regexp), list(_first))


_STR, _MAP, _SEQ = TAG + "str", TAG + "map", TAG + "seq"
_MAYBE_NOT_STR = frozenset("tTfFnN~-+0123456789.<")


class Loader(_Parser, _Resolver12):
    """libyaml's parser and composer, resolving plain scalars with :class:`_Resolver12`."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        _Resolver12.__init__(self)

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        # The parser calls this for every node; most plain scalars are words that cannot
        # be anything but strings, so skip the regexes for them.
        if kind is ScalarNode:
            if implicit[0] and (not value or value[0] in _MAYBE_NOT_STR):
                return str(_Resolver12.resolve(self, kind, value, implicit))  # type: ignore[no-untyped-call]  # untyped in the PyYAML stubs
            return _STR
        return _MAP if kind is MappingNode else _SEQ
