"""Check phase, the agents: their models, the tools and MCP servers they name, the router
that picks them, and the warnings for agents no route reaches and tools no agent uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import envrefs
from ..diagnostics import YamlPath
from ..providers import LITELLM_PROVIDERS, PROVIDERS
from ..spec.model import ModelChoice, ModelSpec
from ..suggest import did_you_mean, hint
from .lifecycle import step_tools

if TYPE_CHECKING:
    from .network import NetworkChecker

NETRUN_PROVIDERS = frozenset({"scripted", "replay"})
"""Offline model providers netrun implements itself (scripted replies, recorded runs)."""

_CHOICES = ("auto", "required", "none")


def models(c: NetworkChecker) -> None:
    """Every model id (the default, each agent's, the LLM router's) and that each agent has one."""
    spec = c.spec
    _model(c, ("model",), spec.model)
    for name, agent in spec.agents.items():
        _model(c, ("agents", name, "model"), agent.model)
        if agent.model is None and spec.model is None and not any(p[:1] == ("model",) for p in c.broken):
            c.report(
                ("agents", name),
                f"agent '{name}' has no model, and the network sets no default 'model'",
                "no-model",
                key=True,
            )
    llm = spec.router.llm if spec.router else None
    if llm is not None:
        _model(c, ("router", "llm", "model"), llm.model)
    # Without a default model every agent already reports it; say it once for the router
    # only when the agents have models of their own.
    agents_ok = all(a.model is not None for a in spec.agents.values())
    model_dropped = any(p[:1] == ("model",) for p in c.broken)
    if agents_ok and not model_dropped and c.llm_routing() and spec.model is None and (llm is None or llm.model is None):
        where: YamlPath = ("router", "llm") if llm is not None else ("router",) if spec.router else ("agents",)
        c.report(where, "the LLM router needs a model: set the network's 'model' or 'router.llm.model'", "no-model", key=True)


def _model(c: NetworkChecker, path: YamlPath, ref: str | ModelSpec | ModelChoice | None) -> None:
    if ref is None:
        return
    if isinstance(ref, ModelChoice):  # each allowed model as any other (the rest: check/events.py)
        for i, allowed in enumerate(ref.allowed):
            _model(c, (*path, "allowed", i), allowed)
        return
    if isinstance(ref, str):
        _model_id(c, path, ref)
        return
    _model_id(c, (*path, "id"), ref.id)
    for i, fb in enumerate(ref.fallbacks):
        _model_id(c, (*path, "fallbacks", i), fb)
    c.env((*path, "api_base"), ref.api_base)
    provider = ref.id.partition("/")[0]
    if ref.api == "openai" and ref.api_base is None and provider not in PROVIDERS and provider not in NETRUN_PROVIDERS:
        c.report(
            (*path, "api"),
            f"api: openai calls '{ref.id}' as OpenAI chat completions, but netrun knows no endpoint of "
            f"'{provider}': set api_base to its OpenAI-compatible URL (e.g. http://localhost:11434/v1 for "
            f"Ollama); known OpenAI-compatible providers: {', '.join(sorted(PROVIDERS))}",
            "no-endpoint",
        )
    if ref.api_key is not None:
        if envrefs.is_reference(ref.api_key):
            c.env((*path, "api_key"), ref.api_key)
        else:
            c.report(
                (*path, "api_key"),
                "api_key must be an ${ENV} reference such as ${OPENAI_API_KEY}: a key written in the file would be committed with it",
                "literal-secret",
            )


def _model_id(c: NetworkChecker, path: YamlPath, model_id: str) -> None:
    provider, sep, name = model_id.partition("/")
    if not sep or not provider or not name.strip():
        c.report(
            path,
            f"model id '{model_id}' needs a provider: write 'provider/model', e.g. 'openai/{model_id or 'gpt-4o-mini'}'",
            "model-id",
        )
    elif provider not in LITELLM_PROVIDERS and provider not in NETRUN_PROVIDERS:
        near = did_you_mean(provider, sorted(LITELLM_PROVIDERS | NETRUN_PROVIDERS))
        guess = f"did you mean '{near}'? " if near else ""
        c.report(
            path,
            f"unknown model provider '{provider}' in '{model_id}'; {guess}litellm knows {len(LITELLM_PROVIDERS)} providers, e.g. openai, anthropic, gemini, ollama, azure, bedrock",
            "model-id",
        )


def agents(c: NetworkChecker) -> None:
    """Each agent's system prompt, tool and MCP server references, tool_choice and description."""
    spec = c.spec
    for name, agent in spec.agents.items():
        base: YamlPath = ("agents", name)
        c.template((*base, "system"), agent.system, c.agent_scope)
        offered: list[str] = []
        for i, ref in enumerate(agent.tools):
            offered.append(ref)
            _tool_ref(c, (*base, "tools", i), ref)
        seen: dict[str, int] = {}
        for i, ref in enumerate(agent.tools):
            if ref in seen:
                c.report((*base, "tools", i), f"tool '{ref}' is listed twice (also at tools[{seen[ref]}])", "duplicate-tool")
            seen.setdefault(ref, i)
        for i, server in enumerate(agent.mcp_servers):
            if server not in spec.mcp_servers and not c.dropped("mcp_servers", server):
                c.report(
                    (*base, "mcp_servers", i),
                    f"unknown MCP server '{server}'" + hint(server, list(spec.mcp_servers), "MCP servers"),
                    "unknown-mcp-server",
                )
        choice = agent.tool_choice
        if choice is not None and choice not in _CHOICES and choice not in offered:
            options = [*_CHOICES, *offered]
            c.report(
                (*base, "tool_choice"),
                f"tool_choice '{choice}' is not 'auto', 'required', 'none' or a tool of this agent"
                + hint(choice, options, "choices").replace("defined choices", "allowed"),
                "bad-tool-choice",
            )
        if c.llm_routing() and not agent.description and not c.dropped("agents", name):
            c.warn(
                base,
                f"agent '{name}' has no description: the LLM router picks agents by their descriptions",
                "no-description",
            )


