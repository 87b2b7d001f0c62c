"""The HTTP history store keeps the author's origin, as http tools do (tests/test_http_origin.py):
a thread id or user a REST client sends is data, percent-encoded for the URL component it
lands in, never URL syntax. ``../../admin``, ``%2e%2e/x``, ``x@127.0.0.1:B/``, ``a?b#c``
cannot change where the request goes; a call that would is a PermanentHistoryError and is
not sent.

Two real servers on 127.0.0.1: A is the history service the network is declared with, B is
the attacker's. B must never receive a request (nor the service's token).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.history.base import PermanentHistoryError
from netrun.history.http import HttpHistoryStore
from netrun.spec.history import HttpHistory

from .fakes.http_server import FakeHttpServer, Reply
from .fakes.llm_server import FakeLLM, ToolCall
from .fakes.llm_server import Reply as LLMReply
from .test_threads import ENV as RUN_ENV
from .test_threads import write

TOKEN = "hist-tok-5a4b3c"
ENV = {"HISTORY_TOKEN": TOKEN}
AUTH = {"Authorization": "Bearer ${HISTORY_TOKEN}"}


@pytest.fixture
def a() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as srv:
        srv.script("*", Reply(200, {"messages": []}))
        yield srv


@pytest.fixture
def b() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as srv:
        srv.script("*", Reply(200, {"messages": [{"role": "user", "content": "from B"}]}))
        yield srv


def port(server: FakeHttpServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def store(
    url: str, headers: dict[str, str] | None = None, environ: dict[str, str] | None = None, create: str | None = None
) -> HttpHistoryStore:
    endpoint = {"url": url, "headers": {**AUTH, **(headers or {})}}
    spec = HttpHistory.model_validate(
        {"get": {**endpoint, "method": "GET"}, "append": {**endpoint, "body": {"messages": "{{ messages }}"}},
         **({"create": {"method": "PUT", "url": create, "headers": AUTH}} if create else {})}
    )  # fmt: skip
    return HttpHistoryStore(spec, {**ENV, **(environ or {})})


def get(s: HttpHistoryStore, thread: str) -> Any:
    async def go() -> Any:
        try:
            return await s.get(thread)
        finally:
            await s.close()

    return asyncio.run(go())


def refused(s: HttpHistoryStore, thread: str, *servers: FakeHttpServer) -> str:
    """The call raises PermanentHistoryError, says why without the token, and nothing is sent."""
    with pytest.raises(PermanentHistoryError) as info:
        get(s, thread)
    message = str(info.value)
    assert "request not sent" in message and TOKEN not in message, message
    for server in servers:
        assert server.hits == [], [h.target for h in server.hits]
    return message


# --- values cannot leave the path the url is written with ---


@pytest.mark.parametrize("thread", ["../../admin", "a/../b", "..", ".", "%2e%2e/x", "%2E%2E", "%252e%252e", "．．", "..;"])
def test_a_thread_id_cannot_make_a_dot_segment(a: FakeHttpServer, b: FakeHttpServer, thread: str) -> None:
    message = refused(store(a.url + "/threads/{{ thread_id }}/messages"), thread, a, b)
    assert "'.' or '..'" in message and message.startswith("history get:")


@pytest.mark.parametrize("thread", ["..\x00", "..%00", "%c0%ae%c0%ae", ".%u002e", ".\u200b."])
def test_a_thread_id_cannot_make_a_dot_segment_a_lax_server_decodes(a: FakeHttpServer, b: FakeHttpServer, thread: str) -> None:
    # NUL truncation, overlong UTF-8, IIS's %uXXXX, a zero-width space a server drops
    message = refused(store(a.url + "/threads/{{ thread_id }}/messages"), thread, a, b)
    assert "'.' or '..'" in message


def test_an_empty_thread_id_cannot_collapse_a_segment(a: FakeHttpServer) -> None:
    refused(store(a.url + "/threads/{{ thread_id }}/messages"), "", a)


# --- values cannot reach the origin ---


@pytest.mark.parametrize("value", ["@127.0.0.1:{b}/x", ":{b}/x", "{b}/x", ".evil.example/x", "/x"])
def test_a_thread_id_right_after_the_authority_is_refused(a: FakeHttpServer, b: FakeHttpServer, value: str) -> None:
    # `url: http://127.0.0.1:A{{ thread_id }}` with `@127.0.0.1:B/x` went to B, with the token
    message = refused(store(a.url + "{{ thread_id }}"), value.format(b=port(b)), a, b)
    assert "origin" in message


def test_a_thread_id_after_an_env_origin_is_refused_and_the_env_value_redacted(a: FakeHttpServer, b: FakeHttpServer) -> None:
    # ${ENV} text counts as the author's: the thread id still lands in the origin
    secret_origin = a.url
    s = store("${HIST_URL}{{ thread_id }}", environ={"HIST_URL": secret_origin})
    message = refused(s, f"@127.0.0.1:{port(b)}/x", a, b)
    assert secret_origin not in message


def test_a_templated_routing_header_is_refused(a: FakeHttpServer, b: FakeHttpServer) -> None:
    s = store(a.url + "/threads/{{ thread_id }}", headers={"X-Forwarded-Host": "127.0.0.1:{{ thread_id }}"})
    assert "X-Forwarded-Host" in refused(s, str(port(b)), a, b)


def test_a_create_with_a_templated_user_in_the_origin_is_refused(a: FakeHttpServer, b: FakeHttpServer) -> None:
    s = store(a.url + "/threads/{{ thread_id }}", create="http://{{ user }}/threads/{{ thread_id }}")

    async def go() -> None:
        try:
            await s.create("t1", f"127.0.0.1:{port(b)}")
        finally:
            await s.close()

    with pytest.raises(PermanentHistoryError, match="history create: request not sent"):
        asyncio.run(go())
    assert a.hits == [] and b.hits == []


# --- ordinary and odd thread ids reach A, as one percent-encoded segment ---


@pytest.mark.parametrize(
    ("thread", "segment"),
    [
        ("t_4f9c2b1e-8d3a-4c5b-9e7f-0a1b2c3d4e5f", "t_4f9c2b1e-8d3a-4c5b-9e7f-0a1b2c3d4e5f"),
        ("my thread", "my%20thread"),
        ("café ☕", "caf%C3%A9%20%E2%98%95"),
        ("a?b#c", "a%3Fb%23c"),
        ("x@127.0.0.1:{b}/", "x%40127.0.0.1%3A{b}%2F"),
        ("...", "..."),
    ],
)
def test_a_thread_id_is_one_encoded_path_segment(a: FakeHttpServer, b: FakeHttpServer, thread: str, segment: str) -> None:
    thread, segment = thread.format(b=port(b)), segment.format(b=port(b))
    assert get(store(a.url + "/threads/{{ thread_id }}/messages?v=1"), thread) == []
    assert [h.target for h in a.hits] == [f"/threads/{segment}/messages?v=1"]
    assert a.hits[0].headers["authorization"] == f"Bearer {TOKEN}" and b.hits == []


def test_a_user_in_the_query_is_one_encoded_value(a: FakeHttpServer) -> None:
    s = store(a.url + "/threads/{{ thread_id }}", create=a.url + "/threads?id={{ thread_id }}&user={{ user }}")

    async def go() -> None:
        try:
            await s.create("t 1", "ann&admin=1#x")
        finally:
            await s.close()

    asyncio.run(go())
    assert [h.target for h in a.hits] == ["/threads?id=t%201&user=ann%26admin%3D1%23x"]
    assert a.hits[0].query == {"id": ["t 1"], "user": ["ann&admin=1#x"]}


# --- end to end: a REST client's thread_id ---


def test_a_rest_thread_id_cannot_move_the_history_call(tmp_path: Path, a: FakeHttpServer, b: FakeHttpServer) -> None:
    from netrun.serve.app import create_app
    from netrun.serve.settings import ServeSettings

    from .fakes.served import Served
    from .test_serve_local import wait_status

    history = """\
