"""Stubbed tools: a fixed result instead of the real call (``netrun test`` cases).

A test must not touch an MCP server, an HTTP endpoint or a human; a stub answers in their
place, as a step like any tool call, and shows the model the real tool's name, description
and parameters where they are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..runtime.args import parameters_schema
from ..runtime.tooling import ToolContext, ToolOutcome
from .naming import function_name

ANY_OBJECT = {"type": "object", "properties": {}, "additionalProperties": True}


@dataclass
class StubTool:
    name: str
    description: str
    parameters: dict[str, Any]
    outcome: ToolOutcome

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        return ToolOutcome(result=self.outcome.result, error=self.outcome.error)


def apply_stubs(program: Any, stubs: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the stubbed tools of a compiled program (a :class:`netrun.compile.Program`)."""
    mcp: dict[str, dict[str, str]] = {}
    """server -> its stubbed tools (tool -> the name the model sees)."""
    for key, stub in stubs.items():
        outcome = ToolOutcome(result=stub.get("result"), error=stub.get("error"))
        spec = program.spec.tools.get(key)
        if spec is not None:  # a declared tool: keep what the model is shown
            program.waits.pop(key, None)
            program.networks.pop(key, None)
            program.events.pop(key, None)
            program.tools[key] = StubTool(key, spec.description or key, parameters_schema(spec.parameters), outcome)
            continue
        server, _, tool = key.partition(".") if "." in key else key.partition("__")  # server.tool, or as the model sees it
        name = function_name(server, tool)
        program.tools[name] = StubTool(name, f"{tool} (from the MCP server {server}; stubbed)", ANY_OBJECT, outcome)
        mcp.setdefault(server, {})[tool] = name
    # A case does not connect a server it stubs (a test stays offline and deterministic):
    # agents that use the server are offered its stubbed tools only.
    for agent in program.agents.values():
        for server, tools in mcp.items():
            used = {tool for s, tool in agent.mcp_refs if s == server}
            if not used:
                continue
            agent.mcp_refs = [ref for ref in agent.mcp_refs if ref[0] != server]
            agent.tools.extend(name for tool, name in tools.items() if ("*" in used or tool in used) and name not in agent.tools)
