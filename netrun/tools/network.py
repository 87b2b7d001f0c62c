"""The ``network`` tool kind: another network, run to its end as a child run.

The child run is one of the engine's durable operations (``ctx.steps.invoke``: a child
run on the local engine, ``step.invoke`` on Inngest), so this tool owns its step. The
child's output is the result. A call past the calling network's ``limits.depth`` or
``limits.runs`` starts nothing (:mod:`netrun.tools.starts`).
"""

from __future__ import annotations

from typing import Any

from ..runtime.args import parameters_schema
from ..runtime.render import RenderError
from ..runtime.steps import StepFailed
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec import NetworkSpec, scopes
from ..spec.tools import NetworkTool
from .starts import recorded, refusal

DEFAULT_PARAMETERS = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
"""What the model passes when the tool declares no parameters: the child's input."""


class NetworkRunTool:
    """A ``network`` tool: renders the child's input, runs the child, returns its output."""

    owns_steps = True
    parks = True  # the run waits for the answer; the execution resumed reads it
    starts_runs = True

    def __init__(self, name: str, spec: NetworkTool) -> None:
        self.name = name
        ref = spec.network
        self.target, self.template = (ref, "{{ args.input }}") if isinstance(ref, str) else (ref.name, ref.input)
        self.description = spec.description or f"Run the {self.target} network on an input and return its output."
        self.parameters = parameters_schema(spec.parameters) if spec.parameters is not None else DEFAULT_PARAMETERS

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        assert ctx.steps is not None, "a child run starts from a run"
        refused = refusal(ctx, f"running network '{self.target}'", "nothing was started")
        if refused is not None:
            return await recorded(ctx, refused)
        try:
            child_input = ctx.renderer.render(self.template, ctx.variables(args, scopes.TOOL_NETWORK))
        except RenderError as exc:
            return ToolOutcome.failure(str(exc))
        try:
            # A child does not know this run's secrets: its output is cleaned against them here
            # (the local engine also records it clean; an Inngest memo is the child's return).
            return ToolOutcome.from_json(ctx.secrets.redact_value(await ctx.steps.invoke(ctx.step_id, self.target, child_input)))
        except StepFailed as exc:
            return ToolOutcome.failure(ctx.secrets.redact(exc.message))


def build(name: str, spec: NetworkTool, network: NetworkSpec) -> NetworkRunTool:
    return NetworkRunTool(name, spec)
