"""The ``state`` tool kind: writes values into the network state.

The write is not done here: the tool returns a ``state_patch`` and the loop applies it
outside the step, so that a replay rebuilds the same state (durability rule 2).
"""

from __future__ import annotations

import json
from typing import Any

from ..runtime.args import parameters_schema
from ..runtime.render import RenderError, render_typed
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec import NetworkSpec
from ..spec.params import JsonSchema
from ..spec.tools import StateTool


class StateToolImpl:
    def __init__(self, name: str, spec: StateTool, parameters: dict[str, Any], fields: dict[str, Any]) -> None:
        self.name = name
        self.spec = spec
        self.parameters = parameters
        self.fields = fields
        """Declared state field -> its schema, for coercing rendered text to the field's type."""
        self.description = spec.description or f"Set {', '.join(spec.state)} in the network state."

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        try:
            values = {key: render_typed(value, ctx.variables(args)) for key, value in self.spec.state.items()}
        except RenderError as exc:
            return ToolOutcome.failure(str(exc))
        patch = {key: coerce(value, self.fields.get(key)) for key, value in values.items()}
        return ToolOutcome(result={"updated": patch}, state_patch=patch)


def build(name: str, spec: StateTool, network: NetworkSpec) -> StateToolImpl:
    return StateToolImpl(name, spec, parameters_schema(spec.parameters), dict(network.state))


def coerce(value: Any, field: Any) -> Any:
    """A rendered value in the declared type: text that reads as one becomes it (``"5"`` for
    an integer); a typed value for a string field becomes text (JSON for arrays and objects)."""
    kind = field.type if isinstance(field, JsonSchema) else field
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
