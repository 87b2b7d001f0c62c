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
from pathlib import Path
from typing import Any, Protocol, cast

from ..compile import AgentProgram, Program
from ..runtime.saving import Writes
from ..runtime.tooling import Tool
from ..spec import NetworkSpec, scopes
from ..spec.tools import CommandTool, EventTool, HttpTool, NetworkTool, PythonTool, StateTool, ToolBase, WaitTool, kind_key
from .approval import gated
from .stub import declared_stub, server_stubs

KINDS: dict[type[ToolBase], str] = {
    StateTool: "netrun.tools.state",
    HttpTool: "netrun.tools.http",
    WaitTool: "netrun.tools.wait",
    NetworkTool: "netrun.tools.network",
    EventTool: "netrun.tools.event",
    PythonTool: "netrun.tools.python",
    CommandTool: "netrun.tools.command",
}
"""Spec type -> the module that builds its tools. Modules are imported when a network
declares such a tool: a network without http tools never imports httpx."""


def build_tool(name: str, spec: ToolBase, network: NetworkSpec, base_dir: Path | None = None) -> Tool:
    """The tool declared as ``name`` (without its approval: see :func:`build_tools`). A kind
    whose module says ``USES_BASE_DIR = True`` is also given the network's folder."""
    try:
        module = importlib.import_module(KINDS[type(spec)])
    except KeyError:
        raise TypeError(f"tool '{name}': no tool kind is registered for {type(spec).__name__}") from None
    if base_dir is not None and getattr(module, "USES_BASE_DIR", False):
        built = cast(Tool, module.build(name, spec, network, base_dir=base_dir))
    else:
        built = cast(Tool, module.build(name, spec, network))
    built.kind = kind_key(type(spec))  # type: ignore[attr-defined]  # what traces and metrics call it
    return built


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
    writes: Mapping[str, tuple[Writes, ...]] = field(default_factory=dict)
    """Declared name -> what a successful call of it writes into the state (its ``state:``,
    its ``save:``): rendered and applied by the turn, outside the call's step, in the
    model's order (:mod:`netrun.runtime.saving`). A state tool replaced by a given tool or
    a stub keeps its ``save:`` (over the replacement's result), not its ``state:``."""

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
    writes: dict[str, tuple[Writes, ...]] = {}
    for name, tool_spec in spec.tools.items():
        built = name not in program.tools and name not in program.stubs
        if name in program.tools:
            tool = cast(Tool, program.tools[name])
        elif name in program.stubs:
            tool = declared_stub(name, tool_spec, program.stubs[name])
        else:
            tool = build_tool(name, tool_spec, spec, program.base_dir)
        declared[name] = gated(tool, tool_spec.approval)
        found = tool_writes(name, tool_spec, built)
        if found:
            writes[name] = found
    return Toolset(declared, _gated_stubs(server_stubs(program.stubs, spec.tools), spec), writes)


def _gated_stubs(servers: Mapping[str, Mapping[str, Tool]], spec: NetworkSpec) -> dict[str, dict[str, Tool]]:
    """Stubbed MCP tools behind their server's approval, as the real ones would be (a test of
    a gated tool answers its approval as a live run must). A stub has no annotations: read
    with MCP's defaults it may be destructive, so ``destructive: true`` gates it."""
    out: dict[str, dict[str, Tool]] = {}
    for server, tools in servers.items():
        found = spec.mcp_servers.get(server)
        approval = found.approval if found is not None else None
        if found is None or approval is None or approval == "none":
            out[server] = dict(tools)
            continue
        every = not isinstance(approval, str) and approval.destructive
        out[server] = {
            remote: gated(stub, approval)
            if (every and not getattr(stub, "read_only", False)) or found.approves_by_name(remote)
            else stub
            for remote, stub in tools.items()
        }
    return out


def tool_writes(name: str, spec: ToolBase, built: bool = True) -> tuple[Writes, ...]:
    """What a successful call of the declared tool ``name`` writes: a state tool's ``state:``
    (when the registry ``built`` it: a replacement does not write it), then its ``save:``."""
    found: list[Writes] = []
    if built and isinstance(spec, StateTool):
        found.append(Writes(spec.state, ("tools", name, "state"), scopes.TOOL_STATE, shows_result=True))
    if spec.save:
        found.append(Writes(spec.save, ("tools", name, "save"), scopes.TOOL_SAVE))
    return tuple(found)
