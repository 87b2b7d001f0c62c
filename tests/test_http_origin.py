"""HTTP tools keep the author's origin: a value a template inserts into a URL is data, never
URL syntax (issue 10, item 3).

Two real servers on 127.0.0.1: A is the one the tool is declared with, B is the attacker's.
Every attack below must leave B without a single request (so without the secret header),
and either reach A at the path the author meant or be an error result with no request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
from netrun.models.scripted import ScriptedClient
from netrun.runtime.tooling import ToolOutcome
from netrun.spec import NetworkSpec
from netrun.spec.tools import HttpTool, StateTool
from netrun.tools.http import HttpToolImpl
from netrun.tools.state import StateToolImpl
from tests.conftest import REPO
from tests.fakes.http_server import FakeHttpServer, Reply
from tests.test_http_tool import call, context, make

TOKEN = "tok-9f8e7d"
AUTH = {"Authorization": "Bearer ${TOKEN}"}
ENV = {"TOKEN": TOKEN}


@pytest.fixture
def a() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as srv:
        srv.script("*", Reply(200, {"server": "A"}))
        yield srv


@pytest.fixture
def b() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as srv:
        srv.script("*", Reply(200, {"server": "B"}))
        yield srv


def port(server: FakeHttpServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def attack(url: str, value: str, **http: Any) -> ToolOutcome:
    tool = make({"url": url, "headers": AUTH, "retries": 0, **http}, {"v": {"type": "string"}})
    return call(tool, {"v": value}, context(environ=ENV))


def refused(outcome: ToolOutcome, *servers: FakeHttpServer) -> None:
    """An error result for the model, and not one request sent."""
    assert outcome.error is not None and outcome.result is None, outcome
    for server in servers:
        assert server.hits == []
    assert TOKEN not in str(outcome.to_json())


# --- a value cannot reach the origin: userinfo, port, host, scheme ---


@pytest.mark.parametrize("value", ["@127.0.0.1:{b}/x", ":{b}/x", "{b}/x", ".evil.example/x", "/x"])
def test_a_value_right_after_the_authority_is_in_the_origin_and_refused(a: FakeHttpServer, b: FakeHttpServer, value: str) -> None:
    # the attack: `http://127.0.0.1:A{{ args.path }}` with `@127.0.0.1:B/x`
    outcome = attack(a.url + "{{ args.v }}", value.format(b=port(b)))
    refused(outcome, a, b)
    assert "origin" in outcome.error  # type: ignore[operator]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:{{ args.v }}/x", "http://{{ args.v }}/x", "{{ args.v }}", "{{ args.v }}://127.0.0.1:{a}/x",
     "http://{{ args.v }}@127.0.0.1:{a}/x"],
)  # fmt: skip
def test_values_in_scheme_host_port_or_userinfo_positions_are_refused(a: FakeHttpServer, b: FakeHttpServer, url: str) -> None:
    for value in (str(port(b)), f"127.0.0.1:{port(b)}", b.url + "/x", "http", f"x@127.0.0.1:{port(b)}"):
        refused(attack(url.replace("{a}", str(port(a))), value), a, b)


@pytest.mark.parametrize(
    "value",
    ["http://127.0.0.1:{b}", "http://127.0.0.1:{a}@127.0.0.1:{b}", "http://127.0.0.1:{a}\\@127.0.0.1:{b}",
     "http://127.0.0.1:{b}#@127.0.0.1:{a}", "http://127\u30020\u30020\u30021:{b}", "http://127.0.0.1:{b}\t",
     "HTTP://127.0.0.1:{b}", "http://127.0.0.1.:{b}", "https://127.0.0.1:{a}", "http://localhost:{a}",
     "http://user@127.0.0.1:{a}"],
)  # fmt: skip
def test_allowed_origins_admit_only_the_declared_origins(a: FakeHttpServer, b: FakeHttpServer, value: str) -> None:
    url = "{{ args.v }}/orders/1"
    refused(attack(url, value.format(a=port(a), b=port(b)), allowed_origins=[a.url]), a, b)
    ok = attack(url, a.url, allowed_origins=[a.url])  # the declared origin itself is fine
    assert ok.error is None and [h.path for h in a.hits] == ["/orders/1"] and b.hits == []


def test_allowed_origins_keep_the_origin_the_author_wrote(a: FakeHttpServer, b: FakeHttpServer) -> None:
    tool = make({"url": a.url + "/x/{{ args.v }}", "allowed_origins": [b.url]}, {"v": {"type": "string"}})
    assert call(tool, {"v": "1"}).error is None
    assert [h.path for h in a.hits] == ["/x/1"] and b.hits == []


def test_allowed_origins_may_come_from_env(a: FakeHttpServer, b: FakeHttpServer) -> None:
    tool = make({"url": "{{ args.v }}/x", "allowed_origins": ["${OTHER}"]}, {"v": {"type": "string"}})
    ctx = context(environ={"OTHER": a.url})
    assert call(tool, {"v": a.url}, ctx).error is None
    refused(call(tool, {"v": b.url}, ctx), b)
    assert [h.path for h in a.hits] == ["/x"]


# --- a value in the path stays one segment: `/`, `\`, `?`, `#`, dot segments, CRLF ---


@pytest.mark.parametrize(
    "value",
    ["../../status/201", "..", ".", "..%2F..%2Fstatus", "%2e%2e", "%2E%2e/x", "..\\..\\status", "..;", "\uff0e\uff0e",
     "a/../../b", "%252e%252e", ""],
)  # fmt: skip
def test_dot_segments_and_empty_segments_from_values_are_refused(a: FakeHttpServer, b: FakeHttpServer, value: str) -> None:
    # the shape of networks/orders.yaml: `.../orders/{{ args.id }}`
    refused(attack(a.url + "/v1/orders/{{ args.v }}", value), a, b)


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("/127.0.0.1:{b}/x", "/v1/orders/%2F127.0.0.1%3A{b}%2Fx"),
        ("//127.0.0.1:{b}/x", "/v1/orders/%2F%2F127.0.0.1%3A{b}%2Fx"),
        ("\\\\127.0.0.1:{b}\\x", "/v1/orders/%5C%5C127.0.0.1%3A{b}%5Cx"),
        ("1?admin=true", "/v1/orders/1%3Fadmin%3Dtrue"),
        ("1#frag", "/v1/orders/1%23frag"),
        ("@127.0.0.1:{b}", "/v1/orders/%40127.0.0.1%3A{b}"),
        ("1 HTTP/1.1\r\nHost: 127.0.0.1:{b}\r\n", "/v1/orders/1%20HTTP%2F1.1%0D%0AHost%3A%20127.0.0.1%3A{b}%0D%0A"),
        ("a%2Fb", "/v1/orders/a%252Fb"),
        ("caf\u00e9", "/v1/orders/caf%C3%A9"),
    ],
)
def test_path_values_are_percent_encoded_as_one_segment(a: FakeHttpServer, b: FakeHttpServer, value: str, target: str) -> None:
    outcome = attack(a.url + "/v1/orders/{{ args.v }}", value.format(b=port(b)))
    assert outcome.error is None, outcome.error
    assert [h.target for h in a.hits] == [target.format(b=port(b))] and b.hits == []


# --- query keys and values, and the inline query string ---


def test_query_values_and_keys_are_encoded_in_the_inline_query(a: FakeHttpServer, b: FakeHttpServer) -> None:
    outcome = attack(a.url + "/s?q={{ args.v }}&{{ args.v }}=1", "x&admin=1#y")
    assert outcome.error is None
    (hit,) = a.hits
    assert hit.path == "/s" and hit.query == {"q": ["x&admin=1#y"], "x&admin=1#y": ["1"]}
    assert b.hits == []


def test_query_mapping_values_are_encoded(a: FakeHttpServer) -> None:
    outcome = attack(a.url + "/s", "x&admin=1#y", query={"q": "{{ args.v }}"})
    assert outcome.error is None and a.hits[0].query == {"q": ["x&admin=1#y"]}


def test_an_inline_query_string_is_kept_beside_the_query_mapping(a: FakeHttpServer) -> None:
    outcome = attack(a.url + "/s?fixed=1&v={{ args.v }}", "two", query={"extra": "3"})
    assert outcome.error is None
    assert a.hits[0].query == {"fixed": ["1"], "v": ["two"], "extra": ["3"]}


# --- ${ENV} is the operator's: trusted for the origin ---


def test_an_env_origin_works_and_values_after_it_are_confined(a: FakeHttpServer, b: FakeHttpServer) -> None:
    url = "${BASE}/v1/orders/{{ args.v }}"
    tool = make({"url": url, "headers": AUTH, "retries": 0}, {"v": {"type": "string"}})
    ok = call(tool, {"v": "A-1"}, context(environ={**ENV, "BASE": a.url}))
    assert ok.error is None and [h.path for h in a.hits] == ["/v1/orders/A-1"]
    assert a.hits[0].headers["authorization"] == f"Bearer {TOKEN}"
    for value in ("../../status/201", f"@127.0.0.1:{port(b)}", "%2e%2e"):
        outcome = call(tool, {"v": value}, context(environ={**ENV, "BASE": a.url}))
        assert outcome.error is not None or a.hits[-1].path.startswith("/v1/orders/")
    assert len(a.hits) == 2 and b.hits == []  # `@...` is one encoded segment on A; the dots are refused


def test_the_shipped_orders_network_confines_its_order_id(a: FakeHttpServer, b: FakeHttpServer) -> None:
    spec = yaml.safe_load((REPO / "networks" / "orders.yaml").read_text())["tools"]["lookup_order"]
    tool = HttpToolImpl("lookup_order", HttpTool.model_validate({**spec, "http": {**spec["http"], "retries": 0}}))
    ctx = context(environ={"ORDERS_API": a.url, "ORDERS_TOKEN": TOKEN})
    assert call(tool, {"order_id": "A1"}, ctx).error is None and [h.path for h in a.hits] == ["/v1/orders/A1"]
    for value in ("../../status/201", "..", "%2e%2e%2fstatus"):
        refused(call(tool, {"order_id": value}, ctx), b)
    assert call(tool, {"order_id": f"@127.0.0.1:{port(b)}/x"}, ctx).error is None  # one odd order id, on A
    assert [h.target for h in a.hits] == ["/v1/orders/A1", f"/v1/orders/%40127.0.0.1%3A{port(b)}%2Fx"] and b.hits == []


# --- headers cannot change the destination ---


@pytest.mark.parametrize("header", ["Host", "host", "X-Forwarded-Host", "Forwarded"])
def test_templated_routing_headers_are_refused(a: FakeHttpServer, b: FakeHttpServer, header: str) -> None:
    refused(attack(a.url + "/x", f"127.0.0.1:{port(b)}", headers={**AUTH, header: "{{ args.v }}"}), a, b)


# --- one typed-rendering rule: state writes, event data, HTTP bodies ---


def test_http_bodies_keep_arrays_and_objects(a: FakeHttpServer) -> None:
    body = {"tags": "{{ args.tags }}", "meta": "{{ args.meta }}", "text": "tags: {{ args.tags | join(',') }}"}
    tool = make({"method": "POST", "url": a.url + "/b", "body": body}, {"tags": {"type": "array"}, "meta": {"type": "object"}})
    assert call(tool, {"tags": ["x", "y"], "meta": {"k": [1, None]}}).error is None
    assert a.hits[0].json() == {"tags": ["x", "y"], "meta": {"k": [1, None]}, "text": "tags: x,y"}


def test_state_writes_keep_arrays_and_objects() -> None:
    spec = StateTool.model_validate({"state": {"tags": "{{ args.tags }}", "meta": "{{ args.meta }}", "label": "{{ args.tags }}"}})
    fields = {"tags": "array", "meta": None, "label": "string"}
    tool = StateToolImpl("s", spec, {"type": "object", "properties": {}}, fields)
    ops = tool.ops({"tags": ["x", "y"], "meta": {"k": 1}}, context())
    assert {op.field: op.value for op in ops} == {"tags": ["x", "y"], "meta": {"k": 1}, "label": '["x", "y"]'}


def test_event_data_keeps_arrays_and_objects(tmp_path: Path) -> None:
    spec = {
        "name": "ev",
        "model": "openai/gpt-4o-mini",
        "max_iter": 2,
        "agents": {"a": {"description": "sends", "system": "send", "tools": ["remember"]}},
        "router": {"rules": [{"if": "call_count > 0", "stop": True}, {"if": "true", "agent": "a"}]},
        "tools": {
            "remember": {
                "parameters": {"tags": {"type": "array", "items": {"type": "string"}}, "n": {"type": "integer"}},
                "event": {
                    "name": "app/memory.write",
                    "data": {"tags": "{{ args.tags }}", "n": "{{ args.n }}", "at": "{{ run.id }}!"},
                },
            }
        },
    }
    client = ScriptedClient(
        {"a": [{"text": "", "tool_calls": [{"name": "remember", "args": {"tags": ["p", "q"], "n": 3}}]}, {"text": "done"}]}, "t"
    )
    eng = LocalEngine(Journal(tmp_path / "runs.db"), {}, None, models=lambda s: client, backoff=0.01)
    sent: list[tuple[str, dict[str, Any]]] = []
    eng.on_event = lambda name, data, **how: sent.append((name, data))
    record = asyncio.run(eng.start(NetworkSpec.model_validate(spec), tmp_path, input="go"))
    assert record.status == "completed", record.error
    ((name, data),) = sent
    assert name == "app/memory.write"
    assert {k: data[k] for k in ("tags", "n")} == {"tags": ["p", "q"], "n": 3} and data["at"].endswith("!")


# --- more of the same kind: what a lax server decodes, nested values, more routing headers ---


@pytest.mark.parametrize(
    "value",
    ["..\x00", "..%00", ".\x00.", "%c0%ae%c0%ae", "%C0%AE.", "%e0%80%ae%e0%80%ae", ".%u002e", "%u002e%u002e", ".\u200b.",
     "\u200d..", "..\x7f", "%25c0%25ae%25c0%25ae"],
)  # fmt: skip
def test_dot_segments_a_lax_server_would_decode_are_refused(a: FakeHttpServer, b: FakeHttpServer, value: str) -> None:
    # NUL truncation, overlong UTF-8 ('%c0%ae' is '.' to old IIS and Tomcat), IIS's %uXXXX,
    # and invisible characters a server strips: each makes '..' somewhere down the line
    refused(attack(a.url + "/v1/orders/{{ args.v }}", value), a, b)


def test_a_value_inside_a_macro_is_one_value(a: FakeHttpServer, b: FakeHttpServer) -> None:
    url = a.url + "/v1/{% macro seg(x) %}{{ x }}{% endmacro %}{{ seg(args.v) }}"
    assert attack(url, "a/b?c").error is None
    assert [h.target for h in a.hits] == ["/v1/a%2Fb%3Fc"]  # the value as it is, encoded once
    refused(attack(url, ".."), b)
    assert len(a.hits) == 1


@pytest.mark.parametrize("header", ["X-Forwarded-Prefix", "X-Original-URI", "X-Envoy-Original-Path", "X-Forwarded-Uri"])
def test_templated_path_routing_headers_are_refused(a: FakeHttpServer, b: FakeHttpServer, header: str) -> None:
    refused(attack(a.url + "/x", "/admin", headers={**AUTH, header: "{{ args.v }}"}), a, b)


def test_arguments_nested_past_the_parser_are_an_error_not_a_crash(a: FakeHttpServer) -> None:
    from netrun.runtime.args import MAX_NESTING, parse_arguments

    deep = "[" * 100_000 + "]" * 100_000
    assert parse_arguments('{"v": ' + deep + "}") == (None, "the arguments are nested too deeply")
    # Valid JSON Python refuses (an integer of over 4,300 digits) is an answer for the model too.
    args_, why = parse_arguments('{"n": ' + "9" * 5000 + "}")
    assert args_ is None and why is not None and why.startswith("the arguments are not valid JSON (")
    # Deeper than the tools walk (checks, templates, redaction recurse): refused at the door.
    below = MAX_NESTING - 1  # the object itself is one level
    assert parse_arguments('{"v": ' + "[" * (below + 1) + "]" * (below + 1) + "}")[1] == (
        f"the arguments are nested too deeply (more than {MAX_NESTING} levels)"
    )
    # As deep as allowed: the typed rule sends it, or answers an error, never raises.
    args, problem = parse_arguments('{"v": ' + "[" * below + "]" * below + "}")
    assert problem is None
    tool = make({"method": "POST", "url": a.url + "/b", "body": {"v": "{{ args.v }}"}, "retries": 0}, {"v": {"type": "array"}})
    outcome = call(tool, args)
    assert (outcome.error is None and len(a.hits) == 1) or (outcome.error is not None and a.hits == []), outcome