history:
  store: http
  http:
    create: {{method: PUT, url: "${{HIST_URL}}/threads/{{{{ thread_id }}}}", headers: {{Authorization: "Bearer ${{HISTORY_TOKEN}}"}}}}
    get: {{method: GET, url: "${{HIST_URL}}/threads/{{{{ thread_id }}}}/messages", headers: {{Authorization: "Bearer ${{HISTORY_TOKEN}}"}}}}
    append:
      url: "${{HIST_URL}}/threads/{{{{ thread_id }}}}/messages"
      headers: {{Authorization: "Bearer ${{HISTORY_TOKEN}}"}}
      body: {{messages: "{{{{ messages }}}}"}}
"""
    replies = [LLMReply(text="ok", tool_calls=[ToolCall("done", {})])]
    with FakeLLM(replies) as llm:
        write(tmp_path, llm, history=history.format())
        environ = {**{k: v for k, v in RUN_ENV.items() if not k.startswith("INNGEST_")}, **ENV, "HIST_URL": a.url}
        with Served(
            lambda p: create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=p))
        ) as server:
            failed = []
            for thread in ("../../admin", "%2e%2e", f"x/../../..//127.0.0.1:{port(b)}/"):
                started = httpx.post(f"{server.url}/networks/chat/runs", json={"input": "hi", "thread_id": thread}).json()
                failed.append(wait_status(server.url, started["run_id"], "failed"))
            sent = [h.target for h in a.hits]
            ok = httpx.post(f"{server.url}/networks/chat/runs", json={"input": "hi", "thread_id": "my thread ☕"}).json()
            wait_status(server.url, ok["run_id"], "completed")
    assert b.hits == []
    assert sent == []  # A saw none of the refused runs' calls either
    for run in failed:
        assert "request not sent" in run["error"] and TOKEN not in str(run) and a.url not in run["error"], run
    assert {h.target for h in a.hits} == {"/threads/my%20thread%20%E2%98%95", "/threads/my%20thread%20%E2%98%95/messages"}
