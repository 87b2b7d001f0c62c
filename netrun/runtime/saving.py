"""Writing into the network state: a tool's ``save:``, the state tool's ``state:``.

The stable interface (other work builds on these names; keep them):

- :data:`netrun.spec.tools.Saves`: the spec type of a ``save:`` mapping (state field -> a
  value to set, or ``{set: ...}``, ``{append: ...}``, ``{merge: ...}``);
- :class:`StateOp`: one operation on one field (``set``, ``append`` or ``merge``);
- :func:`render_saves` ``(saves, variables, fields, renderer=..., place=()) -> list[StateOp]``:
  the operations a ``Saves`` mapping writes, rendered against a place's variables;
- :func:`apply_ops` ``(state, ops, fields) -> dict[str, Any]``: applies operations to a state
  dict in order (all or none), returning the new values of the fields written;
- :func:`ops_from_patch` ``(patch) -> list[StateOp]``: a plain ``state_patch`` dict as set
  operations (journals written before operations existed);
- :func:`coerce` ``(value, field)``: a rendered value in the field's declared type;
- :func:`save_outcome`: what the turn does with one call's recorded outcome (an error saves
  nothing; a legacy ``state_patch`` is set operations; else the tool's :class:`Writes`);
- :class:`SaveError`: a write that could not be rendered or applied;
- :class:`Writes`: what a declared tool writes (its ``save:`` or ``state:``), as a run's
  toolset carries it (:attr:`netrun.tools.registry.Toolset.writes`).

Durability rule 2: writes are rendered and applied outside any step, by the loop, from what
steps recorded (the model's arguments, a tool's result) and from the state the earlier writes
left, in the order the model asked for the calls. A replay sees the same outputs in the same
order, so it rebuilds the same state, and two calls of one turn that write the same field
(two appends, ``count: "{{ state.count + 1 }}"`` twice) both land.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..diagnostics import YamlPath
from ..errors import NetrunError
from ..spec import scopes
from ..spec.params import JsonSchema
from ..spec.tools import SaveAppend, SaveMerge, Saves, SaveSet
from .render import Renderer, RenderError, renderer_for
from .tooling import ToolOutcome

Op = Literal["set", "append", "merge"]


class SaveError(NetrunError, phase="run"):
    """A state write failed: its template (an undefined value), or its operation (``append``
    to a field that holds no array, ``merge`` of something that is not an object)."""


@dataclass(frozen=True)
class StateOp:
    """One write into one state field, its value already rendered and coerced."""

    op: Op
    field: str
    value: Any

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "field": self.field, "value": self.value}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StateOp:
        return cls(data["op"], data["field"], data.get("value"))


def ops_from_patch(patch: Mapping[str, Any]) -> list[StateOp]:
    """A plain ``state_patch`` (field -> value) as set operations, in its order: how outcomes
    journaled before operations existed (and tools that compute their own patch) still apply."""
    return [StateOp("set", key, value) for key, value in patch.items()]


def _kind(field: Any) -> Any:
    return field.type if isinstance(field, JsonSchema) else field


def _items(field: Any) -> Any:
    return field.items if isinstance(field, JsonSchema) else None


def render_saves(
    saves: Saves,
    variables: Mapping[str, Any],
    fields: Mapping[str, Any],
    renderer: Renderer | None = None,
    place: YamlPath = (),
) -> list[StateOp]:
    """The operations ``saves`` writes, rendered against ``variables`` (every string inside a
    value is a template; a single ``{{ expr }}`` keeps its JSON type) and coerced to the
    declared ``fields`` (state field -> type name or JSON Schema). ``place``, the YAML path
    of the mapping (``("tools", "fetch", "save")``), prefixes a failure's message.

    Raises :class:`SaveError` for a template that fails or a value that cannot be appended or
    merged; nothing is written then.
    """
    renderer = renderer or renderer_for({})
    ops: list[StateOp] = []
    for key, write in saves.items():
        where = (*place, key)
        if isinstance(write, SaveAppend):
            op: Op
            op, raw, where = "append", write.append, (*where, "append")
        elif isinstance(write, SaveMerge):
            op, raw, where = "merge", write.merge, (*where, "merge")
        elif isinstance(write, SaveSet):
            op, raw, where = "set", write.set, (*where, "set")
        else:
            op, raw = "set", write
        try:
            value = renderer.render_typed(raw, variables)
        except RenderError as exc:
            raise SaveError(f"{_name(where)}: {exc}").at(path=where) from None
        ops.append(StateOp(op, key, _coerced(op, key, value, fields.get(key), where)))
    return ops


def _coerced(op: Op, key: str, value: Any, field: Any, where: YamlPath) -> Any:
    if op == "set":
        return coerce(value, field)
    if op == "append":
        if isinstance(value, str):
            value = coerce(value, "array")  # text that reads as a JSON array adds its items
        items = value if isinstance(value, list) else [value]
        return [coerce(item, _items(field)) for item in items]
    value = coerce(value, "object")
    if not isinstance(value, dict):
        raise SaveError(f"{_name(where)}: merge into '{key}' needs an object, got {_type(value)}").at(path=where)
    return value


def apply_ops(state: dict[str, Any], ops: Iterable[StateOp], fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Apply ``ops`` to ``state`` in order, each on what the previous left: ``set`` replaces,
    ``append`` extends an array (a field not set yet starts empty), ``merge`` sets the keys of
    an object (shallow). Set values are coerced to ``fields``' types (as :func:`coerce`).

    All or none: on a :class:`SaveError` (append to a field holding no array, merge into one
    holding no object) ``state`` is left as it was. Returns the new value of each field written.
    """
    fields = fields or {}
    written: dict[str, Any] = {}
    for op in ops:
        current = written[op.field] if op.field in written else state.get(op.field)
        if op.op == "set":
            written[op.field] = coerce(op.value, fields.get(op.field))
        elif op.op == "append":
            if current is not None and not isinstance(current, list):
                raise SaveError(f"cannot append to state field '{op.field}': it holds {_type(current)}, not an array")
            items = op.value if isinstance(op.value, list) else [op.value]
            written[op.field] = [*(current or []), *items]
        else:
            if current is not None and not isinstance(current, dict):
                raise SaveError(f"cannot merge into state field '{op.field}': it holds {_type(current)}, not an object")
            if not isinstance(op.value, dict):
                raise SaveError(f"cannot merge {_type(op.value)} into state field '{op.field}': merge needs an object")
            written[op.field] = {**(current or {}), **op.value}
    state.update(written)
    return written


