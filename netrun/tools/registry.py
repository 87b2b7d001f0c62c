"""The one registry of tool kinds: each declared tool's spec type -> the module that builds it.

A run builds its tools here (:func:`build_tools`), from its program: compile plans which
tools each agent offers, and builds none (it stays below the runtime and the tools).

Adding a kind touches three files: its spec model in ``netrun/spec/tools.py`` (a member of
``ToolSpec``, its key in ``TOOL_KINDS``), its module in ``netrun/tools/`` with a
``build(name, spec, network) -> Tool`` function, and one entry in :data:`KINDS` (a kind
with templates also adds its place to :mod:`netrun.spec.scopes`, where validate finds
them). Nothing else names kinds: the loop reads what a tool does from the tool (``owns_steps``,
``starts_runs``), approval wraps any kind (:mod:`netrun.tools.approval`), stubs replace any
kind (:mod:`netrun.tools.stub`), and ``netrun validate`` reads the kind keys from the spec.

Tools from MCP servers are not declared: :mod:`netrun.tools.mcp` lists and calls them,
through the run's servers (opened by the engine, connected on first use).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from ..compile import AgentProgram, Program
from ..runtime.tooling import Tool
from ..spec import NetworkSpec
from ..spec.tools import EventTool, HttpTool, NetworkTool, StateTool, ToolBase, WaitTool
from .approval import gated
from .stub import declared_stub, server_stubs

KINDS: dict[type[ToolBase], str] = {
    StateTool: "netrun.tools.state",
    HttpTool: "netrun.tools.http",
    WaitTool: "netrun.tools.wait",
    NetworkTool: "netrun.tools.network",
    EventTool: "netrun.tools.event",
}
"""Spec type -> the module that builds its tools. Modules are imported when a network
declares such a tool: a network without http tools never imports httpx."""


def build_tool(name: str, spec: ToolBase, network: NetworkSpec) -> Tool:
    """The tool declared as ``name`` (without its approval: see :func:`build_tools`)."""
    try:
        module = KINDS[type(spec)]
    except KeyError:
        raise TypeError(f"tool '{name}': no tool kind is registered for {type(spec).__name__}") from None
    return cast(Tool, importlib.import_module(module).build(name, spec, network))


class ToolServers(Protocol):
    """The run's MCP servers, as the toolset uses them (:class:`netrun.tools.mcp.McpServers`)."""

    async def resolve(self, refs: Iterable[str]) -> list[Any]: ...


@dataclass
class Toolset:
    """The tools of one run: every declared tool, built, and the stubs of stubbed servers."""

    declared: dict[str, Tool]
    """Declared name -> its tool (a stub, or a given tool, where the program says so;
    behind its approval where its spec asks for one)."""
    servers: Mapping[str, Mapping[str, Tool]] = field(default_factory=dict)
    """Stubbed MCP server -> its stubbed tools (the tool's name on the server -> its stub)."""

    async def offered(self, agent: AgentProgram, mcp: ToolServers | None = None) -> dict[str, Tool]:
        """The tools ``agent`` offers, by the function name the model sees: its declared
        tools, then its stubbed MCP tools, then (given ``mcp``, which lists them: that may
        connect servers) its MCP tools."""
        offered: dict[str, Tool] = {name: self.declared[name] for name in agent.tools if name in self.declared}
        for server, stubs in self.servers.items():
            used = {tool for s, tool in agent.stub_refs if s == server}
            for tool, stub in stubs.items():
                if "*" in used or tool in used:
                    offered.setdefault(stub.name, stub)
        if mcp is not None and agent.mcp_refs:
            for t in await mcp.resolve(f"{server}.{tool}" for server, tool in agent.mcp_refs):
                offered.setdefault(t.name, t)
        return offered


def build_tools(program: Program) -> Toolset:
    """Build a run's tools from the registry; a tool the program gives (``Program.tools``)
    or stubs (``Program.stubs``, ``netrun test``) takes the place of the registry's."""
    spec = program.spec
    declared: dict[str, Tool] = {}
    for name, tool_spec in spec.tools.items():
        if name in program.tools:
            tool = cast(Tool, program.tools[name])
        elif name in program.stubs:
            tool = declared_stub(name, tool_spec, program.stubs[name])
        else:
            tool = build_tool(name, tool_spec, spec)
        declared[name] = gated(tool, tool_spec.approval)
    return Toolset(declared, server_stubs(program.stubs, spec.tools))
