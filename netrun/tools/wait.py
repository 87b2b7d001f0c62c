"""The ``wait_for_event`` tool kind: the run pauses until an event answers the call.

Human input, or any outside signal. The wait is one of the engine's durable operations
(``ctx.steps.wait_for_event``), so this tool owns its step: on the local engine the run
suspends and resumes when the event arrives; on Inngest the wait is ``step.waitForEvent``.
The event's data is the result; no event within the timeout is an error for the model.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..runtime.args import parameters_schema
from ..runtime.events import WAITING
from ..runtime.steps import Wait, path_get
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec import NetworkSpec, scopes
from ..spec.base import parse_duration
from ..spec.tools import WaitTool

DEFAULT_TIMEOUT = timedelta(hours=24)


class WaitForEventTool:
    """A ``wait_for_event`` tool: waits for its event, matched to this run."""

    owns_steps = True
    parks = True  # the run waits for the answer; the execution resumed reads it

    def __init__(self, name: str, spec: WaitTool) -> None:
        self.name = name
        self.spec = spec.wait_for_event
        self.description = spec.description or f"Ask a human and wait for the answer (event {spec.wait_for_event.event})."
        self.parameters = parameters_schema(spec.parameters)

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        assert ctx.steps is not None, "a wait runs in a run"
        spec = self.spec
        if spec.match and path_get(ctx.event, spec.match) is None:
            # Matching "no value" with "no value" would hand one answer to every such run.
            return ToolOutcome.failure(
                f"cannot wait for {spec.event}: the event that started this run has no {spec.match} to match on"
            )
        # What `netrun validate` lets `if:` read, less `event` and `async`: the engine adds
        # them where the wait is matched (scopes.at_match; it knows the run's event).
        variables = scopes.variables(
            scopes.WAIT_IF, {"args": args, "state": dict(ctx.state), "input": ctx.input, "run": {"id": ctx.run_id}}
        )
        wait = Wait(
            event=spec.event,
            timeout=parse_duration(spec.timeout) if spec.timeout else DEFAULT_TIMEOUT,
            match=spec.match,
            if_=spec.if_,
            match_value=path_get(ctx.event, spec.match) if spec.match else None,
            variables=variables,
        )
        if ctx.emit is not None:
            ctx.emit(
                WAITING,
                ctx.steps.replaying(ctx.step_id),
                step=ctx.step_id,
                tool=self.name,
                event=spec.event,
                match=spec.match,
                match_value=wait.match_value,
                args=args,
            )
        received = await ctx.steps.wait_for_event(ctx.step_id, wait)
        if received is None:
            return ToolOutcome.failure(f"no answer: no {spec.event} event arrived within {spec.timeout}")
        return ToolOutcome(result=received.get("data", received))


def build(name: str, spec: WaitTool, network: NetworkSpec) -> WaitForEventTool:
    return WaitForEventTool(name, spec)
