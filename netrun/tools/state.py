"""The ``state`` tool kind: writes values into the network state.

The write is not done here, nor in the call's step: the turn renders the tool's ``state:``
values once the call's step is done, outside it, on the state the turn's earlier calls left,
and applies them in the order the model asked for the calls (:mod:`netrun.runtime.saving`,
from :attr:`netrun.tools.registry.Toolset.writes`). The step records that the call happened;
a replay renders the same values from the same journaled arguments in the same order, so two
calls of one turn that write one field (``count: "{{ state.count + 1 }}"``) both land.
"""

from __future__ import annotations

from typing import Any

from ..runtime.args import parameters_schema
from ..runtime.saving import StateOp, coerce, render_saves
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec import NetworkSpec
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
        """Nothing to do inside the step: the turn writes the values (see the module's docstring)."""
        return ToolOutcome()

    def ops(self, args: dict[str, Any], ctx: ToolContext) -> list[StateOp]:
        """The writes one call makes on ``ctx.state`` (as the turn renders them; raises
        :class:`netrun.runtime.saving.SaveError` for a template that fails)."""
        return render_saves(self.spec.state, ctx.variables(args), self.fields, ctx.renderer, ("tools", self.name, "state"))


def build(name: str, spec: StateTool, network: NetworkSpec) -> StateToolImpl:
    return StateToolImpl(name, spec, parameters_schema(spec.parameters), dict(network.state))


__all__ = ["StateToolImpl", "build", "coerce"]
