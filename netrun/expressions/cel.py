"""Expressions that Inngest evaluates itself, translated from netrun's Jinja to CEL.

Trigger filters (``trigger.if``), flow-control keys (``concurrency.key``, ``throttle.key``,
...), ``idempotency``, ``priority.run`` and ``cancel.if`` run on the Inngest server, which
speaks CEL, not Jinja. Authors write them in the one expression language netrun has; this
module translates the subset the two share, and says precisely what does not translate
(a filter, a function call), so ``netrun validate`` rejects it before Inngest would.

    event.data.tier == "pro" and not event.data.trial   ->   event.data.tier == "pro" && !event.data.trial
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from ..errors import NetrunError
from .jinja import parse_expression

_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "Mod": "%"}
_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "lteq": "<=", "gt": ">", "gteq": ">=", "in": "in"}


class CelError(ValueError, NetrunError, phase="check"):
    """The expression uses something CEL (and so Inngest) cannot evaluate."""


def to_cel(expression: str, constants: Mapping[str, Any] | None = None) -> str:
    """Translate a Jinja expression to CEL; ``constants`` are names replaced by their values
    (``args``, ``state`` at the moment a wait starts)."""
    try:
        tree = parse_expression(expression)
    except TemplateSyntaxError as exc:
        raise CelError(exc.message or "syntax error") from None
    return _Translator(constants or {}).expr(tree)


class _Translator:
    def __init__(self, constants: Mapping[str, Any]) -> None:
        self.constants = constants

    def expr(self, node: nodes.Node) -> str:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise CelError(_unsupported(node))
        return str(method(node))

    # -- values ------------------------------------------------------------------------
    def _Const(self, node: nodes.Const) -> str:  # noqa: N802 - dispatched by node type
        return literal(node.value)

    def _List(self, node: nodes.List) -> str:  # noqa: N802
        return "[" + ", ".join(self.expr(item) for item in node.items) + "]"

    def _Tuple(self, node: nodes.Tuple) -> str:  # noqa: N802
        return "[" + ", ".join(self.expr(item) for item in node.items) + "]"

    def _Name(self, node: nodes.Name) -> str:  # noqa: N802
        if node.name in ("true", "True"):
            return "true"
        if node.name in ("false", "False"):
            return "false"
        if node.name in ("none", "None"):
            return "null"
        if node.name in self.constants:
            return literal(self.constants[node.name])
        return node.name

    def _Getattr(self, node: nodes.Getattr) -> str:  # noqa: N802
        value = self._constant(node)
        if value is not _MISSING:
            return literal(value)
        return f"{self.expr(node.node)}.{node.attr}"

    def _Getitem(self, node: nodes.Getitem) -> str:  # noqa: N802
        value = self._constant(node)
        if value is not _MISSING:
            return literal(value)
        return f"{self.expr(node.node)}[{self.expr(node.arg)}]"

    def _constant(self, node: nodes.Node) -> Any:
        """The value of ``args.x`` / ``state.y["z"]`` when its root is a constant."""
        path: list[Any] = []
        while isinstance(node, nodes.Getattr | nodes.Getitem):
            if isinstance(node, nodes.Getattr):
                path.append(node.attr)
            elif isinstance(node.arg, nodes.Const):
                path.append(node.arg.value)
            else:
                return _MISSING
            node = node.node
        if not isinstance(node, nodes.Name) or node.name not in self.constants:
            return _MISSING
        value = self.constants[node.name]
        for key in reversed(path):
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    # -- operators ---------------------------------------------------------------------
    def _And(self, node: nodes.And) -> str:  # noqa: N802
        return f"({self.expr(node.left)} && {self.expr(node.right)})"

    def _Or(self, node: nodes.Or) -> str:  # noqa: N802
        return f"({self.expr(node.left)} || {self.expr(node.right)})"

    def _Not(self, node: nodes.Not) -> str:  # noqa: N802
        if isinstance(node.node, nodes.Test):
            return self._test(node.node, negate=True)
        return f"!({self.expr(node.node)})"

    def _Neg(self, node: nodes.Neg) -> str:  # noqa: N802
        value = node.node.value if isinstance(node.node, nodes.Const) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            # A negative number is a literal in CEL's grammar (`sign=MINUS? NUM_INT`), not a
            # negation: Inngest's restrictive policy (cancel.if) refuses `-(1)` but takes `-1`.
            return f"-{literal(value)}"
        return f"-({self.expr(node.node)})"

    def _Compare(self, node: nodes.Compare) -> str:  # noqa: N802
        parts, left = [], self.expr(node.expr)
        for op in node.ops:
            right = self.expr(op.expr)
            if op.op == "notin":
                parts.append(f"!({left} in {right})")
            elif op.op in _COMPARE:
                parts.append(f"{left} {_COMPARE[op.op]} {right}")
            else:
                raise CelError(f"the comparison '{op.op}' has no CEL equivalent")
            left = right
        return parts[0] if len(parts) == 1 else "(" + " && ".join(parts) + ")"

    def _Test(self, node: nodes.Test) -> str:  # noqa: N802
        return self._test(node, negate=False)

    def _test(self, node: nodes.Test, negate: bool) -> str:
        if node.name in ("defined", "undefined") and isinstance(node.node, nodes.Getattr):
            present = f"has({self.expr(node.node)})"
            wanted = (node.name == "defined") != negate
            return present if wanted else f"!{present}"
        raise CelError(f"the test 'is {node.name}' has no CEL equivalent (only 'is defined' on a field)")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") and name[1:] in _BINARY:
            op = _BINARY[name[1:]]
            return lambda node: f"({self.expr(node.left)} {op} {self.expr(node.right)})"
        raise AttributeError(name)


_MISSING = object()


def literal(value: Any) -> str:
    """A Python value as a CEL literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {literal(v)}" for k, v in value.items()) + "}"
    raise CelError(f"a {type(value).__name__} value has no CEL literal")


def _unsupported(node: nodes.Node) -> str:
    if isinstance(node, nodes.Filter):
        return f"the filter '| {node.name}' cannot be evaluated by Inngest (it evaluates CEL, not Jinja)"
    if isinstance(node, nodes.Call):
        return "a function or method call cannot be evaluated by Inngest (it evaluates CEL, not Jinja)"
    if isinstance(node, nodes.CondExpr):
        return "'x if y else z' has no CEL form here; write the condition with 'and'/'or'"
    if isinstance(node, nodes.Concat):
        return "'~' (string concatenation) has no CEL form here; use '+'"
    return f"{type(node).__name__} has no CEL equivalent"
