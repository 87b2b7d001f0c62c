"""Check phase: the whole network, beyond what the schema can say.

Cross references (rules name agents, agents name tools and MCP servers, tools name state
fields and networks), every template and expression, ``${ENV}`` syntax, durations and
cron strings, model ids, and the warnings (agents no route reaches, tools no agent uses).
All problems are collected; nothing stops at the first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from .. import envrefs
from ..diagnostics import Diagnostic, Severity, YamlPath
from ..load import Document
from ..providers import LITELLM_PROVIDERS
from ..spec import NetworkSpec, scopes
from ..spec.base import parse_duration
from ..spec.model import ModelSpec
from ..spec.params import JsonSchema, matches_type
from ..spec.tools import EventTool, HttpTool, NetworkCall, NetworkTool, StateTool, WaitTool
from ..spec.trigger import CronTrigger, EventTrigger
from ..suggest import did_you_mean, hint
from ..urltemplate import ROUTING_HEADERS, origin_problem, template_origin_problem
from . import inngest_limits, inngest_rules
from .cron import cron_problem
from .spec_errors import is_secret_path, show
from .templates import Scope, TemplateChecker, template_pieces

NETRUN_PROVIDERS = frozenset({"scripted", "replay"})
"""Offline model providers netrun implements itself (scripted replies, recorded runs)."""

_CHOICES = ("auto", "required", "none")

_TOOL_PLACES: dict[type, scopes.Place] = {
    StateTool: scopes.TOOL_STATE,
    HttpTool: scopes.TOOL_HTTP,
    EventTool: scopes.TOOL_EVENT,
    NetworkTool: scopes.TOOL_NETWORK,
    WaitTool: scopes.WAIT_IF,
}
"""The scope-table place of each tool kind's templates."""


