"""Compile: a checked NetworkSpec -> a Program the runtime executes (no I/O happens here).

The program binds each agent to its model client and tools, and carries the definition
hash that a run records at its start: a run resumes on the definition it started with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from .errors import NetrunError
from .spec import NetworkSpec
from .spec.agent import AgentSpec
from .spec.model import ModelChoice, ModelSpec
from .spec.params import JsonSchema

if TYPE_CHECKING:  # compile plans; the runtime binds (the layers point down: see pyproject.toml)
    from .runtime.model import ModelClient

ModelFactory: TypeAlias = "Callable[[ModelSpec], ModelClient]"
"""Makes the client for a model spec (engines/execution.py picks replies files or litellm)."""


@dataclass
class AgentProgram:
    name: str
    spec: AgentSpec
    model: ModelClient
    tools: list[str]
    """Declared tool names this agent offers (MCP references are resolved per run)."""
    mcp_refs: list[tuple[str, str]]
    """(server, tool or '*') pairs from ``server.tool`` references and ``mcp_servers``: the
    servers this agent connects (those a ``netrun test`` case stubs are in ``stub_refs``)."""
    stub_refs: list[tuple[str, str]] = field(default_factory=list)
    """(server, tool or '*') references to servers a ``netrun test`` case stubs: answered by
    its stubs, so that a case never connects a server it stubs."""


ROUTER = ""
"""The key of the LLM router's model in :attr:`Program.choices`."""


@dataclass(frozen=True)
class ChosenModel:
    """A model choice compiled: a client per allowed id, and the template that picks one."""

    spec: ModelChoice
    clients: Mapping[str, ModelClient]
    path: tuple[str | int, ...]
    """Where the choice is written (``agents.triage.model``), for the run's refusal."""


class ModelRefused(NetrunError, phase="run"):  # noqa: N818 - a run's outcome, like a failed step
    """The event named a model outside a choice's ``allowed`` list: the run fails."""


@dataclass
class Program:
    """The plan of a network: what each agent offers and calls, no tool objects.

    The tools themselves are built per run by :func:`netrun.tools.registry.build_tools`
    from ``spec.tools`` (one registry entry per kind), ``stubs`` and ``tools``: compile
    stays below the runtime and the tools in the layers.
    """

    spec: NetworkSpec
    hash: str
    base_dir: Path
    agents: dict[str, AgentProgram]
    router_model: ModelClient | None = None
    env_names: tuple[str, ...] = ()
    """The variables the definition references as ``${NAME}``: their values are the run's
    secrets (:meth:`netrun.redact.Secrets.for_names`)."""
    stubs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``netrun test``: tool name (a declared tool, ``server.tool`` or ``server__tool``) ->
    the fixed ``result`` or ``error`` it answers instead of running."""
    tools: Mapping[str, Any] = field(default_factory=dict)
    """Tool objects (:class:`netrun.runtime.tooling.Tool`) given by name in place of the ones
    the registry would build for declared tools: an embedding application's or a test's own."""
    choices: Mapping[str, ChosenModel] = field(default_factory=dict)
    """The models chosen per run from event data (``model: {from, allowed}``), by agent name
    (:data:`ROUTER` for the LLM router): the program's clients are the defaults until
    :func:`with_models` picks them for a run."""

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
    """The spec's identity: what a run is pinned to."""
    return _kept(spec)[1]


def run_definition(spec: NetworkSpec) -> tuple[dict[str, Any], str]:
    """The definition a run of ``spec`` records (what the file set), and its JSON text. The
    one dict is shared by the runs of a spec: read it, never change it."""
    _, _, definition, text = _kept(spec)
    return definition, text


def _kept(spec: NetworkSpec) -> tuple[NetworkSpec, str, dict[str, Any], str]:
    """What :func:`definition_hash` and :func:`run_definition` give, kept per spec object
    (specs are frozen; a server starts every run of a network version from the same one)."""
    known = _specs.get(id(spec))
    if known is not None and known[0] is spec:
        return known
    text = json.dumps(spec.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True, separators=(",", ":"))
    definition = spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
    known = (spec, hashlib.sha256(text.encode()).hexdigest()[:16], definition, json.dumps(definition))
    if len(_specs) >= _KEPT:
        _specs.pop(next(iter(_specs)))
    _specs[id(spec)] = known  # holding the spec: its id is not reused while kept
    return known


_specs: dict[int, tuple[NetworkSpec, str, dict[str, Any], str]] = {}


def model_spec(ref: str | ModelSpec | None) -> ModelSpec | None:
    if ref is None or isinstance(ref, ModelSpec):
        return ref
    return ModelSpec(id=ref)


