"""Check phase, what a run calls out to: the tools, the MCP servers and the HTTP history
endpoints (which follow the HTTP tool's rules for URLs, origins and headers)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import envrefs
from ..diagnostics import Diagnostic, YamlPath
from ..spec import scopes
from ..spec.params import JsonSchema, matches_type
from ..spec.tools import (
    EventTool,
    HttpTool,
    NetworkCall,
    NetworkTool,
    SaveAppend,
    SaveMerge,
    Saves,
    SaveSet,
    StateTool,
    kind_key,
)
from ..suggest import hint
from ..urltemplate import ROUTING_HEADERS, origin_problem, template_origin_problem
from .mcp_approval import mcp_approval
from .spec_errors import show
from .templates import Scope, template_pieces

if TYPE_CHECKING:
    from .network import NetworkChecker


@functools.cache
def _tool_place(kind: str) -> scopes.Place | None:
    """The scope-table place of a tool kind's templates: the one whose paths are under
    ``tools.*.<kind>`` (a kind with templates adds its place to :mod:`netrun.spec.scopes`;
    nothing here names it), or None for a kind without templates."""
    under = [p for p in scopes.PLACES if p.paths and all(f"{path}.".startswith(f"tools.*.{kind}.") for path in p.paths)]
    assert len(under) <= 1, f"tool kind {kind} has {len(under)} places in the scope table"
    return under[0] if under else None


def _place_templates(c: NetworkChecker, base: YamlPath, tool: Any, place: scopes.Place, scope: Scope) -> None:
    """Check every template (or expression) of ``tool`` at ``place``'s paths, walking the
    tool as the file spells it (aliases: ``wait_for_event.if``)."""
    data = tool.model_dump(by_alias=True, exclude_none=True, warnings=False)
    for pattern in place.paths:
        value: Any = data
        segments = pattern.split(".")[2:]  # after "tools.*"
        for segment in segments:
            value = value.get(segment) if isinstance(value, dict) else None
        if value is None:
            continue
        path: YamlPath = (*base, *segments)
        if place.kind == "expression":
            c.template(path, value, scope, expression=True)
        else:
            c.walk_templates(path, value, scope)


def _tool_scope(c: NetworkChecker, tool: Any, place: scopes.Place) -> Scope:
    params = tool.parameters
    if params is None:
        # A network used as a tool takes one `input` unless it declares parameters.
        names: frozenset[str] = frozenset({"input"}) if isinstance(tool, NetworkTool) else frozenset()
    elif isinstance(params, JsonSchema):
        names = frozenset(params.properties or {})
    else:
        names = frozenset(params)
    return c.scope(place, names)


def tools(c: NetworkChecker) -> None:
    """Each declared tool: its parameters, templates, and what its kind names (state fields, URLs, networks)."""
    for name, tool in c.spec.tools.items():
        base: YamlPath = ("tools", name)
        params = tool.parameters
        if isinstance(params, JsonSchema):
            c.schema_consistency((*base, "parameters"), params)
        elif params is not None:
            for pname, ps in params.items():
                c.schema_consistency((*base, "parameters", pname), ps)
        place = _tool_place(kind_key(type(tool)))
        if place is not None:
            _place_templates(c, base, tool, place, _tool_scope(c, tool, place))
        if tool.save:
            _place_templates(c, base, tool, scopes.TOOL_SAVE, _tool_scope(c, tool, scopes.TOOL_SAVE))
            if isinstance(tool, StateTool):
                c.report(
                    (*base, "save"),
                    "a state tool writes its fields under 'state:'; 'save:' is for the other kinds (their results)",
                    "save-on-state-tool",
                    key=True,
                )
            else:
                _writes(c, (*base, "save"), tool.save)
        if isinstance(tool, StateTool):
            _writes(c, (*base, "state"), tool.state)
        elif isinstance(tool, HttpTool):
            call = tool.http
            p = (*base, "http")
            if not call.url.lstrip().startswith(("http://", "https://", "{{", "${")):
                c.report((*p, "url"), f"url must start with http:// or https://, got {show(call.url)}", "bad-url")
            _url_destination(c, p, call.url, call.headers, call.allowed_origins)
        elif isinstance(tool, EventTool):
            literal = "{{" not in tool.event.name and "{%" not in tool.event.name
            if literal and (not tool.event.name or any(ch.isspace() for ch in tool.event.name)):
                c.report(
                    (*base, "event", "name"),
                    f"{show(tool.event.name)} is not an event name (like app/memory.write)",
                    "bad-event-name",
                )
        elif isinstance(tool, NetworkTool):
            ref = tool.network
            target = ref.name if isinstance(ref, NetworkCall) else ref
            where: YamlPath = (*base, "network", "name") if isinstance(ref, NetworkCall) else (*base, "network")
            if target == c.spec.name:
                c.report(
                    where,
                    f"network '{target}' calls itself as a tool: {target} -> {target} (each run would start the next without end)",
                    "recursive-network",
                )
            elif c.networks is not None and target not in c.networks:
                wider = c.more_networks() if c.more_networks else c.networks
                if target in wider:
                    continue
                c.report(where, f"unknown network '{target}'" + hint(target, sorted(wider), "networks"), "unknown-network")


def _url_destination(
    c: NetworkChecker, p: YamlPath, url: str, headers: Mapping[str, str], allowed_origins: Sequence[str] | None
) -> None:
    """What the runtime would refuse on every call (netrun.urltemplate): a template in the
    url's origin without allowed_origins, a malformed allowed origin, a templated routing header.
    ``allowed_origins`` is None where there is no such setting (history endpoints)."""
    pieces = template_pieces(url)
    problem = None if pieces is None or allowed_origins else template_origin_problem(pieces, allowed_origins is not None)
    if problem:
        c.out.append(Diagnostic(pos=c.doc.text_pos((*p, "url"), 0, url.find("{{"), "{{"), message=problem,
                                   path=(*p, "url"), code="templated-origin"))  # fmt: skip
    for i, origin in enumerate(allowed_origins or ()):
        c.env((*p, "allowed_origins", i), origin)
        bad = None if "${" in origin else origin_problem(origin)
        if bad:
            c.report((*p, "allowed_origins", i), bad, "bad-origin")
    for key, value in headers.items():
        if key.lower() in ROUTING_HEADERS and ("{{" in value or "{%" in value):
            c.report(
                (*p, "headers", key),
                f"header {key} must not be a template: servers and proxies route by it, so a value there could "
                "change where the request goes (write it literally or from ${ENV})",
                "templated-routing-header",
            )


def _writes(c: NetworkChecker, path: YamlPath, saves: Saves) -> None:
    """The state writes of a tool's ``save:`` or ``state:``: each into a declared field, an
    ``append`` into an array field, a ``merge`` into an object field, a literal that fits."""
    for key, write in saves.items():
        if key not in c.spec.state:
            if not c.dropped("state", key):
                c.report(
                    (*path, key),
                    f"state has no field '{key}'"
                    + hint(key, list(c.spec.state), "state fields")
                    + " (declare it under 'state:')",
                    "unknown-state-field",
                    key=True,
                )
            continue
        field = c.spec.state[key]
        kind = field.type if isinstance(field, JsonSchema) else field
        kinds: set[str | None] = set(kind) if isinstance(kind, list) else {kind}
        for op, wanted, model in (("append", "array", SaveAppend), ("merge", "object", SaveMerge)):
            if isinstance(write, model) and None not in kinds and wanted not in kinds:
                c.report(
                    (*path, key, op),
                    f"{op} needs an {wanted} field: state field '{key}' is declared as {' or '.join(sorted(map(str, kinds)))}"
                    + (" (write the value itself to replace it)" if op == "append" else ""),
                    f"{op}-needs-{wanted}",
                    key=True,
                )
        value = write.set if isinstance(write, SaveSet) else write
        if isinstance(write, SaveAppend | SaveMerge):
            continue
        if not (isinstance(value, str) and ("{{" in value or "{%" in value)):
            _literal_fits(c, (*path, key, "set") if isinstance(write, SaveSet) else (*path, key), value, field, key)


def _literal_fits(c: NetworkChecker, path: YamlPath, value: Any, field: Any, name: str | None = None) -> None:
    """A literal (non-template) value a state tool writes must fit the field's schema
    (``name``: the field's, when the path does not end with it)."""
    name = name or str(path[-1])
    schema = field if isinstance(field, JsonSchema) else JsonSchema.model_construct(type=field)
    if schema.enum is not None and value not in schema.enum:
        c.report(
            path,
            f"{show(value)} is not one of the values state field '{name}' allows: {', '.join(map(show, schema.enum))}",
            "bad-value",
        )
    elif isinstance(schema.type, str) and not matches_type(value, schema.type):
        c.report(path, f"{show(value)} is not of type {schema.type}, as state field '{name}' is declared", "bad-value")


def mcp_servers(c: NetworkChecker) -> None:
    """Each MCP server: include/exclude, its approval, ``${ENV}`` references, the URL scheme of its transport."""
    for name, server in c.spec.mcp_servers.items():
        base: YamlPath = ("mcp_servers", name)
        for i, tool in enumerate(server.exclude):
            if tool in (server.include or []):
                c.report((*base, "exclude", i), f"tool '{tool}' is both included and excluded", "include-exclude")
        mcp_approval(c, base, server)
        dumped = server.model_dump(by_alias=True, exclude_none=True, warnings=False).get("save") or {}
        for tool, saves in server.save.items():  # an MCP tool's save: (issue 15), as a declared tool's
            where: YamlPath = (*base, "save", tool)
            if tool in server.exclude or (server.include is not None and tool not in server.include):
                c.report(
                    where, f"tool '{tool}' is not offered (include/exclude): its save: never runs", "save-not-offered", key=True
                )
            c.walk_templates(where, dumped.get(tool), c.scope(scopes.TOOL_SAVE, None))
            _writes(c, where, saves)
        if server.transport == "stdio":
            c.env((*base, "command"), server.command)
            for i, arg in enumerate(server.args):
                c.env((*base, "args", i), arg)
            for key, value in server.env.items():
                c.env((*base, "env", key), value)
            c.env((*base, "cwd"), server.cwd)
        else:
            c.env((*base, "url"), server.url)
            schemes = ("ws://", "wss://") if server.transport == "ws" else ("http://", "https://")
            if not server.url.startswith((*schemes, "${")):
                article = "an" if server.transport[0] in "aeios" else "a"
                c.report(
                    (*base, "url"),
                    f"{article} {server.transport} server url starts with {' or '.join(schemes)}, got {show(server.url)}",
                    "bad-url",
                )
            for key, value in server.headers.items():
                c.env((*base, "headers", key), value)


def history(c: NetworkChecker) -> None:
    """The thread store: the settings its kind needs, and its HTTP endpoints as the HTTP tool's."""
    history = c.spec.history
    if history is None:
        return
    if history.store == "postgres":
        if history.url is None:
            c.report(
                ("history", "store"), "store: postgres needs 'url', an ${ENV} reference such as ${DATABASE_URL}", "missing-url"
            )
        elif not envrefs.is_reference(history.url):
            c.report(
                ("history", "url"),
                "url must be an ${ENV} reference such as ${DATABASE_URL}: a connection URL holds a password",
                "literal-secret",
            )
    elif history.url is not None:
        c.report(("history", "url"), f"'url' is only used with store: postgres (this store is {history.store})", "unused-url")
    if history.store == "http" and history.http is None:
        c.report(
            ("history", "store"),
            "store: http needs 'http' with the get and append endpoints of your history service",
            "missing-http",
        )
    elif history.store != "http" and history.http is not None:
        c.report(("history", "http"), f"'http' is only used with store: http (this store is {history.store})", "unused-http")
    if history.http is not None:
        for what in ("create", "get", "append"):
            endpoint = getattr(history.http, what)
            if endpoint is None:
                continue
            path: YamlPath = ("history", "http", what)
            scope = c.scope(scopes.HISTORY_APPEND if what == "append" else scopes.HISTORY)
            c.template((*path, "url"), endpoint.url, scope)
            c.env((*path, "url"), endpoint.url)
            for key, value in endpoint.headers.items():
                c.template((*path, "headers", key), value, scope)
                c.env((*path, "headers", key), value)
            _url_destination(c, path, endpoint.url, endpoint.headers, None)
            c.walk_templates((*path, "body"), endpoint.body, scope)
