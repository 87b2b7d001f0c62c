"""The limits on the runs a run may start, shared by the kinds that start them.

A ``network`` tool call starts a child run; an ``event`` tool call may start the runs its
event triggers. Both are refused past the calling network's ``limits.depth`` (how deep
runs may start runs) and ``limits.runs`` (how many one run may start): the refusal is an
outcome for the model, recorded as a step so that it is reported once, like any outcome.
"""

from __future__ import annotations

from typing import Any

from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec.network import DEFAULT_DEPTH, DEFAULT_RUNS


def refusal(ctx: ToolContext, what: str, consequence: str) -> ToolOutcome | None:
    """Why this call may not start a run (depth first, then the count), or None."""
    return _past_depth(ctx, what, consequence) or _past_runs(ctx, consequence)


async def recorded(ctx: ToolContext, outcome: ToolOutcome) -> ToolOutcome:
    """``outcome`` as the output of the call's step: a replay reads it, reporting it once."""
    assert ctx.steps is not None, "a tool that starts runs is called in a run"

    async def out() -> dict[str, Any]:
        return outcome.to_json()

    return ToolOutcome.from_json(await ctx.steps.run(ctx.step_id, out))


def _past_depth(ctx: ToolContext, what: str, consequence: str) -> ToolOutcome | None:
    # The calling network's limit applies: only it can tell its model.
    limit = ctx.limits.depth if ctx.limits is not None and ctx.limits.depth is not None else DEFAULT_DEPTH
    if ctx.depth + 1 <= limit:
        return None
    return ToolOutcome.failure(
        f"refused: {what} would start a run at depth {ctx.depth + 1}, past the limit of {limit} "
        f"(limits.depth of network '{ctx.network}'; this run is at depth {ctx.depth}); {consequence}"
    )


def _past_runs(ctx: ToolContext, consequence: str) -> ToolOutcome | None:
    limit = ctx.limits.runs if ctx.limits is not None and ctx.limits.runs is not None else DEFAULT_RUNS
    start = ctx.start or 0
    if start < limit:
        return None
    return ToolOutcome.failure(
        f"refused: this run may start at most {limit} runs (limits.runs of network '{ctx.network}': each network tool call "
        f"and each event sent counts one) and this is call {start + 1}; {consequence}"
    )
