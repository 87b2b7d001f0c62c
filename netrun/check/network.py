"""Check phase: the whole network, beyond what the schema can say.

Cross references (rules name agents, agents name tools and MCP servers, tools name state
fields and networks), every template and expression, ``${ENV}`` syntax, durations and
cron strings, model ids, and the warnings (agents no route reaches, tools no agent uses).
All problems are collected; nothing stops at the first.

:class:`NetworkChecker` holds what every check shares (the network, its positions, the
scopes, the problems found so far) and runs the checks, each in the module named for what
it checks: :mod:`.agents` (models, agents, router, reachability), :mod:`.tools` (tools,
MCP servers, history endpoints), :mod:`.function` (triggers and function settings),
:mod:`.inngest_rules` and :mod:`.inngest_limits` (what Inngest refuses or limits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import envrefs
from ..diagnostics import Diagnostic, Severity, YamlPath
from ..load import Document
from ..spec import NetworkSpec, scopes
from ..spec.params import JsonSchema, matches_type
from ..suggest import hint
from . import agents, command_tools, events, function, inngest_limits, inngest_rules, lifecycle, python_tools, tools
from .spec_errors import is_secret_path, show
from .templates import Scope, TemplateChecker

__all__ = ["NetworkChecker"]


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
        return {
            name: declared[name] if scopes.VARIABLES[name].declared else scopes.VARIABLES[name].fields for name in place.names
        }

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

    def template(self, path: YamlPath, source: Any, scope: Scope, *, expression: bool = False) -> None:
        """Report what the template (or ``expression``) at ``path`` reads outside ``scope``, or its syntax errors."""
        if not isinstance(source, str):
            return
        check = self.templates.expression if expression else self.templates.template
        for p in check(source, scope):
            pos = self.doc.text_pos(path, p.line - 1, p.col - 1, p.needle)
            self.out.append(Diagnostic(pos=pos, message=p.message, path=path, code=p.code))

    def inngest_expression(self, path: YamlPath, source: str | None, scope: Scope) -> None:
        """An expression Inngest evaluates itself: valid Jinja, and within what CEL can say."""
        if source is None:
            return
        before = len(self.out)
        self.template(path, source, scope, expression=True)
        if len(self.out) > before:
            return  # already reported as Jinja
        from ..expressions.cel import CelError, to_cel

        try:
            to_cel(source)
        except CelError as exc:
            self.report(path, f"Inngest evaluates this expression: {exc}", "not-cel")

    def env(self, path: YamlPath, value: str | None) -> None:
        """Report malformed ``${ENV}`` references in ``value``."""
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

    def walk_templates(self, path: YamlPath, value: Any, scope: Scope) -> None:
        """:meth:`template` and :meth:`env` on every string inside ``value`` (a body, a state update)."""
        if isinstance(value, str):
            self.template(path, value, scope)
            self.env(path, value)
        elif isinstance(value, dict):
            for k, v in value.items():
                self.walk_templates((*path, k), v, scope)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.walk_templates((*path, i), v, scope)

    def schema_consistency(self, path: YamlPath, schema: JsonSchema) -> None:
        """A JSON Schema agrees with itself: its default fits, its required properties exist."""
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
            self.schema_consistency((*path, "properties", prop), sub)
        if schema.items is not None:
            self.schema_consistency((*path, "items"), schema.items)

    def dropped(self, section: str, name: str) -> bool:
        """Whether a schema error dropped ``section.name`` (references to it are not reported again)."""
        return any(p[:2] == (section, name) or p == (section,) for p in self.broken)

    def llm_routing(self) -> bool:
        """Whether the router may ask the LLM (no router, or ``otherwise: llm``)."""
        router = self.spec.router
        if any(p[:1] == ("router",) for p in self.broken):  # do not guess from a router we could not read
            return False
        return router is None or router.fallback() == "llm"

    # -- the checks ------------------------------------------------------------------
    def run(self) -> list[Diagnostic]:
        """Every problem of the network, in the order the checks find them."""
        agents.models(self)
        self._state()
        self._prompts()
        agents.agents(self)
        agents.router(self)
        tools.tools(self)
        python_tools.check(self)
        command_tools.check(self)
        lifecycle.check(self)
        tools.mcp_servers(self)
        function.triggers(self)
        events.check(self)
        function.settings(self)
        inngest_rules.check(self)  # after function.settings: a cancel.if already reported is not judged again
        self._limits()
        tools.history(self)
        inngest_limits.check(self)
        agents.reachability(self)
        return self.out

    def _state(self) -> None:
        for name, field in self.spec.state.items():
            if isinstance(field, JsonSchema):
                self.schema_consistency(("state", name), field)

    def _prompts(self) -> None:
        for name, text in self.spec.prompts.items():
            self.template(("prompts", name), text, self.system_scope)

    def _limits(self) -> None:
        spec = self.spec
        if spec.max_iter is not None and spec.limits is not None and spec.limits.iterations is not None:
            self.report(
                ("limits", "iterations"),
                "set either max_iter or limits.iterations, not both: they are the same limit",
                "duplicate-limit",
                key=True,
            )