class NetworkChecker:
    """Collects every problem of one network; :meth:`run` returns them."""

    def __init__(
        self,
        spec: NetworkSpec,
        doc: Document,
        networks: frozenset[str] | None = None,
        broken: frozenset[YamlPath] = frozenset(),
        more_networks: Callable[[], frozenset[str]] | None = None,
    ) -> None:
        self.spec = spec
        self.doc = doc
        self.networks = networks
        self.more_networks = more_networks
        """Called for a network name not among ``networks``: the wider set to look in."""
        self.broken = broken
        """Entries dropped for schema errors: references to them are not reported again."""
        self.out: list[Diagnostic] = []
        self.templates = TemplateChecker(frozenset(spec.prompts))
        # A state field dropped for a schema error is still declared: do not report its uses.
        state: frozenset[str] | None = None if any(p[:1] == ("state",) for p in broken) else frozenset(spec.state)
        self.state_fields = state
        # The names each place sees come from the scope table the runtime builds its variables by.
        self.system_scope: Scope = self.scope(scopes.PROMPT)
        self.rule_scope: Scope = self.scope(scopes.RULE_IF)
        self.agent_scope: Scope = self.scope(scopes.AGENT_SYSTEM)
        self.router_scope: Scope = self.scope(scopes.ROUTER_SYSTEM)

    def scope(self, place: scopes.Place, args: frozenset[str] | None = None) -> Scope:
        """What ``place`` lets a template read: the table's names, with the attributes this
        network declares (``state`` fields, a tool's ``args``) or the table fixes (``run.id``)."""
        declared = {"state": self.state_fields, "args": args}
        return {name: declared[name] if scopes.VARIABLES[name].declared else scopes.VARIABLES[name].fields for name in place.names}

    # -- reporting -------------------------------------------------------------------
    def report(self, path: YamlPath, message: str, code: str, *, severity: Severity = "error", key: bool = False) -> None:
        self.out.append(
            Diagnostic(
                pos=self.doc.pos(path, key=key),
                message=message,
                path=path,
                severity=severity,
                code=code,
                secret=is_secret_path(path),
            )
        )

    def warn(self, path: YamlPath, message: str, code: str, key: bool = True) -> None:
        self.report(path, message, code, severity="warning", key=key)

    def _template(self, path: YamlPath, source: Any, scope: Scope, *, expression: bool = False) -> None:
        if not isinstance(source, str):
            return
        check = self.templates.expression if expression else self.templates.template
        for p in check(source, scope):
            pos = self.doc.text_pos(path, p.line - 1, p.col - 1, p.needle)
            self.out.append(Diagnostic(pos=pos, message=p.message, path=path, code=p.code))

    def _inngest_expression(self, path: YamlPath, source: str | None, scope: Scope) -> None:
        """An expression Inngest evaluates itself: valid Jinja, and within what CEL can say."""
        if source is None:
            return
        before = len(self.out)
        self._template(path, source, scope, expression=True)
        if len(self.out) > before:
            return  # already reported as Jinja
        from ..expressions.cel import CelError, to_cel

        try:
            to_cel(source)
        except CelError as exc:
            self.report(path, f"Inngest evaluates this expression: {exc}", "not-cel")

    def _env(self, path: YamlPath, value: str | None) -> None:
        if value is None:
            return
        for err in envrefs.find_errors(value):
            self.out.append(
                Diagnostic(
                    pos=self.doc.text_pos(path, 0, err.offset, "${"),
                    message=err.message,
                    path=path,
                    code="env-syntax",
                    secret=True,
                )
            )

    # -- the checks ------------------------------------------------------------------
    def run(self) -> list[Diagnostic]:
        self._models()
        self._state()
        self._prompts()
        self._agents()
        self._router()
        self._tools()
        self._mcp()
        self._triggers()
        self._function()
        inngest_rules.check(self)  # after _function: a cancel.if already reported is not judged again
        self._limits()
        self._history()
        inngest_limits.check(self)
        self._reachability()
        return self.out

    def _history(self) -> None:
        history = self.spec.history
        if history is None:
            return
        if history.store == "postgres":
            if history.url is None:
                self.report(("history", "store"), "store: postgres needs 'url', an ${ENV} reference such as ${DATABASE_URL}", "missing-url")
            elif not envrefs.is_reference(history.url):
                self.report(("history", "url"), "url must be an ${ENV} reference such as ${DATABASE_URL}: a connection URL holds a password", "literal-secret",
)
        elif history.url is not None:
            self.report(("history", "url"), f"'url' is only used with store: postgres (this store is {history.store})", "unused-url")
        if history.store == "http" and history.http is None:
            self.report(("history", "store"), "store: http needs 'http' with the get and append endpoints of your history service", "missing-http")
        elif history.store != "http" and history.http is not None:
            self.report(("history", "http"), f"'http' is only used with store: http (this store is {history.store})", "unused-http")
        if history.http is not None:
            for what in ("create", "get", "append"):
                endpoint = getattr(history.http, what)
                if endpoint is None:
                    continue
                path: YamlPath = ("history", "http", what)
                scope = self.scope(scopes.HISTORY_APPEND if what == "append" else scopes.HISTORY)
                self._template((*path, "url"), endpoint.url, scope)
                self._env((*path, "url"), endpoint.url)
                for key, value in endpoint.headers.items():
                    self._template((*path, "headers", key), value, scope)
                    self._env((*path, "headers", key), value)
                self._url_destination(path, endpoint.url, endpoint.headers, None)
                self._walk_templates((*path, "body"), endpoint.body, scope)

    def _model(self, path: YamlPath, ref: str | ModelSpec | None) -> None:
        if ref is None:
            return
        if isinstance(ref, str):
            self._model_id(path, ref)
            return
        self._model_id((*path, "id"), ref.id)
        for i, fb in enumerate(ref.fallbacks):
            self._model_id((*path, "fallbacks", i), fb)
        self._env((*path, "api_base"), ref.api_base)
        if ref.api_key is not None:
            if envrefs.is_reference(ref.api_key):
                self._env((*path, "api_key"), ref.api_key)
            else:
                self.report(
                    (*path, "api_key"),
                    "api_key must be an ${ENV} reference such as ${OPENAI_API_KEY}: a key written in the file would be committed with it",
                    "literal-secret",
                )

    def _model_id(self, path: YamlPath, model_id: str) -> None:
        provider, sep, name = model_id.partition("/")
        if not sep or not provider or not name.strip():
            self.report(
                path,
                f"model id '{model_id}' needs a provider: write 'provider/model', e.g. 'openai/{model_id or 'gpt-4o-mini'}'",
                "model-id",
            )
        elif provider not in LITELLM_PROVIDERS and provider not in NETRUN_PROVIDERS:
            near = did_you_mean(provider, sorted(LITELLM_PROVIDERS | NETRUN_PROVIDERS))
            guess = f"did you mean '{near}'? " if near else ""
            self.report(
                path,
                f"unknown model provider '{provider}' in '{model_id}'; {guess}litellm knows {len(LITELLM_PROVIDERS)} providers, e.g. openai, anthropic, gemini, ollama, azure, bedrock",
                "model-id",
            )

    def _models(self) -> None:
        spec = self.spec
        self._model(("model",), spec.model)
        for name, agent in spec.agents.items():
            self._model(("agents", name, "model"), agent.model)
            if agent.model is None and spec.model is None and not any(p[:1] == ("model",) for p in self.broken):
                self.report(
                    ("agents", name),
                    f"agent '{name}' has no model, and the network sets no default 'model'",
                    "no-model",
                    key=True,
                )
        llm = spec.router.llm if spec.router else None
        if llm is not None:
            self._model(("router", "llm", "model"), llm.model)
        # Without a default model every agent already reports it; say it once for the router
        # only when the agents have models of their own.
        agents_ok = all(a.model is not None for a in spec.agents.values())
        model_dropped = any(p[:1] == ("model",) for p in self.broken)
        if agents_ok and not model_dropped and self._llm_routing() and spec.model is None and (llm is None or llm.model is None):
            where: YamlPath = ("router", "llm") if llm is not None else ("router",) if spec.router else ("agents",)
            self.report(
                where, "the LLM router needs a model: set the network's 'model' or 'router.llm.model'", "no-model", key=True
            )

    def _state(self) -> None:
        for name, field in self.spec.state.items():
            if isinstance(field, JsonSchema):
                self._schema_consistency(("state", name), field)

    def _schema_consistency(self, path: YamlPath, schema: JsonSchema) -> None:
        if schema.default is not None and schema.enum is not None and schema.default not in schema.enum:
            self.report(
                (*path, "default"),
                f"default {show(schema.default)} is not one of the enum values: {', '.join(map(show, schema.enum))}",
                "bad-default",
            )
        if isinstance(schema.type, str) and schema.default is not None and not matches_type(schema.default, schema.type):
            self.report((*path, "default"), f"default {show(schema.default)} is not of type {schema.type}", "bad-default")
        for i, req in enumerate(schema.required or []):
            if schema.properties is not None and req not in schema.properties:
                self.report(
                    (*path, "required", i),
                    f"required property '{req}' is not among the properties" + hint(req, list(schema.properties), "properties"),
                    "bad-required",
                )
        for prop, sub in (schema.properties or {}).items():
            self._schema_consistency((*path, "properties", prop), sub)
        if schema.items is not None:
            self._schema_consistency((*path, "items"), schema.items)

    def _prompts(self) -> None:
        for name, text in self.spec.prompts.items():
            self._template(("prompts", name), text, self.system_scope)

    def _dropped(self, section: str, name: str) -> bool:
        return any(p[:2] == (section, name) or p == (section,) for p in self.broken)

    def _llm_routing(self) -> bool:
        router = self.spec.router
        if any(p[:1] == ("router",) for p in self.broken):  # do not guess from a router we could not read
            return False
        return router is None or router.fallback() == "llm"

    def _agents(self) -> None:
        spec = self.spec
        for name, agent in spec.agents.items():
            base: YamlPath = ("agents", name)
            self._template((*base, "system"), agent.system, self.agent_scope)
            offered: list[str] = []
            for i, ref in enumerate(agent.tools):
                offered.append(ref)
                self._tool_ref((*base, "tools", i), ref)
            seen: dict[str, int] = {}
            for i, ref in enumerate(agent.tools):
                if ref in seen:
                    self.report((*base, "tools", i), f"tool '{ref}' is listed twice (also at tools[{seen[ref]}])", "duplicate-tool")
                seen.setdefault(ref, i)
            for i, server in enumerate(agent.mcp_servers):
                if server not in spec.mcp_servers and not self._dropped("mcp_servers", server):
                    self.report(
                        (*base, "mcp_servers", i),
                        f"unknown MCP server '{server}'" + hint(server, list(spec.mcp_servers), "MCP servers"),
                        "unknown-mcp-server",
                    )
            choice = agent.tool_choice
            if choice is not None and choice not in _CHOICES and choice not in offered:
                options = [*_CHOICES, *offered]
                self.report(
                    (*base, "tool_choice"),
                    f"tool_choice '{choice}' is not 'auto', 'required', 'none' or a tool of this agent"
                    + hint(choice, options, "choices").replace("defined choices", "allowed"),
                    "bad-tool-choice",
                )
            if self._llm_routing() and not agent.description and not self._dropped("agents", name):
                self.warn(
                    base,
                    f"agent '{name}' has no description: the LLM router picks agents by their descriptions",
                    "no-description",
                )

    def _tool_ref(self, path: YamlPath, ref: str) -> None:
        spec = self.spec
        if ref in spec.tools or self._dropped("tools", ref) or self._dropped("mcp_servers", ref.partition(".")[0]):
            return
        server, dot, tool = ref.partition(".")
        if not dot:
            servers = [f"{s}.*" for s in spec.mcp_servers]
            self.report(path, f"unknown tool '{ref}'" + hint(ref, [*spec.tools, *servers], "tools"), "unknown-tool")
            return
        mcp = spec.mcp_servers.get(server)
        if mcp is None:
            self.report(
                path,
                f"unknown MCP server '{server}' in '{ref}'" + hint(server, list(spec.mcp_servers), "MCP servers"),
                "unknown-mcp-server",
            )
        elif tool != "*" and tool in mcp.exclude:
            self.report(
                path, f"tool '{tool}' is excluded from MCP server '{server}' (see mcp_servers.{server}.exclude)", "excluded-tool"
            )
        elif tool != "*" and mcp.include is not None and tool not in mcp.include:
            self.report(
                path, f"tool '{tool}' is not in mcp_servers.{server}.include" + hint(tool, mcp.include, "tools"), "excluded-tool"
            )

    def _agent_ref(self, path: YamlPath, name: str) -> None:
        if name not in self.spec.agents and not self._dropped("agents", name):
            self.report(path, f"unknown agent '{name}'" + hint(name, list(self.spec.agents), "agents"), "unknown-agent")

    def _router(self) -> None:
        router = self.spec.router
        if router is None:
            return
        for i, rule in enumerate(router.rules):
            self._template(("router", "rules", i, "if"), rule.if_, self.rule_scope, expression=True)
            if rule.agent is not None:
                self._agent_ref(("router", "rules", i, "agent"), rule.agent)
        other = router.otherwise
        if other is not None and other not in ("llm", "stop") and other not in self.spec.agents and not self._dropped("agents", other):
            self.report(
                ("router", "otherwise"),
                f"otherwise is 'llm', 'stop' or an agent name, got '{other}'"
                + hint(other, ["llm", "stop", *self.spec.agents], "choices").replace("defined choices", "allowed"),
                "unknown-agent",
            )
        if router.llm is not None:
            self._template(("router", "llm", "system"), router.llm.system, self.router_scope)
            if router.fallback() != "llm":
                self.warn(
                    ("router", "llm"),
                    f"router.llm is configured but never asked: otherwise is '{router.fallback()}'",
                    "unused-llm-router",
                )

    def _tool_scope(self, tool: Any, place: scopes.Place) -> Scope:
        params = tool.parameters
        if params is None:
            # A network used as a tool takes one `input` unless it declares parameters.
            names: frozenset[str] = frozenset({"input"}) if isinstance(tool, NetworkTool) else frozenset()
        elif isinstance(params, JsonSchema):
            names = frozenset(params.properties or {})
        else:
            names = frozenset(params)
        return self.scope(place, names)

    def _tools(self) -> None:
        for name, tool in self.spec.tools.items():
            base: YamlPath = ("tools", name)
            params = tool.parameters
            if isinstance(params, JsonSchema):
                self._schema_consistency((*base, "parameters"), params)
            elif params is not None:
                for pname, ps in params.items():
                    self._schema_consistency((*base, "parameters", pname), ps)
            scope = self._tool_scope(tool, _TOOL_PLACES[type(tool)])
            if isinstance(tool, StateTool):
                for key, value in tool.state.items():
                    if key not in self.spec.state:
                        if not self._dropped("state", key):
                            self.report(
                                (*base, "state", key),
                                f"state has no field '{key}'"
                                + hint(key, list(self.spec.state), "state fields")
                                + " (declare it under 'state:')",
                                "unknown-state-field",
                                key=True,
                            )
                    elif not (isinstance(value, str) and ("{{" in value or "{%" in value)):
                        self._literal_fits((*base, "state", key), value, self.spec.state[key])
                    self._walk_templates((*base, "state", key), value, scope)
            elif isinstance(tool, HttpTool):
                call = tool.http
                p = (*base, "http")
                self._template((*p, "url"), call.url, scope)
                self._env((*p, "url"), call.url)
                if not call.url.lstrip().startswith(("http://", "https://", "{{", "${")):
                    self.report((*p, "url"), f"url must start with http:// or https://, got {show(call.url)}", "bad-url")
                for section in ("query", "headers"):
                    for key, value in getattr(call, section).items():
                        self._template((*p, section, key), value, scope)
                        self._env((*p, section, key), value)
                self._url_destination(p, call.url, call.headers, call.allowed_origins)
                self._walk_templates((*p, "body"), call.body, scope)
            elif isinstance(tool, EventTool):
                self._template((*base, "event", "name"), tool.event.name, scope)
                literal = "{{" not in tool.event.name and "{%" not in tool.event.name
                if literal and (not tool.event.name or any(c.isspace() for c in tool.event.name)):
                    self.report((*base, "event", "name"), f"{show(tool.event.name)} is not an event name (like app/memory.write)", "bad-event-name")
                self._walk_templates((*base, "event", "data"), tool.event.data, scope)
            elif isinstance(tool, WaitTool):
                wait = tool.wait_for_event
                self._template((*base, "wait_for_event", "if"), wait.if_, scope, expression=True)
            elif isinstance(tool, NetworkTool):
                ref = tool.network
                target = ref.name if isinstance(ref, NetworkCall) else ref
                where: YamlPath = (*base, "network", "name") if isinstance(ref, NetworkCall) else (*base, "network")
                if isinstance(ref, NetworkCall):
                    self._template((*base, "network", "input"), ref.input, scope)
                if target == self.spec.name:
                    self.report(where, f"network '{target}' calls itself as a tool: {target} -> {target} (each run would start the next without end)", "recursive-network")
                elif self.networks is not None and target not in self.networks:
                    wider = self.more_networks() if self.more_networks else self.networks
                    if target in wider:
                        continue
                    self.report(
                        where, f"unknown network '{target}'" + hint(target, sorted(wider), "networks"), "unknown-network"
                    )

    def _url_destination(self, p: YamlPath, url: str, headers: Mapping[str, str], allowed_origins: Sequence[str] | None) -> None:
        """What the runtime would refuse on every call (netrun.urltemplate): a template in the
        url's origin without allowed_origins, a malformed allowed origin, a templated routing header.
        ``allowed_origins`` is None where there is no such setting (history endpoints)."""
        pieces = template_pieces(url)
        problem = None if pieces is None or allowed_origins else template_origin_problem(pieces, allowed_origins is not None)
        if problem:
            self.out.append(Diagnostic(pos=self.doc.text_pos((*p, "url"), 0, url.find("{{"), "{{"), message=problem,
                                       path=(*p, "url"), code="templated-origin"))  # fmt: skip
        for i, origin in enumerate(allowed_origins or ()):
            self._env((*p, "allowed_origins", i), origin)
            bad = None if "${" in origin else origin_problem(origin)
            if bad:
                self.report((*p, "allowed_origins", i), bad, "bad-origin")
        for key, value in headers.items():
            if key.lower() in ROUTING_HEADERS and ("{{" in value or "{%" in value):
                self.report(
                    (*p, "headers", key),
                    f"header {key} must not be a template: servers and proxies route by it, so a value there could "
                    "change where the request goes (write it literally or from ${ENV})",
                    "templated-routing-header",
                )

    def _literal_fits(self, path: YamlPath, value: Any, field: Any) -> None:
        """A literal (non-template) value a state tool writes must fit the field's schema."""
        schema = field if isinstance(field, JsonSchema) else JsonSchema.model_construct(type=field)
        if schema.enum is not None and value not in schema.enum:
            self.report(path, f"{show(value)} is not one of the values state field '{path[-1]}' allows: {', '.join(map(show, schema.enum))}", "bad-value")
        elif isinstance(schema.type, str) and not matches_type(value, schema.type):
            self.report(path, f"{show(value)} is not of type {schema.type}, as state field '{path[-1]}' is declared", "bad-value")

    def _walk_templates(self, path: YamlPath, value: Any, scope: Scope) -> None:
        if isinstance(value, str):
            self._template(path, value, scope)
            self._env(path, value)
        elif isinstance(value, dict):
            for k, v in value.items():
                self._walk_templates((*path, k), v, scope)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._walk_templates((*path, i), v, scope)

    def _mcp(self) -> None:
        for name, server in self.spec.mcp_servers.items():
            base: YamlPath = ("mcp_servers", name)
            for i, tool in enumerate(server.exclude):
                if tool in (server.include or []):
                    self.report((*base, "exclude", i), f"tool '{tool}' is both included and excluded", "include-exclude")
            if server.transport == "stdio":
                self._env((*base, "command"), server.command)
                for i, arg in enumerate(server.args):
                    self._env((*base, "args", i), arg)
                for key, value in server.env.items():
                    self._env((*base, "env", key), value)
                self._env((*base, "cwd"), server.cwd)
            else:
                self._env((*base, "url"), server.url)
                schemes = ("ws://", "wss://") if server.transport == "ws" else ("http://", "https://")
                if not server.url.startswith((*schemes, "${")):
                    article = "an" if server.transport[0] in "aeios" else "a"
                    self.report(
                        (*base, "url"),
                        f"{article} {server.transport} server url starts with {' or '.join(schemes)}, got {show(server.url)}",
                        "bad-url",
                    )
                for key, value in server.headers.items():
                    self._env((*base, "headers", key), value)

    def _triggers(self) -> None:
        trig = self.spec.trigger
        if trig is None:
            return
        items: list[tuple[YamlPath, Any]] = (
            [(("trigger", i), t) for i, t in enumerate(trig)] if isinstance(trig, list) else [(("trigger",), trig)]
        )
        for path, t in items:
            self._template((*path, "input"), t.input, self.scope(scopes.TRIGGER_INPUT))
            if isinstance(t, EventTrigger):
                self._inngest_expression((*path, "if"), t.if_, self.scope(scopes.TRIGGER_IF))
            elif isinstance(t, CronTrigger):
                problem = cron_problem(t.cron)
                if problem:
                    self.report((*path, "cron"), problem, "bad-cron")

    def _duration(self, path: YamlPath, value: str | None, low: timedelta, high: timedelta | None) -> None:
        if value is None:
            return
        d = parse_duration(value)
        if d < low or (high is not None and d > high):
            span = f"between {_human(low)} and {_human(high)}" if high else f"at least {_human(low)}"
            self.report(path, f"{value} is out of range: must be {span}", "out-of-range")
        elif d.total_seconds() != int(d.total_seconds()):
            self.report(path, f"{value} is not a whole number of seconds, as Inngest requires", "out-of-range")

    def _function(self) -> None:
        fn = self.spec.function
        if fn is None:
            return
        scope = self.scope(scopes.FUNCTION_KEY)
        second, day, week = timedelta(seconds=1), timedelta(days=1), timedelta(days=7)
        if isinstance(fn.concurrency, list):
            for i, c in enumerate(fn.concurrency):
                self._inngest_expression(("function", "concurrency", i, "key"), c.key, scope)
        for section, high in (("throttle", week), ("rate_limit", day), ("debounce", week)):
            cfg = getattr(fn, section)
            if cfg is not None:
                self._duration(("function", section, "period"), cfg.period, second, high)
                self._inngest_expression(("function", section, "key"), cfg.key, scope)
        if fn.debounce is not None:
            self._duration(("function", "debounce", "timeout"), fn.debounce.timeout, second, None)
        if fn.priority is not None:
            self._inngest_expression(("function", "priority", "run"), fn.priority.run, scope)
        self._inngest_expression(("function", "idempotency"), fn.idempotency, scope)
        for i, c in enumerate(fn.cancel):
            self._inngest_expression(("function", "cancel", i, "if"), c.if_, self.scope(scopes.CANCEL_IF))
            self._duration(("function", "cancel", i, "timeout"), c.timeout, second, None)
        if fn.timeouts is not None:
            self._duration(("function", "timeouts", "start"), fn.timeouts.start, second, None)
            self._duration(("function", "timeouts", "finish"), fn.timeouts.finish, second, None)
        if fn.singleton is not None:
            self._inngest_expression(("function", "singleton", "key"), fn.singleton.key, scope)

    def _limits(self) -> None:
        spec = self.spec
        if spec.max_iter is not None and spec.limits is not None and spec.limits.iterations is not None:
            self.report(
                ("limits", "iterations"),
                "set either max_iter or limits.iterations, not both: they are the same limit",
                "duplicate-limit",
                key=True,
            )

    def _reachability(self) -> None:
        spec = self.spec
        rules_ok = all(r.agent is None or r.agent in spec.agents for r in (spec.router.rules if spec.router else []))
        if rules_ok and not any(p[:1] == ("router",) for p in self.broken) and not self._llm_routing():
            router = spec.router
            assert router is not None
            reached = {r.agent for r in router.rules if r.agent} | {router.fallback()}
            for name in spec.agents:
                if name not in reached:
                    self.warn(
                        ("agents", name),
                        f"agent '{name}' is never run: no rule leads to it and the router never asks the LLM (add a rule, or 'otherwise: llm')",
                        "unreachable-agent",
                    )
        used = {ref for agent in spec.agents.values() for ref in agent.tools}
        used_servers = {s for agent in spec.agents.values() for s in agent.mcp_servers} | {
            r.partition(".")[0] for r in used if "." in r
        }
        for name in spec.tools:
            if name not in used:
                self.warn(("tools", name), f"tool '{name}' is not used by any agent", "unused-tool")
        for name in spec.mcp_servers:
            if name not in used_servers and used_servers <= set(spec.mcp_servers):  # else a typo is already an error
                self.warn(("mcp_servers", name), f"MCP server '{name}' is not used by any agent", "unused-mcp-server")


def _human(d: timedelta | None) -> str:
    if d is None:
        return "forever"
    s = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0 and s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
