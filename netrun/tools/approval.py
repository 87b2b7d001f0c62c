"""Approval: a wrapper any tool can have, so that a human decides before each call runs.

A declared tool with ``approval: required`` (or a mapping with ``timeout`` and ``event``) is
built wrapped in :class:`Approved`. Each gated call waits on its own approval id
(durability rule 7: an approval answers exactly one tool call): the decision is an event
(default ``netrun/approval``) whose data carries this run's ``run_id``, that
``approval_id``, ``approved`` (true or false), and optionally ``tool`` (which must then be
this call's) and ``reason``. The tool calls of one turn run in parallel, so several
approvals of a run may wait at once; approving or rejecting one leaves the others waiting.
An approved call runs the wrapped tool as the loop would (:func:`run_tool`); a rejected
one is an error for the model, from the approval's step.
"""

from __future__ import annotations

from typing import Any

from ..runtime import events, step_ids
from ..runtime.approvals import APPROVAL_EVENT, approval_id
from ..runtime.steps import Wait
from ..runtime.tooling import Tool, ToolContext, ToolOutcome, run_tool, starts_runs
from ..spec import scopes
from ..spec.base import parse_duration
from ..spec.tools import ApprovalSpec

DEFAULT_TIMEOUT = "24h"

DECISION_IF = (
    "async.data.run_id == run.id and async.data.approval_id == approval.id"
    " and (async.data.tool is not defined or async.data.tool == approval.tool)"
)
"""The id is required: an id-less approval is resolved to one id by whoever knows how many
calls wait (`netrun serve`, `netrun send`), never by this condition."""


class Approved:
    """``tool``, run only once a human approves the call."""

    owns_steps = True
    wraps = True
    """Not observed itself: the wait for the decision parks the run (the stream reports it),
    and the approved call is observed as the tool's own call."""

    def __init__(self, tool: Tool, approval: str | ApprovalSpec) -> None:
        self.tool = tool
        self.kind = getattr(tool, "kind", None)
        self.name, self.description, self.parameters = tool.name, tool.description, tool.parameters
        self.starts_runs = starts_runs(tool)
        self.timeout = DEFAULT_TIMEOUT if isinstance(approval, str) else approval.timeout
        self.event = (None if isinstance(approval, str) else approval.event) or APPROVAL_EVENT

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        assert ctx.steps is not None, "an approval waits in a run"
        step_id, run_id = ctx.step_id, ctx.run_id
        ident = approval_id(run_id, step_id)
        wait_step = step_ids.approval(step_id)
        wait = Wait(
            event=self.event,
            timeout=parse_duration(self.timeout),
            if_=DECISION_IF,
            # ``approval`` also tells the engines' journals which waits are approvals (the
            # pending list of `GET /runs/{id}`); its values are fixed when the wait starts.
            variables=scopes.variables(
                scopes.APPROVAL_IF,
                {
                    "run": {"id": run_id},
                    "approval": {"id": ident, "tool": self.name, "args": args, "step": step_id, "event": self.event},
                },
            ),
        )
        emit = ctx.emit or _silent
        emit(
            events.APPROVAL_REQUESTED,
            ctx.steps.replaying(wait_step),
            step=step_id,
            approval_id=ident,
            tool=self.name,
            args=args,
            event=self.event,
            timeout=self.timeout,
        )
        decision = await ctx.steps.wait_for_event(wait_step, wait)
        data = (decision or {}).get("data") or {}
        resolution = "expired" if decision is None else "approved" if data.get("approved") is True else "denied"
        emit(
            events.APPROVAL_RESOLVED,
            not ctx.steps.fresh(wait_step),
            step=step_id,
            approval_id=ident,
            tool=self.name,
            resolution=resolution,
            reason=data.get("reason"),
            by=data.get("by"),
        )
        if resolution == "approved":
            return await run_tool(self.tool, args, ctx)
        if decision is None:
            message = f"not approved: no decision within {self.timeout}; the tool did not run"
        else:
            reason = data.get("reason")
            message = "rejected by a human" + (f": {reason}" if reason else "") + "; the tool did not run"
        return ToolOutcome(error=message, step=wait_step)


def gated(tool: Tool, approval: str | ApprovalSpec | None) -> Tool:
    """``tool`` behind an approval when its spec asks for one, else ``tool`` itself."""
    if approval is None or approval == "none":
        return tool
    return Approved(tool, approval)


def _silent(kind: str, replayed: bool = False, **data: Any) -> None:
    pass
