"""Stubbed tools: a fixed result instead of the real call (``netrun test`` cases).

A test must not touch an MCP server, an HTTP endpoint or a human; a stub answers in their
place, as a step like any tool call, and shows the model the real tool's name, description
and parameters where they are known. Stubs plug in where the run builds its tools
(:func:`netrun.tools.registry.build_tools`, from ``Program.stubs``): the program is planned
with them (a stubbed server is never connected), never patched afterwards.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from ..compile import stub_target
from ..runtime.args import parameters_schema
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec.tools import kind_key
from .naming import function_name

ANY_OBJECT = {"type": "object", "properties": {}, "additionalProperties": True}


@dataclass
class StubTool:
    name: str
    description: str
    parameters: dict[str, Any]
    outcome: ToolOutcome
    read_only: bool = False
    """Its server annotates it read-only (``Stub.read_only``): ``destructive`` does not gate it."""
    kind: str = "mcp"
    """The kind of the tool it stands for (traces and metrics name the call by it)."""

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        return ToolOutcome(result=self.outcome.result, error=self.outcome.error)


def declared_stub(name: str, spec: Any, stub: Mapping[str, Any]) -> StubTool:
    """The stub for a declared tool: the model is shown what the real tool shows."""
    return StubTool(name, spec.description or name, parameters_schema(spec.parameters), _outcome(stub), kind=kind_key(type(spec)))


def server_stubs(stubs: Mapping[str, Mapping[str, Any]], declared: Container[str]) -> dict[str, dict[str, StubTool]]:
    """server -> its stubbed tools (the tool's name on the server -> its stub), for the stubs
    that are not ``declared`` tools (``server.tool``, or as the model sees it)."""
    out: dict[str, dict[str, StubTool]] = {}
    for key, stub in stubs.items():
        if key in declared:
            continue
        server, tool = stub_target(key)
        name = function_name(server, tool)
        out.setdefault(server, {})[tool] = StubTool(
            name, f"{tool} (from the MCP server {server}; stubbed)", ANY_OBJECT, _outcome(stub), bool(stub.get("read_only"))
        )
    return out


def _outcome(stub: Mapping[str, Any]) -> ToolOutcome:
    return ToolOutcome(result=stub.get("result"), error=stub.get("error"))
