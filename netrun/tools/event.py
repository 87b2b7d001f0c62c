"""The ``event`` tool kind: sends one event, which starts the networks it triggers
(background work) and answers the waits it matches.

Sending is one of the engine's durable operations (``ctx.steps.send_event``), so this tool
owns its step. The event's id is derived from the run and the step, so that a receiver can
tell a repeat (Inngest drops an event id it has seen). Whether the event starts runs is
known only where it arrives (triggers, their ``if``): past ``limits.depth`` or
``limits.runs`` no event is sent at all (:mod:`netrun.tools.starts`).
"""

from __future__ import annotations

from typing import Any

from ..runtime import step_ids
from ..runtime.args import parameters_schema
from ..runtime.render import RenderError
from ..runtime.steps import StepFailed
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec import NetworkSpec, scopes
from ..spec.tools import EventTool
from .starts import recorded, refusal


class SendEventTool:
    """An ``event`` tool: renders the event's name and data, sends it once."""

    owns_steps = True
    starts_runs = True

    def __init__(self, name: str, spec: EventTool) -> None:
        self.name = name
        self.spec = spec.event
        self.description = spec.description or f"Send the event {spec.event.name}."
        self.parameters = parameters_schema(spec.parameters)

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        assert ctx.steps is not None, "an event is sent from a run"
        variables = ctx.variables(args, scopes.TOOL_EVENT)
        try:
            event_name = ctx.renderer.render(self.spec.name, variables).strip()
            data = ctx.renderer.render_typed(self.spec.data, variables) if self.spec.data is not None else {}
        except RenderError as exc:
            return ToolOutcome.failure(str(exc))
        if not event_name or any(c.isspace() for c in event_name):
            return ToolOutcome.failure(f"{event_name!r} is not an event name")
        if not isinstance(data, dict):
            data = {"value": data}
        if "approval_id" in data:  # every approval wait requires one: only people answer approvals
            return ToolOutcome.failure(
                "refused: approval_id is reserved for the people who answer approvals "
                "(POST /events, netrun send); a run cannot approve tool calls; the event was not sent"
            )
        # Its engine gives the runs the event starts depth + 1.
        refused = refusal(ctx, f"sending the event {event_name}", "the event was not sent")
        if refused is not None:
            return await recorded(ctx, refused)
        event_id = step_ids.sent_event(ctx.run_id, ctx.step_id)
        try:
            await ctx.steps.send_event(ctx.step_id, [{"name": event_name, "data": data, "id": event_id}])
        except StepFailed as exc:
            return ToolOutcome.failure(exc.message)
        return ToolOutcome(result={"sent": event_name, "id": event_id})


def build(name: str, spec: EventTool, network: NetworkSpec) -> SendEventTool:
    return SendEventTool(name, spec)
