"""Compile: a checked NetworkSpec -> a Program the runtime executes (no I/O happens here).

The program binds each agent to its model client and tools, and carries the definition
hash that a run records at its start: a run resumes on the definition it started with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .models.scripted import ScriptedClient, load_replies
from .runtime.args import parameters_schema
from .runtime.model import ModelClient
from .runtime.render import Renderer, renderer_for
from .runtime.tooling import Tool
from .spec import NetworkSpec
from .spec.agent import AgentSpec
from .spec.model import ModelSpec
from .spec.params import JsonSchema
from .spec.tools import EventTool, HttpTool, NetworkTool, StateTool, WaitTool
from .tools.state import StateToolImpl

ModelFactory = Callable[[ModelSpec], ModelClient]


@dataclass
class AgentProgram:
    name: str
    spec: AgentSpec
    model: ModelClient
    tools: list[str]
    """Declared tool names this agent offers (MCP references are resolved per run)."""
    mcp_refs: list[tuple[str, str]]
    """(server, tool or '*') pairs from ``server.tool`` references and ``mcp_servers``."""


@dataclass
class Program:
    spec: NetworkSpec
    hash: str
    base_dir: Path
    agents: dict[str, AgentProgram]
    tools: dict[str, Tool]
    waits: dict[str, WaitTool] = field(default_factory=dict)
    networks: dict[str, NetworkTool] = field(default_factory=dict)
    """Tools that run another network (through the engine's ``invoke``)."""
    events: dict[str, EventTool] = field(default_factory=dict)
    """Tools that send an event (through the engine's ``send_event``)."""
    router_model: ModelClient | None = None
    renderer: Renderer = field(default_factory=Renderer)
    """Renders this network's templates (with its prompt fragments)."""
    env_names: tuple[str, ...] = ()
    """The variables the definition references as ``${NAME}``: their values are the run's
    secrets (:meth:`netrun.redact.Secrets.for_names`)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def max_iter(self) -> int:
        return self.spec.turn_limit

    def initial_state(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        # Every declared field exists from the start (None until set), so that rules such
        # as `not state.answer` work under strict undefined variables.
        state: dict[str, Any] = {}
        for name, fld in self.spec.state.items():
            state[name] = fld.default if isinstance(fld, JsonSchema) else None
        state.update(overrides or {})
        return state


def definition_hash(spec: NetworkSpec) -> str:
    text = json.dumps(spec.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_spec(ref: str | ModelSpec | None) -> ModelSpec | None:
    if ref is None or isinstance(ref, ModelSpec):
        return ref
    return ModelSpec(id=ref)


def default_model_factory(base_dir: Path, environ: Mapping[str, str], prefix: str = "") -> ModelFactory:
    """Clients for real models (litellm) and ``scripted/FILE`` ones; ``prefix`` keeps a
    child run's scripted callers apart from its parent's."""

    def make(spec: ModelSpec) -> ModelClient:
        provider, _, rest = spec.id.partition("/")
        if provider == "scripted":
            path = base_dir / rest
            return ScriptedClient(load_replies(path), str(path), prefix)
        from .models.litellm_client import LitellmClient

        return LitellmClient(spec, environ)

    return make


def compile_network(spec: NetworkSpec, base_dir: Path, models: ModelFactory) -> Program:
    """Bind agents to models and tools. ``models`` makes the client for a model spec."""
    clients: dict[str, ModelClient] = {}

    def client(ref: str | ModelSpec | None) -> ModelClient:
        ms = model_spec(ref) or model_spec(spec.model)
        assert ms is not None, "validate guarantees a model for every agent"
        key = ms.model_dump_json()
        if key not in clients:
            clients[key] = models(ms)
        return clients[key]

    tools: dict[str, Tool] = {}
    waits: dict[str, WaitTool] = {}
    networks: dict[str, NetworkTool] = {}
    events: dict[str, EventTool] = {}
    for name, tool in spec.tools.items():
        params = parameters_schema(tool.parameters)
        if isinstance(tool, StateTool):
            tools[name] = StateToolImpl(name, tool, params, dict(spec.state))
        elif isinstance(tool, HttpTool):
            from .tools.http import HttpToolImpl

            tools[name] = HttpToolImpl(name, tool)
        elif isinstance(tool, WaitTool):
            waits[name] = tool
        elif isinstance(tool, NetworkTool):
            networks[name] = tool
        elif isinstance(tool, EventTool):
            events[name] = tool
    agents = {}
    for name, agent in spec.agents.items():
        declared = [t for t in agent.tools if "." not in t]
        refs = [tuple(t.split(".", 1)) for t in agent.tools if "." in t] + [(s, "*") for s in agent.mcp_servers]
        agents[name] = AgentProgram(name, agent, client(agent.model), declared, [(s, t) for s, t in refs])
    router_model = None
    if spec.router is None or spec.router.fallback() == "llm":
        llm = spec.router.llm if spec.router else None
        router_model = client(llm.model if llm else None)
    from .redact import references

    return Program(spec, definition_hash(spec), base_dir, agents, tools, waits, networks, events, router_model, renderer_for(spec.prompts),
                   references(spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