def compile_network(
    spec: NetworkSpec,
    base_dir: Path,
    models: ModelFactory,
    *,
    stubs: Mapping[str, Mapping[str, Any]] | None = None,
    tools: Mapping[str, Any] | None = None,
    digest: str | None = None,
    env_names: tuple[str, ...] | None = None,
) -> Program:
    """Bind agents to models and plan the tools they offer. ``models`` makes the client for
    a model spec; ``stubs`` (``netrun test``) and ``tools`` replace tools by name when the
    run builds them (see :class:`Program`). ``digest`` and ``env_names``: the spec's
    :func:`definition_hash` and ``${ENV}`` references, when the caller knows them already."""
    clients: dict[str, ModelClient] = {}
    choices: dict[str, ChosenModel] = {}

    def client(ref: str | ModelSpec | None) -> ModelClient:
        ms = model_spec(ref)
        assert ms is not None, "validate guarantees a model for every agent"
        key = ms.model_dump_json()
        if key not in clients:
            clients[key] = models(ms)
        return clients[key]

    def bind(key: str, ref: str | ModelSpec | ModelChoice | None, path: tuple[str | int, ...]) -> ModelClient:
        if ref is None:
            ref, path = spec.model, ("model",)
        if not isinstance(ref, ModelChoice):
            return client(ref)
        chosen = ChosenModel(ref, {model_id(m): client(m) for m in ref.allowed}, path)
        choices[key] = chosen
        return chosen.clients[ref.default_id()]

    models_of = {name: bind(name, agent.model, ("agents", name, "model")) for name, agent in spec.agents.items()}
    router_model = None
    if spec.router is None or spec.router.fallback() == "llm":
        llm = spec.router.llm if spec.router else None
        router_model = bind(ROUTER, llm.model if llm else None, ("router", "llm", "model"))
    program = Program(
        spec,
        digest or definition_hash(spec),
        base_dir,
        _agents(spec, models_of, {}),
        router_model=router_model,
        env_names=env_references(spec) if env_names is None else env_names,
        tools=dict(tools or {}),
        choices=choices,
    )
    return with_stubs(program, stubs) if stubs else program


def env_references(spec: NetworkSpec) -> tuple[str, ...]:
    """The ``${ENV}`` names the spec refers to, in order (its secrets, once resolved)."""
    from .redact import references

    return references(spec.model_dump(mode="json", by_alias=True, exclude_none=True))


def pinned_spec(definition: Mapping[str, Any], digest: str) -> tuple[NetworkSpec, tuple[str, ...]]:
    """A pinned definition validated, with its ``${ENV}`` references: kept by its recorded
    hash for the next run of the same definition (specs are frozen: runs can share one)."""
    known = _pinned.get(digest)
    if known is None:
        spec = NetworkSpec.model_validate(definition)
        known = (spec, env_references(spec))
        if len(_pinned) >= _KEPT:
            _pinned.pop(next(iter(_pinned)))
        _pinned[digest] = known
    return known


_pinned: dict[str, tuple[NetworkSpec, tuple[str, ...]]] = {}
_KEPT = 256
"""Pinned definitions and spec hashes kept (an LRU of sorts: the oldest goes first)."""


def model_id(ref: str | ModelSpec) -> str:
    return ref if isinstance(ref, str) else ref.id


def with_models(program: Program, picked: Mapping[str, str | None]) -> Program:
    """``program`` with the models a run's event picked (a new program when any choice
    differs from its default; the given one, which engines cache, is left as it is).

    ``picked``: per key of :attr:`Program.choices`, the id the ``from`` template made (None or
    empty: the default). An id outside ``allowed`` raises :class:`ModelRefused`; only the
    id is taken from the event, the endpoint and key are the allowed entry's own."""
    if not program.choices:
        return program
    agents = dict(program.agents)
    router_model = program.router_model
    changed = False
    for key, chosen in program.choices.items():
        wanted = (picked.get(key) or "").strip() or chosen.spec.default_id()
        client = chosen.clients.get(wanted)
        if client is None:
            where = ".".join(str(p) for p in chosen.path)
            raise ModelRefused(
                f"{where}: the event asks for the model {wanted[:100]!r}, which is not allowed; allowed: {', '.join(chosen.spec.ids())}"
            )
        if key == ROUTER:
            changed = changed or client is not router_model
            router_model = client
        elif client is not agents[key].model:
            agents[key] = dataclasses.replace(agents[key], model=client)
            changed = True
    return dataclasses.replace(program, agents=agents, router_model=router_model) if changed else program


def with_stubs(program: Program, stubs: Mapping[str, Mapping[str, Any]]) -> Program:
    """``program`` planned with ``netrun test`` stubs (a new program; the given one is left
    as it is): its agents offer the stubs of stubbed MCP servers and connect none of them,
    and its run builds a stub in place of each stubbed tool."""
    models_of = {name: agent.model for name, agent in program.agents.items()}
    return dataclasses.replace(program, agents=_agents(program.spec, models_of, stubs), stubs=dict(stubs))


def _agents(spec: NetworkSpec, models_of: Mapping[str, ModelClient], stubs: Mapping[str, Any]) -> dict[str, AgentProgram]:
    stubbed = {stub_target(key)[0] for key in stubs if key not in spec.tools}
    """The MCP servers the stubs stand in for: none of them is connected."""
    agents = {}
    for name, agent in spec.agents.items():
        declared = [t for t in agent.tools if "." not in t]
        refs = [tuple(t.split(".", 1)) for t in agent.tools if "." in t] + [(s, "*") for s in agent.mcp_servers]
        agents[name] = AgentProgram(
            name,
            agent,
            models_of[name],
            declared,
            [(s, t) for s, t in refs if s not in stubbed],
            [(s, t) for s, t in refs if s in stubbed],
        )
    return agents


def stub_target(key: str) -> tuple[str, str]:
    """(server, tool) of a stub for an MCP tool, written ``server.tool`` or as the model sees
    it, ``server__tool``."""
    server, _, tool = key.partition(".") if "." in key else key.partition("__")
    return server, tool
