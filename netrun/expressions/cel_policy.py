"""Inngest's expression policy, applied to the CEL that netrun sends it.

Inngest compiles every expression it is given at sync; ``cancel.if`` must also pass its
*restrictive* policy (``pkg/expressions/validation.go`` ``DefaultRestrictiveValidationPolicy``,
applied in ``pkg/inngest/function.go`` ``Validate``): no macros (``has``, ``all``, ``exists``,
``exists_one``, ``map``, ``filter``) and no function calls but the logic operators, indexing
and ``int``/``uint``/``double``. So arithmetic (``_+_``), negation (``-_``) and ``has()`` are
refused. netrun writes ``is defined`` as ``has(...)`` and ``-1`` as ``-(1)``
(:mod:`netrun.expressions.cel`), so the policy is judged here on the translated text, as the
server reads it: a small parser of the CEL the translator emits lists the functions an
expression calls, named as cel-go's ``common/operators`` names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter"})
"""``macroFnNames`` in validation.go."""

ALLOWED = frozenset(
    {
        "_?_:_",
        "_&&_",
        "_||_",
        "!_",
        "_==_",
        "_!=_",
        "_<_",
        "_<=_",
        "_>_",
        "_>=_",
        "_[_]",
        "_[?_]",
        "_?._",
        "@in",
        "int",
        "uint",
        "double",
    }
)
"""``logicFnNames`` and ``typeConvFnNames`` in validation.go: always allowed."""

WHAT = {
    "has": "'has' (netrun writes 'is defined' as has(...))",
    "-_": "negation '-x' (netrun writes '-1' as -(1))",
    "_+_": "arithmetic '+'",
    "_-_": "arithmetic '-'",
    "_*_": "arithmetic '*'",
    "_/_": "arithmetic '/'",
    "_%_": "arithmetic '%'",
}
"""How a refused function reads for someone who wrote the netrun expression."""

NEEDLE = {"has": "defined", "-_": "-", "_+_": "+", "_-_": "-", "_*_": "*", "_/_": "/", "_%_": "%"}
"""What to look for in the netrun expression to point at the construct."""

_BINARY = {
    "||": "_||_",
    "&&": "_&&_",
    "==": "_==_",
    "!=": "_!=_",
    "<": "_<_",
    "<=": "_<=_",
    ">": "_>_",
    ">=": "_>=_",
    "in": "@in",
    "+": "_+_",
    "-": "_-_",
    "*": "_*_",
    "/": "_/_",
    "%": "_%_",
}
_LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%"))
_TOKEN = re.compile(
    r'\s*(?:("(?:[^"\\]|\\.)*")|(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([A-Za-z_]\w*)|(&&|\|\||==|!=|<=|>=|[-+*/%!<>()\[\]{},.:?]))'
)


@dataclass(frozen=True)
class Violation:
    """One construct the restrictive policy refuses."""

    function: str
    """The CEL function (``has``, ``_+_``, ``-_``, ...)."""
    macro: bool

    @property
    def what(self) -> str:
        return WHAT.get(self.function, f"'{self.function}'")


def functions(cel: str) -> list[str]:
    """The functions ``cel`` calls, in source order (ValueError if it is not CEL netrun emits)."""
    return _Parser(cel).parse()


def restrictive_violations(cel: str) -> list[Violation]:
    """What ``validateAST`` with the restrictive policy reports for ``cel``, once per function."""
    out: list[Violation] = []
    for fn in dict.fromkeys(functions(cel)):
        if fn in MACROS:
            out.append(Violation(fn, macro=True))
        elif fn not in ALLOWED:
            out.append(Violation(fn, macro=False))
    return out


class _Parser:
    """Recursive descent over CEL's precedence levels; records calls instead of building a tree."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []  # (kind, text): kind is str, num, id or op
        pos = 0
        while pos < len(text.rstrip()):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ValueError(f"unexpected character at {pos}: {text[pos : pos + 10]!r}")
            kind = ("str", "num", "id", "op")[m.lastindex - 1] if m.lastindex else "op"
            value = m.group(m.lastindex or 0)
            self.tokens.append(("op" if kind == "id" and value == "in" else kind, value))
            pos = m.end()
        self.i = 0
        self.calls: list[str] = []

    def parse(self) -> list[str]:
        self.expr()
        if self.i != len(self.tokens):
            raise ValueError(f"unexpected {self.peek()!r}")
        return self.calls

    def peek(self, ahead: int = 0) -> str:
        return self.tokens[self.i + ahead][1] if self.i + ahead < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens) or (expected is not None and self.tokens[self.i][1] != expected):
            raise ValueError(f"expected {expected or 'more'}, got {self.peek()!r}")
        self.i += 1
        return self.tokens[self.i - 1]

    def expr(self) -> None:
        self.binary(0)
        if self.peek() == "?":
            self.take("?")
            self.expr()
            self.take(":")
            self.expr()
            self.calls.append("_?_:_")

    def binary(self, level: int) -> None:
        if level == len(_LEVELS):
            self.unary()
            return
        self.binary(level + 1)
        while self.i < len(self.tokens) and self.tokens[self.i][0] == "op" and self.peek() in _LEVELS[level]:
            op = self.take()[1]
            self.binary(level + 1)
            self.calls.append(_BINARY[op])

    def unary(self) -> None:
        if self.peek() == "!":
            self.take()
            self.unary()
            self.calls.append("!_")
        elif self.peek() == "-" and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1][0] == "num":
            self.take()  # CEL's grammar reads '-1' as one negative literal, not a negation
            self.member()
        elif self.peek() == "-":
            self.take()
            self.unary()
            self.calls.append("-_")
        else:
            self.member()

    def member(self) -> None:
        self.primary()
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                name = self.take()[1]
                if self.peek() == "(":
                    self.arguments(")")
                    self.calls.append(name)  # a method call, or a macro such as x.all(...)
            else:
                self.expr()
                self.take("]")
                self.calls.append("_[_]")

    def primary(self) -> None:
        kind, value = self.take()
        if kind == "id" and self.peek() == "(":
            self.arguments(")")
            self.calls.append(value)
        elif value == "(":
            self.expr()
            self.take(")")
        elif value == "[":
            self.arguments("]")
        elif value == "{":
            while self.peek() != "}":
                self.expr()
                self.take(":")
                self.expr()
                if self.peek() != "}":
                    self.take(",")
            self.take("}")
        elif kind == "op":
            raise ValueError(f"unexpected {value!r}")

    def arguments(self, close: str) -> None:
        if close == ")":
            self.take("(")
        while self.peek() != close:
            self.expr()
            if self.peek() != close:
                self.take(",")
        self.take(close)