def coerce(value: Any, field: Any) -> Any:
    """A rendered value in the declared type: text that reads as one becomes it (``"5"`` for
    an integer); a typed value for a string field becomes text (JSON for arrays and objects)."""
    kind = _kind(field)
    if kind == "string" and not isinstance(value, str):
        return json.dumps(value) if isinstance(value, list | dict) else str(value)
    if not isinstance(value, str) or kind is None:
        return value
    text = value.strip()
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind in ("array", "object"):
            parsed = json.loads(text)
            if isinstance(parsed, list if kind == "array" else dict):
                return parsed
    except ValueError:
        pass
    return value


@dataclass(frozen=True)
class Writes:
    """What one declared tool writes once a call of it succeeds: its ``state:`` (a state tool,
    whose result is then the values written) or its ``save:``."""

    saves: Saves
    place: YamlPath
    """Where the mapping is in the file (``("tools", "fetch", "save")``), named by failures."""
    scope: scopes.Place
    """The scope-table place its templates are rendered at."""
    shows_result: bool = False
    """The call's result is ``{"updated": <the values written>}`` (the state tool)."""


def mcp_writes(servers: Mapping[str, Any], name: str) -> tuple[Writes, ...]:
    """What a call of the MCP tool the model knows as ``name`` writes: its server's ``save:``
    entry for it (``mcp_servers.S.save.TOOL``). Found from the file alone, by the function name
    each entry's tool has, so that a replayed turn, which connects no server, saves the same."""
    from ..tools.naming import function_name

    for server, spec in servers.items():
        for tool, saves in getattr(spec, "save", {}).items():
            if saves and function_name(server, tool) == name:
                return (Writes(saves, ("mcp_servers", server, "save", tool), scopes.TOOL_SAVE),)
    return ()


def save_outcome(
    state: dict[str, Any],
    writes: Sequence[Writes],
    outcome: ToolOutcome,
    variables: Mapping[str, Any],
    fields: Mapping[str, Any],
    renderer: Renderer | None = None,
    redact: Callable[[Any], Any] = lambda value: value,
) -> ToolOutcome:
    """Apply what one recorded call writes to ``state`` and return its outcome as the model
    sees it. ``variables``: the tool places' variables but ``state`` (taken from ``state``,
    as the earlier calls left it) and ``result`` (the outcome's); ``redact`` cleans each
    rendered value (the run's secrets).

    - an error outcome writes nothing;
    - an outcome holding a ``state_patch`` (journaled before operations existed, or a tool
      that computes its own) applies it as set operations, and ``writes`` are not rendered;
    - otherwise every ``writes`` mapping is rendered on the state before this call and
      applied in order, all or none: a failure is the call's error (for a state tool, its
      only outcome; for another tool, the model is told it ran but saved nothing).
    """
    if outcome.error is not None:
        return outcome
    if outcome.state_patch:
        apply_ops(state, ops_from_patch(outcome.state_patch))
        return outcome
    if not writes:
        return outcome
    values = {**variables, "state": dict(state), "result": outcome.result}
    shows = any(w.shows_result for w in writes)
    try:
        ops: list[StateOp] = []
        for w in writes:
            scoped = scopes.variables(w.scope, {k: v for k, v in values.items() if k in w.scope.built})
            ops += render_saves(w.saves, scoped, fields, renderer, w.place)
        written = apply_ops(state, [StateOp(o.op, o.field, redact(o.value)) for o in ops], fields)
    except SaveError as exc:
        why = str(exc) if shows else f"the call ran, but its result was not saved into state: {exc}"
        return dataclasses.replace(outcome, error=why)
    return dataclasses.replace(outcome, result={"updated": written}) if shows else outcome


def _type(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _name(path: YamlPath) -> str:
    return ".".join(str(p) for p in path) if path else "save"


__all__ = ["SaveError", "StateOp", "Writes", "apply_ops", "coerce", "ops_from_patch", "render_saves", "save_outcome"]
