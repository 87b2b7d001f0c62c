"""The scope table (netrun.spec.scopes) covers every template and expression place of the file
format, `netrun validate` allows exactly its names at each place, and the runtime provides
exactly them: each place is probed with a template that lists the variables defined there,
in real runs on the local engine with the scripted model where netrun evaluates it."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from netrun.engines.concurrency import key_value
from netrun.engines.triggers import accepts, network_input
from netrun.history.http import HttpHistoryStore
from netrun.schema import field_docs
from netrun.spec import EventTrigger, NetworkSpec, scopes
from netrun.spec.history import HttpHistory
from netrun.validate import validate_paths

from .conftest import REPO
from .fakes.http_server import FakeHttpServer, Reply
from .test_run_loop import call, engine
from .test_scopes import Prompts

NAMES = list(scopes.VARIABLES)
FILE_PLACES = [p for p in scopes.PLACES if p.paths]
PROBE = "[" + ", ".join(f"('{n}' if {n} is defined else '')" for n in NAMES) + "] | select | join('.')"
"""An expression giving the names defined where it is evaluated, joined by dots."""
TEMPLATE = "{{ " + PROBE + " }}"


def defined(text: str) -> set[str]:
    return set(text.split(".")) - {""}


def exactly(names: frozenset[str]) -> str:
    """An expression that holds only where exactly ``names`` are defined."""
    return " and ".join(f"{n} is defined" if n in names else f"{n} is not defined" for n in NAMES)


# -- every place of the file format is in the table ---------------------------------------

_TEMPLATE_DOC = re.compile(r"string values (inside it )?are templates")


def _models(tp: Any, suffix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """The models inside a field's type, each with the YAML path suffix that leads into it."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [(suffix, tp)]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict:
        return _models(args[1], suffix + ".*")
    if origin is list:
        return _models(args[0], suffix + "[]")
    if origin is typing.Annotated:
        return _models(args[0], suffix)
    if origin in (typing.Union, types.UnionType):
        return [found for a in args for found in _models(a, suffix)]
    return []


def _written(cls: type[BaseModel]) -> dict[str, str]:
    """The annotations of ``cls`` as its source writes them: the ``Template`` alias is ``str``
    once evaluated, so only the source tells it."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    return {
        n.target.id: ast.unparse(n.annotation) for n in body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }


def template_fields(model: type[BaseModel], prefix: str = "", seen: frozenset[type] = frozenset()) -> set[str]:
    """The YAML paths of every field that holds templates or expressions: typed ``Template`` or
    ``Expression`` (spec.base), or a JSON value whose docs say its string values are templates."""
    found: set[str] = set()
    raw: dict[str, Any] = {}
    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if isinstance(klass, type) and issubclass(klass, BaseModel):
            raw.update(_written(klass))
            docs.update(field_docs(klass))
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}.{key}" if prefix else key
        written = str(raw.get(name, ""))
        if re.search(r"\b(Template|Expression)\b", written) or _TEMPLATE_DOC.search(docs.get(name, "")):
            found.add(path)
        for suffix, sub in _models(info.annotation):
            if sub not in seen:
                found |= template_fields(sub, path + suffix, seen | {model})
    return found


def test_every_template_and_expression_place_is_in_the_table() -> None:
    fields = {p.replace("[]", "") for p in template_fields(NetworkSpec)}
    table = {p.replace("[]", "") for place in FILE_PLACES for p in place.paths}
    assert fields == table  # `trigger` may be one mapping or a list: compared without "[]"
    assert len(fields) > 25


def test_the_readme_table_is_the_module_s() -> None:
    assert scopes.markdown() in (REPO / "README.md").read_text()


def test_the_runtime_refuses_variables_other_than_the_table_s() -> None:
    with pytest.raises(scopes.ScopeError, match=r"missing \['agent'\], extra \['agents'\]"):
        scopes.variables(scopes.AGENT_SYSTEM, {n: None for n in (*scopes.NETWORK, "agents")})


# -- what validate allows at each place ------------------------------------------------------

BASE = """\
name: probe
model: {from: x, allowed: [openai/x]}
state: {seen: {type: string}}
prompts: {p: hi}
agents:
  host:
    description: d
    system: hi
    model: {from: x, allowed: [openai/x]}
    tools: [note, fetch, send, ask, child]
    before: [{tool: note, args: {a: x}, if: "true", save: {seen: x}, skip_agent_if: "true", stop_if: "true"}]
    after: [{tool: note, args: {a: x}, if: "true", save: {seen: x}, stop_if: "true"}]
setup: [{tool: note, args: {a: x}, if: "true", save: {seen: x}, stop_if: "true"}]
finally: [{tool: note, args: {a: x}, if: "true", save: {seen: x}}]
router:
  rules: [{if: "true", agent: host}]
  otherwise: llm
  llm: {system: route}
