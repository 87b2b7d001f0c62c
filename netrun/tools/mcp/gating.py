"""Which MCP tools wait for a human's approval of each call (``mcp_servers.<name>.approval``).

A server's ``approval`` gates tools by their names on the server (or ``fnmatch`` patterns),
and, with ``destructive: true``, by the server's own annotations, read with MCP's defaults:
a tool not annotated ``readOnlyHint: true`` whose ``destructiveHint`` is not ``false`` may be
destructive (so a tool the server does not annotate is gated too). A gated tool is the
declared tools' :class:`~netrun.tools.approval.Approved` wrapper around the MCP tool: each call
waits on its own approval id, a rejection or a timeout is an error result for the model, and
an approved call runs the MCP tool in the call's step, exactly once.

Replays: the decision is journaled by the approval's wait step, and the MCP call by the
call's step. When a server cannot be listed (it is down), its annotations are unknown: a
tool gated only by ``destructive`` then goes through the approval when an earlier execution
already journaled one for that call (so a replay tells the same story), and is otherwise
called at once (it fails with the server's error; nobody is asked to approve a call that
cannot run).
"""

from __future__ import annotations

from typing import Any

from mcp import types

from ...runtime import step_ids
from ...runtime.tooling import Tool, ToolContext, ToolOutcome, run_tool
from ...spec.mcp import McpServerSpec
from ..approval import Approved
from .tool import McpTool


def destructive(source: types.Tool) -> bool:
    """Whether the server's annotations let ``source`` be destructive (MCP's defaults:
    ``readOnlyHint`` false, ``destructiveHint`` true)."""
    hints = source.annotations
    if hints is None:
        return True
    return hints.read_only_hint is not True and hints.destructive_hint is not False


def named(spec: McpServerSpec, remote_name: str) -> bool:
    """Whether the server's ``approval`` gates ``remote_name`` whatever its annotations:
    ``required``, or a name or pattern of ``approval.tools`` that matches it."""
    return spec.approves_by_name(remote_name)


def needs_approval(spec: McpServerSpec, listing: list[types.Tool] | None, remote_name: str) -> bool | None:
    """Whether calls of ``remote_name`` wait for an approval: ``None`` when that depends on
    annotations a server that could not be listed did not give."""
    if named(spec, remote_name):
        return True
    approval = spec.approval
    if approval is None or isinstance(approval, str) or not approval.destructive:
        return False
    if listing is None:
        return None
    source = next((t for t in listing if t.name == remote_name), None)
    return None if source is None else destructive(source)


class GatedMcpTool:
    """An MCP tool whose gating is known only at call time (its server could not be listed):
    through the approval when an earlier execution journaled one for this call, else at once."""

    owns_steps = True
    wraps = True
    """Not observed itself: the call it makes (the tool's, or the approval's) is."""
    kind = "mcp"

    def __init__(self, approved: Approved) -> None:
        self.approved = approved
        self.tool: Tool = approved.tool
        self.name, self.description, self.parameters = approved.name, approved.description, approved.parameters

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        assert ctx.steps is not None, "an MCP tool call runs in a run"
        if ctx.steps.replaying(step_ids.approval(ctx.step_id)):
            return await self.approved.call(args, ctx)
        return await run_tool(self.tool, args, ctx)


def gate(tool: McpTool, listing: list[types.Tool] | None) -> Tool:
    """``tool`` as the agent offers it: behind its server's approval where that gates it."""
    spec = tool.connection.spec
    decided = needs_approval(spec, listing, tool.remote_name)
    if decided is False:
        return tool
    approval = spec.approval
    assert approval is not None and approval != "none"
    approved = Approved(tool, approval)
    return approved if decided else GatedMcpTool(approved)


__all__ = ["GatedMcpTool", "destructive", "gate", "named", "needs_approval"]