def _tool_ref(c: NetworkChecker, path: YamlPath, ref: str) -> None:
    spec = c.spec
    if ref in spec.tools or c.dropped("tools", ref) or c.dropped("mcp_servers", ref.partition(".")[0]):
        return
    server, dot, tool = ref.partition(".")
    if not dot:
        servers = [f"{s}.*" for s in spec.mcp_servers]
        c.report(path, f"unknown tool '{ref}'" + hint(ref, [*spec.tools, *servers], "tools"), "unknown-tool")
        return
    mcp = spec.mcp_servers.get(server)
    if mcp is None:
        c.report(
            path,
            f"unknown MCP server '{server}' in '{ref}'" + hint(server, list(spec.mcp_servers), "MCP servers"),
            "unknown-mcp-server",
        )
    elif tool != "*" and tool in mcp.exclude:
        c.report(
            path, f"tool '{tool}' is excluded from MCP server '{server}' (see mcp_servers.{server}.exclude)", "excluded-tool"
        )
    elif tool != "*" and mcp.include is not None and tool not in mcp.include:
        c.report(
            path, f"tool '{tool}' is not in mcp_servers.{server}.include" + hint(tool, mcp.include, "tools"), "excluded-tool"
        )


def _agent_ref(c: NetworkChecker, path: YamlPath, name: str) -> None:
    if name not in c.spec.agents and not c.dropped("agents", name):
        c.report(path, f"unknown agent '{name}'" + hint(name, list(c.spec.agents), "agents"), "unknown-agent")


def router(c: NetworkChecker) -> None:
    """The rules' expressions and agents, ``otherwise``, and the LLM router's prompt."""
    router = c.spec.router
    if router is None:
        return
    for i, rule in enumerate(router.rules):
        c.template(("router", "rules", i, "if"), rule.if_, c.rule_scope, expression=True)
        if rule.agent is not None:
            _agent_ref(c, ("router", "rules", i, "agent"), rule.agent)
    other = router.otherwise
    if other is not None and other not in ("llm", "stop") and other not in c.spec.agents and not c.dropped("agents", other):
        c.report(
            ("router", "otherwise"),
            f"otherwise is 'llm', 'stop' or an agent name, got '{other}'"
            + hint(other, ["llm", "stop", *c.spec.agents], "choices").replace("defined choices", "allowed"),
            "unknown-agent",
        )
    if router.llm is not None:
        c.template(("router", "llm", "system"), router.llm.system, c.router_scope)
        if router.fallback() != "llm":
            c.warn(
                ("router", "llm"),
                f"router.llm is configured but never asked: otherwise is '{router.fallback()}'",
                "unused-llm-router",
            )


def reachability(c: NetworkChecker) -> None:
    """Warnings: agents no route reaches, tools and MCP servers no agent uses."""
    spec = c.spec
    rules_ok = all(r.agent is None or r.agent in spec.agents for r in (spec.router.rules if spec.router else []))
    if rules_ok and not any(p[:1] == ("router",) for p in c.broken) and not c.llm_routing():
        router = spec.router
        assert router is not None
        reached = {r.agent for r in router.rules if r.agent} | {router.fallback()}
        for name in spec.agents:
            if name not in reached:
                c.warn(
                    ("agents", name),
                    f"agent '{name}' is never run: no rule leads to it and the router never asks the LLM (add a rule, or 'otherwise: llm')",
                    "unreachable-agent",
                )
    used = {ref for agent in spec.agents.values() for ref in agent.tools} | step_tools(spec)  # steps use tools too
    used_servers = {s for agent in spec.agents.values() for s in agent.mcp_servers} | {
        r.partition(".")[0] for r in used if "." in r
    }
    for name in spec.tools:
        if name not in used:
            c.warn(("tools", name), f"tool '{name}' is not used by any agent", "unused-tool")
    for name in spec.mcp_servers:
        if name not in used_servers and used_servers <= set(spec.mcp_servers):  # else a typo is already an error
            c.warn(("mcp_servers", name), f"MCP server '{name}' is not used by any agent", "unused-mcp-server")