tools:
  note: {state: {seen: x}}
  fetch: {http: {url: "https://example.com/a", query: {q: x}, headers: {X-A: x}, body: {b: x}}, save: {seen: x}}
  send: {event: {name: app/x, data: {d: x}}}
  ask: {wait_for_event: {event: app/a, if: "true"}}
  child: {network: {name: other, input: x}}
  run: {command: {argv: [x], stdin: x, env: {E: x}}}
trigger: {event: app/start, if: "true", input: x, thread: x, user: x}
send: {completed: [{event: app/done, data: {d: x}}], failed: [{event: app/failed, data: {d: x}}]}
function:
  concurrency: [{limit: 1, key: event.data.a}]
  throttle: {limit: 1, period: 1m, key: event.data.a}
  rate_limit: {limit: 1, period: 1m, key: event.data.a}
  debounce: {period: 1m, key: event.data.a}
  singleton: {mode: skip, key: event.data.a}
  priority: {run: "0"}
  idempotency: event.data.a
  cancel: [{event: app/stop, if: "true"}]
history:
  store: http
  http:
    create: {url: "https://example.com/t", headers: {X-A: x}, body: {b: x}}
    get: {url: "https://example.com/t", headers: {X-A: x}, body: {b: x}}
    append: {url: "https://example.com/t", headers: {X-A: x}, body: {b: x}}
