"""Check phase, an MCP server's ``approval``: what can be known without starting the server.

The spec already refuses a bad shape, an unknown key (with a did-you-mean) and a bad
``timeout``. What this adds: a mapping that gates nothing, and names the server's
``include``/``exclude`` keep from ever being offered (so their approval never applies).
Whether a name or pattern matches one of the server's tools, and which tools it annotates
as destructive, cannot be known offline: ``netrun validate`` starts no server.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from ..diagnostics import YamlPath
from ..spec.mcp import McpApprovalSpec, McpServerSpec

if TYPE_CHECKING:
    from .network import NetworkChecker


def mcp_approval(c: NetworkChecker, base: YamlPath, server: McpServerSpec) -> None:
    """The ``approval`` of the MCP server at ``base`` (``mcp_servers.<name>``)."""
    approval = server.approval
    if not isinstance(approval, McpApprovalSpec):
        return
    path: YamlPath = (*base, "approval")
    if any(p[: len(path)] == path for p in c.broken):  # a schema error dropped part of it: defaults stand there
        return
    if not approval.tools and not approval.destructive:
        c.report(
            path,
            "approval gates no tool: name tools (or patterns) in 'tools', set 'destructive: true', "
            "or write 'approval: required' to gate every tool of the server",
            "approval-gates-nothing",
        )
    for i, pattern in enumerate(approval.tools):
        where: YamlPath = (*path, "tools", i)
        if not pattern.strip():
            c.report(where, "an empty tool name or pattern matches no tool", "bad-value")
        elif pattern in server.exclude:
            c.warn(
                where,
                f"tool '{pattern}' is both gated and excluded (mcp_servers.{base[-1]}.exclude): "
                "it is never offered, so its approval never applies",
                "gated-excluded-tool",
                key=False,
            )
        elif server.include is not None and not any(fnmatchcase(name, pattern) for name in server.include):
            c.warn(
                where,
                f"'{pattern}' matches none of the tools in mcp_servers.{base[-1]}.include "
                f"({', '.join(server.include) or 'none'}): only included tools are offered",
                "gated-excluded-tool",
                key=False,
            )


def gated_calls(server: McpServerSpec | None, tool: str) -> int:
    """How many of the tools a reference ``server.tool`` (``*``: all) stands for may wait for
    an approval, as far as the file says: the tools of ``include`` for ``*`` (else one); a
    ``destructive`` gate counts as gating, the annotations being known only at run time."""
    approval = server.approval if server is not None else None
    if server is None or approval is None or approval == "none":
        return 0
    if tool == "*":
        return sum(gated_calls(server, name) for name in server.include) if server.include else 1
    if approval == "required" or approval.destructive:
        return 1
    return int(any(fnmatchcase(tool, pattern) for pattern in approval.tools))


__all__ = ["gated_calls", "mcp_approval"]
