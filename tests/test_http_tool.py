"""The ``http`` tool against a real HTTP server on 127.0.0.1 (tests/fakes/http_server.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from netrun.runtime.tooling import ToolContext, ToolOutcome
from netrun.spec.params import JsonSchema
from netrun.spec.tools import HttpTool
from netrun.tools.http import HttpToolImpl, parameters_schema, retry_after_seconds
from tests.fakes.http_server import FakeHttpServer, Hit, Reply
from tests.fakes.server_thread import free_port

SECRET = "s3cr3t+T0ken/with spaces&more==|^x"
"""Characters that URL encodings change (in a path, a query), so redaction must know those forms too."""


@pytest.fixture
def server() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as srv:
        yield srv


def make(http: dict[str, Any], parameters: dict[str, Any] | None = None, **extra: Any) -> HttpToolImpl:
    spec = HttpTool.model_validate({"http": http, **({"parameters": parameters} if parameters else {}), **extra})
    return HttpToolImpl("t", spec, backoff_base=0.01, backoff_max=0.05)


def context(step: str = "step-1", environ: dict[str, str] | None = None) -> ToolContext:
    return ToolContext(
        run_id="run-1",
        step_id=step,
        input="the input",
        state={"category": "technical"},
        event={"data": {"user": "u1"}},
        environ=environ if environ is not None else {},
        base_dir=Path("."),
    )


def call(tool: HttpToolImpl, args: dict[str, Any] | None = None, ctx: ToolContext | None = None) -> ToolOutcome:
    return asyncio.run(tool.call(args or {}, ctx or context()))


def dump(outcome: ToolOutcome) -> str:
    return json.dumps(outcome.to_json())


# --- requests are rendered from the spec ---


def test_get_with_templated_path_and_query(server: FakeHttpServer) -> None:
    server.script("/orders/A-17", Reply(200, {"id": "A-17", "total": 3}))
    tool = make(
        {"url": server.url + "/orders/{{ args.order_id }}", "query": {"expand": "{{ args.expand }}", "run": "{{ run.id }}"}},
        {"order_id": {"type": "string"}, "expand": {"type": "string", "default": "lines"}},
    )
    outcome = call(tool, {"order_id": "A-17"})
    assert outcome.error is None
    assert outcome.result == {"status": 200, "body": {"id": "A-17", "total": 3}}
    (hit,) = server.hits
    assert (hit.method, hit.path) == ("GET", "/orders/A-17")
    assert hit.query == {"expand": ["lines"], "run": ["run-1"]}  # the default filled in for the template


def test_post_with_templated_json_body(server: FakeHttpServer) -> None:
    server.script("/tickets", Reply(201, {"created": True}))
    body = {"title": "Ticket: {{ args.title }}", "limit": "{{ args.limit }}", "tags": ["{{ state.category }}", "fixed"], "n": 3}
    tool = make(
        {"method": "POST", "url": server.url + "/tickets", "body": body},
        {"title": {"type": "string"}, "limit": {"type": "integer"}},
    )
    outcome = call(tool, {"title": "printer on fire", "limit": 5})
    assert outcome.result == {"status": 201, "body": {"created": True}}
    (hit,) = server.hits
    assert hit.headers["content-type"] == "application/json"
    # a lone {{ expr }} keeps its JSON type; mixed text renders as text
    assert hit.json() == {"title": "Ticket: printer on fire", "limit": 5, "tags": ["technical", "fixed"], "n": 3}


def test_headers_resolve_env_references_from_ctx_environ(server: FakeHttpServer) -> None:
    server.script("/h", Reply(200, "ok"))
    headers = {"Authorization": "Bearer ${TOKEN}", "X-Region": "${REGION:-eu}", "X-Literal": "$${TOKEN}", "X-Odd": "${ODD}"}
    tool = make({"url": server.url + "/h", "headers": headers})
    outcome = call(tool, ctx=context(environ={"TOKEN": "abc123", "ODD": "{{ 7 * 7 }}"}))
    assert outcome.error is None
    hit = server.hits[0]
    assert hit.headers["authorization"] == "Bearer abc123"
    assert hit.headers["x-region"] == "eu"
    assert hit.headers["x-literal"] == "${TOKEN}"  # $${ escapes a reference
    assert hit.headers["x-odd"] == "{{ 7 * 7 }}"  # a secret's value never goes through the template engine


def test_model_supplied_env_reference_is_sent_literally(server: FakeHttpServer) -> None:
    server.script("/s", Reply(200, {"ok": True}))
    tool = make(
        {"method": "POST", "url": server.url + "/s", "query": {"q": "{{ args.q }}"}, "headers": {"X-Q": "{{ args.q }}"},
         "body": {"q": "{{ args.q }}", "text": "about {{ args.q }}"}},
        {"q": {"type": "string"}},
    )  # fmt: skip
    outcome = call(tool, {"q": "${HOME}"}, context(environ={"HOME": "/home/very-secret"}))
    assert outcome.error is None
    hit = server.hits[0]
    assert hit.query == {"q": ["${HOME}"]}
    assert hit.headers["x-q"] == "${HOME}"
    assert hit.json() == {"q": "${HOME}", "text": "about ${HOME}"}
    assert "very-secret" not in hit.target + json.dumps(hit.headers) + hit.body.decode()


# --- durability rule 5 and retries ---


def test_idempotency_key_is_the_same_across_retries_and_differs_between_steps(server: FakeHttpServer) -> None:
    server.script("/pay", Reply(503), Reply(502), Reply(200, {"paid": True}))
    tool = make(
        {"method": "POST", "url": server.url + "/pay", "body": {"a": 1}, "retries": 2, "headers": {"Idempotency-Key": "mine"}}
    )
    first = call(tool, ctx=context("step-1"))
    assert first.result == {"status": 200, "body": {"paid": True}}
    keys = [h.headers["idempotency-key"] for h in server.hits]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert keys[0] == context("step-1").idempotency_key
    call(tool, ctx=context("step-2"))
    assert server.hits[-1].headers["idempotency-key"] == context("step-2").idempotency_key != keys[0]


def test_retry_after_503_then_success(server: FakeHttpServer) -> None:
    server.script("/flaky", Reply(503, "busy"), Reply(200, {"ok": 1}))
    outcome = call(make({"url": server.url + "/flaky", "retries": 3}))
    assert outcome.error is None and outcome.result == {"status": 200, "body": {"ok": 1}}
    assert len(server.hits) == 2


def test_429_retry_after_is_honoured(server: FakeHttpServer) -> None:
    server.script("/rl", Reply(429, "slow down", {"Retry-After": "1"}), Reply(200, "fine"))
    outcome = call(make({"url": server.url + "/rl"}))
    assert outcome.result == {"status": 200, "body": "fine"}
    first, second = server.hits
    assert 0.9 <= second.at - first.at < 1.8


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("3600", cap=30) == 30
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    in_5s = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    assert 3.5 <= retry_after_seconds(in_5s) <= 5.0  # type: ignore[operator]
    assert retry_after_seconds(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0


def test_retries_exhausted_is_an_error_outcome(server: FakeHttpServer) -> None:
    server.script("/down", Reply(503, {"error": "maintenance"}))
    outcome = call(make({"url": server.url + "/down", "retries": 2}))
    assert outcome.error is not None and "503" in outcome.error and "gave up after 3 attempts" in outcome.error
    assert outcome.result == {"status": 503, "body": {"error": "maintenance"}}
    assert len(server.hits) == 3


def test_404_is_an_error_outcome_and_not_retried(server: FakeHttpServer) -> None:
    server.script("/missing", Reply(404, {"detail": "no such order"}))
    outcome = call(make({"url": server.url + "/missing", "retries": 3}))
    assert outcome.error is not None and "404" in outcome.error
    assert outcome.result == {"status": 404, "body": {"detail": "no such order"}}
    assert len(server.hits) == 1


def test_timeout_is_retried_then_an_error(server: FakeHttpServer) -> None:
    server.script("/slow", Reply(200, "late", delay=0.6))
    started = time.monotonic()
    outcome = call(make({"url": server.url + "/slow", "timeout": "150ms", "retries": 1}))
    assert time.monotonic() - started < 1.0
    assert outcome.error is not None and "timed out" in outcome.error and "gave up after 2 attempts" in outcome.error
    assert len(server.hits) == 2


def test_connection_refused_is_retried_then_an_error() -> None:
    port = free_port()
    outcome = call(make({"url": f"http://127.0.0.1:{port}/x", "retries": 1}))
    assert outcome.error is not None and "ConnectError" in outcome.error and "gave up after 2 attempts" in outcome.error


# --- responses ---


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, b"x" * 5000),  # refused from Content-Length, before reading
        Reply(200, chunks=[b"x" * 400] * 10),  # no length: reading stops past the limit
    ],
)
def test_max_bytes_exceeded_is_an_error(server: FakeHttpServer, reply: Reply) -> None:
    server.script("/big", reply)
    outcome = call(make({"url": server.url + "/big", "max_bytes": 1000}))
    assert outcome.error == "response larger than 1000 bytes"
    assert outcome.result is None


def test_a_response_of_exactly_max_bytes_is_accepted(server: FakeHttpServer) -> None:
    server.script("/edge", Reply(200, chunks=[b"y" * 500, b"y" * 500]))
    outcome = call(make({"url": server.url + "/edge", "max_bytes": 1000}))
    assert outcome.error is None and outcome.result == {"status": 200, "body": "y" * 1000}


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (Reply(200, {"a": [1, 2]}), {"a": [1, 2]}),
        (Reply(200, "plain words"), "plain words"),
        (Reply(200, '{"a": 1}'), {"a": 1}),  # text/plain, but the body reads as JSON
        (Reply(200, "{not json"), "{not json"),
        (Reply(200, b"[1]", {"Content-Type": "application/problem+json"}), [1]),
        (Reply(200, "caf\u00e9".encode("latin-1"), {"Content-Type": "text/plain; charset=latin-1"}), "caf\u00e9"),
        (Reply(204), None),
    ],
)
def test_text_and_json_results(server: FakeHttpServer, reply: Reply, body: Any) -> None:
    server.script("/r", reply)
    outcome = call(make({"url": server.url + "/r"}))
    assert outcome.error is None and outcome.result == {"status": reply.status, "body": body}


def test_head_request(server: FakeHttpServer) -> None:
    server.script("/r", Reply(200, "ignored"))
    outcome = call(make({"method": "HEAD", "url": server.url + "/r"}))
    assert outcome.result == {"status": 200, "body": None} and server.hits[0].method == "HEAD"


# --- failures the model or the file caused: outcomes, never exceptions ---

PARAMS = {
    "id": {"type": "integer"},
    "kind": {"type": "string", "enum": ["a", "b"]},
    "tags": {"type": "array", "items": {"type": "string"}, "default": []},
}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"kind": "a"}, "args.id: missing (it is required)"),
        ({"id": "7", "kind": "a"}, "args.id: expected integer"),
        ({"id": True, "kind": "a"}, "args.id: expected integer"),
        ({"id": 7, "kind": "c"}, 'args.kind: must be one of ["a", "b"]'),
        ({"id": 7, "kind": "a", "tags": ["x", 3]}, "args.tags[1]: expected string"),
    ],
)
def test_invalid_arguments_are_an_error_without_a_request(server: FakeHttpServer, args: dict[str, Any], message: str) -> None:
    server.script("/v", Reply(200, "ok"))
    outcome = call(make({"url": server.url + "/v/{{ args.id }}"}, PARAMS), args)
    assert outcome.error is not None and message in outcome.error
    assert server.hits == []


def test_valid_arguments_pass(server: FakeHttpServer) -> None:
    server.script("/v/7", Reply(200, "ok"))
    assert call(make({"url": server.url + "/v/{{ args.id }}"}, PARAMS), {"id": 7, "kind": "b"}).error is None


def test_missing_env_var_names_the_variable_without_a_request(server: FakeHttpServer) -> None:
    server.script("/e", Reply(200, "ok"))
    tool = make({"url": server.url + "/e", "headers": {"Authorization": "Bearer ${ORDERS_TOKEN}", "X-Other": "${OTHER}"}})
    outcome = call(tool, ctx=context(environ={"OTHER": "other-value"}))
    assert outcome.error == "environment variable ORDERS_TOKEN is not set"
    assert server.hits == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [("ftp://127.0.0.1/{{ args.p }}", "UnsupportedProtocol"), ("http://[::1/{{ args.p }}", "failed"), ("/relative", "failed")],
)
def test_bad_urls_are_error_outcomes(url: str, fragment: str) -> None:
    outcome = call(make({"url": url, "retries": 3}, {"p": {"type": "string", "default": "x"}}))
    assert outcome.error is not None and fragment in outcome.error


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "caf\u00e9 \U0001f600", "\x00"])
def test_hostile_header_values_are_error_outcomes_or_sent_safely(server: FakeHttpServer, value: str) -> None:
    server.script("/h", Reply(200, "ok"))
    outcome = call(make({"url": server.url + "/h", "headers": {"X-V": "{{ args.v }}"}}, {"v": {"type": "string"}}), {"v": value})
    assert outcome.error is not None or "x-injected" not in server.hits[0].headers
    assert all("x-injected" not in h.headers for h in server.hits)


def test_body_expressions_keep_their_type_and_whitespace_control_still_renders(server: FakeHttpServer) -> None:
    server.script("/b", Reply(200, "ok"))
    body = {"obj": "{{ event.data }}", "n": "{{ args.n * 2 }}", "s": "{{ args.n | string }}", "ws": "{{- args.n -}}"}
    outcome = call(make({"method": "PUT", "url": server.url + "/b", "body": body}, {"n": {"type": "integer"}}), {"n": 4})
    assert outcome.error is None
    assert server.hits[0].json() == {"obj": {"user": "u1"}, "n": 8, "s": "4", "ws": "4"}


def test_template_errors_are_error_outcomes(server: FakeHttpServer) -> None:
    outcome = call(make({"url": server.url + "/{{ args.nope }}?k=${KEY}"}), ctx=context(environ={"KEY": SECRET}))
    assert outcome.error is not None and "nope" in outcome.error
    assert "NETRUNENV" not in outcome.error and SECRET not in outcome.error  # a cut placeholder reads as ${…}
    assert server.hits == []


# --- secrets never reach an outcome ---


def echo(hit: Hit) -> Reply:
    return Reply(
        200 if "ok" in hit.path else 400,
        {"target": hit.target, "auth": hit.headers.get("authorization"), "body": hit.body.decode()},
    )


@pytest.mark.parametrize("path", ["/ok", "/bad"])
def test_a_secret_never_appears_in_an_outcome_when_the_server_echoes_it(server: FakeHttpServer, path: str) -> None:
    server.script("*", echo)
    tool = make(
        {"method": "POST", "url": server.url + path + "/${TOKEN}", "query": {"key": "${TOKEN}"},
         "headers": {"Authorization": "Bearer ${TOKEN}"}, "body": {"token": "${TOKEN}"}},
    )  # fmt: skip
    outcome = call(tool, ctx=context(environ={"TOKEN": SECRET}))
    hit = server.hits[0]
    assert hit.query == {"key": [SECRET]} and hit.headers["authorization"] == f"Bearer {SECRET}"  # it was sent
    assert (outcome.error is None) == (path == "/ok")
    text = dump(outcome)
    assert "***" in text
    for fragment in (SECRET, "s3cr3t", "T0ken"):
        assert fragment not in text


def test_a_secret_never_appears_in_an_outcome_when_the_connection_fails() -> None:
    port = free_port()
    tool = make({"url": f"http://127.0.0.1:{port}/${{TOKEN}}", "query": {"key": "${TOKEN}"}, "retries": 0})
    outcome = call(tool, ctx=context(environ={"TOKEN": SECRET}))
    text = dump(outcome)
    assert outcome.error is not None and "***" in text  # the URL is in the message, redacted
    assert "s3cr3t" not in text and "T0ken" not in text


def test_description_names_method_and_url_template_without_values() -> None:
    tool = make({"url": "https://api.example.com/v1/{{ args.id }}?key=${API_KEY}"})
    assert tool.description == "HTTP GET https://api.example.com/v1/{{ args.id }}?key=${API_KEY}"
    assert make({"url": "https://x"}, description="Looks up orders.").description == "Looks up orders."


# --- parameters_schema: shared by every tool kind ---


def test_parameters_schema_from_the_shorthand() -> None:
    params = {
        "q": JsonSchema.model_validate({"type": "string"}),
        "n": JsonSchema.model_validate({"type": "integer", "default": 5}),
    }
    assert parameters_schema(params) == {
        "type": "object",
        "properties": {"q": {"type": "string"}, "n": {"type": "integer", "default": 5}},
        "required": ["q"],
    }


def test_parameters_schema_from_a_full_schema_and_from_nothing() -> None:
    full = {"type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": False}
    assert parameters_schema(JsonSchema.model_validate(full)) == {**full, "required": []}
    assert parameters_schema(full) == {**full, "required": []}
    assert parameters_schema(None) == {"type": "object", "properties": {}, "required": []}
    spec = HttpTool.model_validate({"http": {"url": "https://x"}, "parameters": {"q": {"type": "string"}}})
    assert HttpToolImpl("t", spec).parameters["required"] == ["q"]