"""


def _concrete(data: Any, glob: str) -> tuple[Any, str | int]:
    """The container and key in ``data`` (built from BASE) at the YAML path ``glob``."""
    keys = [k for part in glob.split(".") for k in re.split(r"(\[\])", part) if k]
    node, last = data, keys.pop()
    for i, key in enumerate(keys):
        after = [*keys, last][i + 1]
        if key == "[]":
            node = node[0]
        elif key == "*":  # the entry that has the next key (the one http tool among the tools)
            node = next(v for v in node.values() if isinstance(v, dict) and after in v)
        else:
            node = node[key]
    if last == "[]":
        return node, 0
    return node, last


def test_validate_allows_exactly_the_table_s_names_at_each_place(tmp_path: Path) -> None:
    data = yaml.safe_load(BASE)
    reference = "[" + ", ".join(NAMES) + "] | length > 0"
    for place in FILE_PLACES:
        for glob in place.paths:
            node, key = _concrete(data, glob)
            text = reference if place.kind == "expression" else "{{ " + reference + " }}"
            node[key] = {k: text for k in node[key]} if isinstance(node[key], dict) else text
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(data))
    (result,) = validate_paths([path]).files
    undefined: dict[str, set[str]] = {}
    for d in result.diagnostics:
        if d.code == "undefined-variable":
            where = ".".join("[]" if isinstance(k, int) else str(k) for k in d.path).replace(".[]", "[]")
            undefined.setdefault(where, set()).add(re.match(r"undefined variable '(\w+)'", d.message)[1])  # type: ignore[index]
    for place in FILE_PLACES:
        for glob in place.paths:
            hits = {w: names for w, names in undefined.items() if _matches(w, glob)}
            assert hits, f"{glob}: no template was checked there"
            for where, names in hits.items():
                assert names == set(NAMES) - place.names, where


def _matches(where: str, glob: str) -> bool:
    pattern = re.escape(glob).replace(r"\*", r"[^.\[]+").replace(r"\[\]", r"\[\]")
    return re.fullmatch(pattern + r"(\.[^.\[]+)?", where) is not None  # a dict field's one key


# -- what the runtime provides at each place ---------------------------------------------------

RUN = {
    "name": "probe", "model": "openai/x", "max_iter": 3,
    "state": {"seen": {"type": "string"}},
    "prompts": {"p": TEMPLATE},
    "agents": {"host": {"description": "d", "system": TEMPLATE + "|{% include 'p' %}", "tools": ["note", "send", "child"]}},
    "router": {"rules": [{"if": "call_count >= 1", "stop": True}, {"if": exactly(scopes.RULE_IF.names), "agent": "host"}],
               "otherwise": "stop"},
    "tools": {
        "note": {"state": {"seen": TEMPLATE}},
        "send": {"event": {"name": "app/" + TEMPLATE}},
        "child": {"network": {"name": "other", "input": TEMPLATE}},
    },
}  # fmt: skip
OTHER = "name: other\nmodel: openai/x\nagents:\n  o: {description: d, system: '{{ input }}'}\nrouter:\n  rules: [{if: 'call_count >= 1', stop: true}, {if: 'true', agent: o}]\n"


def test_a_run_provides_the_table_s_names_to_prompts_rules_and_tools(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(OTHER)
    client = Prompts({"host": [{"tool_calls": [call("note"), call("send"), call("child", input="x")]}], "o": [{"text": "done"}]})
    record = asyncio.run(engine(tmp_path, client).start(NetworkSpec.model_validate(RUN), tmp_path, input="owls"))
    assert record.status == "completed", record.error
    system, included = client.systems[0].split("|")  # the rule that leads to host held: its scope is exact
    assert defined(system) == scopes.AGENT_SYSTEM.names
    assert scopes.PROMPT.names <= defined(included) == scopes.AGENT_SYSTEM.names  # a prompt sees its includer's
    assert defined(record.result["state"]["seen"]) == scopes.TOOL_STATE.names
    calls = {c["name"]: c for c in record.result["results"][0]["tool_calls"]}
    assert defined(calls["send"]["result"]["sent"].removeprefix("app/")) == scopes.TOOL_EVENT.names
    assert calls["child"].get("error") is None, calls["child"]
    assert defined(client.systems[1]) == scopes.TOOL_NETWORK.names  # the child's input


def test_the_llm_router_prompt_sees_the_table_s_names(tmp_path: Path) -> None:
    spec = {**RUN, "router": {"otherwise": "llm", "llm": {"system": TEMPLATE}}}
    client = Prompts({"router": [{"tool_calls": [call("finish")]}]})
    record = asyncio.run(engine(tmp_path, client).start(NetworkSpec.model_validate(spec), tmp_path, input="owls"))
    assert record.status == "completed", record.error
    assert defined(client.systems[0]) == scopes.ROUTER_SYSTEM.names


def test_a_wait_if_sees_the_table_s_names_when_its_event_arrives(tmp_path: Path) -> None:
    spec = {
        **RUN,
        "router": {"rules": [{"if": "call_count >= 2", "stop": True}, {"if": "true", "agent": "host"}]},
        "agents": {"host": {"description": "d", "system": "hi", "tools": ["ask"]}},
        "tools": {"ask": {"wait_for_event": {"event": "app/answered", "if": exactly(scopes.WAIT_IF.names)}}},
    }
    client = Prompts({"host": [{"tool_calls": [call("ask")]}, {"text": "ok"}]})
    eng = engine(tmp_path, client)
    assert asyncio.run(eng.start(NetworkSpec.model_validate(spec), tmp_path, input="owls")).status == "waiting"
    (resumed,) = asyncio.run(eng.deliver("app/answered", {"a": 1}))  # the `if` held: its scope is exact
    assert resumed.status == "completed", resumed.error


def test_an_http_tool_sees_the_table_s_names(tmp_path: Path) -> None:
    with FakeHttpServer() as api:
        api.script("*", Reply(200, {"ok": True}))
        spec = {**RUN, "agents": {"host": {"description": "d", "system": "hi", "tools": ["get"]}},
                "tools": {"get": {"http": {"url": api.url + "/" + TEMPLATE, "headers": {"X-Probe": TEMPLATE},
                                           "query": {"q": TEMPLATE}, "body": {"b": TEMPLATE}, "method": "POST", "retries": 0}}}}  # fmt: skip
        client = Prompts({"host": [{"tool_calls": [call("get")]}]})
        record = asyncio.run(engine(tmp_path, client).start(NetworkSpec.model_validate(spec), tmp_path, input="owls"))
    assert record.status == "completed", record.error
    (hit,) = api.hits
    assert defined(hit.path.lstrip("/")) == scopes.TOOL_HTTP.names
    assert defined(hit.headers["x-probe"]) == defined(hit.json()["b"]) == scopes.TOOL_HTTP.names
    assert defined(hit.target.partition("q=")[2]) == scopes.TOOL_HTTP.names


def test_an_http_history_sees_the_table_s_names() -> None:
    with FakeHttpServer() as api:
        api.script("*", Reply(200, {"messages": []}))
        endpoint = {"url": api.url + "/" + TEMPLATE, "headers": {"X-Probe": TEMPLATE}, "body": {"b": TEMPLATE}}
        store = HttpHistoryStore(HttpHistory.model_validate({"create": endpoint, "get": endpoint, "append": endpoint}), {})

        async def use() -> None:
            await store.create("t1", "ann")
            await store.get("t1")
            await store.append("t1", [{"id": "m1", "role": "user", "content": "hi"}])
            await store.close()

        asyncio.run(use())
    create, get, append = api.hits
    for hit, place in ((create, scopes.HISTORY), (get, scopes.HISTORY), (append, scopes.HISTORY_APPEND)):
        assert defined(hit.path.lstrip("/")) == defined(hit.headers["x-probe"]) == defined(hit.json()["b"]) == place.names


def test_triggers_and_flow_control_keys_see_the_table_s_names() -> None:
    spec = NetworkSpec.model_validate(
        {**RUN, "trigger": {"event": "app/start", "input": TEMPLATE, "if": exactly(scopes.TRIGGER_IF.names)}}
    )
    event = {"name": "app/start", "data": {}}
    assert defined(network_input(spec, event)) == scopes.TRIGGER_INPUT.names
    assert spec.trigger is not None and isinstance(spec.trigger, EventTrigger) and accepts(spec.trigger, event)
    # The local engine evaluates concurrency and singleton keys itself; Inngest, the others.
    assert defined(key_value(PROBE, event).strip("'")) == scopes.FUNCTION_KEY.names
