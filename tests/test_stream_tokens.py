"""Stream tokens: a browser's EventSource opens one stream with ``?token=`` instead of the
API token (``POST /streams/token``, :mod:`netrun.serve.stream_tokens`), over a real uvicorn."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.serve.app import create_app
from netrun.serve.stream_tokens import MAX_TTL, derive, issue, stream_secret, verify

from .conftest import until
from .fakes.llm_server import FakeLLM
from .fakes.served import Served
from .fakes.server_thread import free_port
from .test_serve_local import ENV, FINISH, settings, write_network

SECRET = b"s" * 32
API_TOKEN = "api-token-" + "x" * 20


def test_a_token_opens_only_its_own_stream_until_it_expires() -> None:
    token = issue(SECRET, scope="run", key="run-1", ttl=60)
    assert verify(SECRET, token, scope="run", key="run-1")
    assert not verify(SECRET, token, scope="run", key="run-2")  # another run
    assert not verify(SECRET, token, scope="thread", key="run-1")  # another kind of stream
    assert not verify(b"t" * 32, token, scope="run", key="run-1")  # another server's secret
    assert not verify(SECRET, token, scope="run", key="run-1", now=time.time() + 61)  # expired
    assert verify(SECRET, token, scope="run", key="run-1", now=time.time() + 59)


def test_a_token_cannot_be_widened_or_forged() -> None:
    token = issue(SECRET, scope="user", key="ann", ttl=60)
    payload, _, signature = token.partition(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for changed in ([fields[0], "user", "bob", fields[3]], [fields[0], "user", "ann", fields[3] + 10_000]):
        forged = base64.urlsafe_b64encode(json.dumps(changed, separators=(",", ":")).encode()).rstrip(b"=").decode()
        assert not verify(SECRET, f"{forged}.{signature}", scope="user", key=changed[2])
    for junk in ("", ".", "abc", token + "x", "é" * 10, "a" * 5000, f"{payload}."):
        assert not verify(SECRET, junk, scope="user", key="ann")


def test_issue_refuses_what_no_stream_is_and_caps_the_ttl() -> None:
    with pytest.raises(ValueError, match="scope must be one of run, thread, user"):
        issue(SECRET, scope="all", key="x", ttl=60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key must be"):
        issue(SECRET, scope="run", key="", ttl=60)
    with pytest.raises(ValueError, match="ttl"):
        issue(SECRET, scope="run", key="x", ttl=0)
    token = issue(SECRET, scope="run", key="x", ttl=10 * MAX_TTL)
    assert not verify(SECRET, token, scope="run", key="x", now=time.time() + MAX_TTL + 1)


def test_the_secret_is_derived_and_never_the_api_token() -> None:
    derived = stream_secret(API_TOKEN, None)
    assert derived == derive(API_TOKEN) and len(derived) == 32
    assert API_TOKEN.encode() not in derived
    assert stream_secret(API_TOKEN, "configured") != derived  # NETRUN_STREAM_SECRET wins
    assert stream_secret(None, "configured") == stream_secret("other", "configured")
    assert stream_secret(None, None) is None


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    """A server behind NETRUN_API_TOKEN with one completed run (its events journaled)."""
    folder = tmp_path_factory.mktemp("tokens")
    with FakeLLM([FINISH]) as llm:
        write_network(folder, llm)
        with Served(lambda port: create_app(settings(folder, port, NETRUN_API_TOKEN=API_TOKEN))) as server:
            auth = {"Authorization": f"Bearer {API_TOKEN}"}
            run_id = httpx.post(
                f"{server.url}/networks/helper/runs", json={"input": "q", "data": {"user": "ann"}}, headers=auth
            ).json()["run_id"]
            until(
                "the run to complete",
                lambda: httpx.get(f"{server.url}/runs/{run_id}", headers=auth).json()["status"] == "completed",
            )
            yield server, run_id


def _token(server: Served, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/streams/token", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"})


def test_the_token_route_is_behind_the_api_token_and_validates(guarded: tuple[Served, str]) -> None:
    server, run_id = guarded
    assert httpx.post(f"{server.url}/streams/token", json={"scope": "run", "key": run_id}).status_code == 401
    answer = _token(server, scope="run", key=run_id)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["scope"] == "run" and got["key"] == run_id and got["expires"].endswith("Z")
    assert API_TOKEN not in got["token"]
    bad = _token(server, scope="everything", key=run_id)
    assert bad.status_code == 422 and "body.scope" in bad.json()["detail"], bad.text
    assert _token(server, scope="run", key="").status_code == 422
    assert _token(server, scope="run", key=run_id, ttl=-1).status_code == 422
    capped = _token(server, scope="run", key=run_id, ttl=10**9).json()
    expires = time.mktime(time.strptime(capped["expires"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert expires <= time.time() + MAX_TTL + 2


def _events(server: Served, run_id: str, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    """The answer's status and headers, and the body only when it is not a stream (the
    stream's content is another module's: here only whether it opens)."""
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", params=params, headers=headers, timeout=10) as answer:
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            return answer
        answer.read()
        return answer


def test_a_stream_token_opens_that_run_stream_and_no_other(guarded: tuple[Served, str]) -> None:
    server, run_id = guarded
    token = _token(server, scope="run", key=run_id).json()["token"]
    opened = _events(server, run_id, token=token)
    assert opened.status_code == 200
    assert opened.headers["content-type"].startswith("text/event-stream")
    assert _events(server, run_id).status_code == 401  # no token at all
    refused = _events(server, "another-run", token=token)
    assert refused.status_code == 401 and "not valid for this stream" in refused.json()["detail"]
    thread_token = _token(server, scope="thread", key=run_id).json()["token"]
    assert _events(server, run_id, token=thread_token).status_code == 401  # a thread token for a run stream
    other_secret = issue(b"z" * 32, scope="run", key=run_id, ttl=60)
    assert _events(server, run_id, token=other_secret).status_code == 401
    expired = issue(server.app.state.netrun.stream_secret, scope="run", key=run_id, ttl=0.001)
    until("the token to expire", lambda: not verify(server.app.state.netrun.stream_secret, expired, scope="run", key=run_id))
    assert _events(server, run_id, token=expired).status_code == 401
    # the bearer token still opens it, and a stream token opens nothing else
    assert _events(server, run_id, headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 200
    assert httpx.get(f"{server.url}/runs/{run_id}", params={"token": token}).status_code == 401


def test_without_an_api_token_streams_need_none(tmp_path: Path) -> None:
    with FakeLLM([FINISH]) as llm:
        write_network(tmp_path, llm)
        with Served(lambda port: create_app(settings(tmp_path, port))) as server:
            run_id = httpx.post(f"{server.url}/networks/helper/runs", json={"input": "q", "data": {"user": "ann"}}).json()[
                "run_id"
            ]
            until("the run to complete", lambda: httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "completed")
            assert _events(server, run_id).status_code == 200
            assert _token(server, scope="run", key=run_id).status_code == 200  # answers all the same


ACCESS_LOGGED = """
import sys, uvicorn
from pathlib import Path
from netrun.asgi import asgi_app
app = asgi_app([Path(sys.argv[1])], data_dir=Path(sys.argv[1]) / "data", api_token=sys.argv[3])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="info", access_log=True)
"""


def test_the_access_log_never_prints_a_stream_token(tmp_path: Path) -> None:
    """uvicorn's access log prints query strings; at any log level a token is blanked."""
    with FakeLLM([FINISH]) as llm:
        write_network(tmp_path, llm)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-c", ACCESS_LOGGED, str(tmp_path), str(port), API_TOKEN],
            env={**os.environ, **ENV},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"

            def up() -> bool:
                try:
                    return httpx.get(f"{url}/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            until("the server to listen", up)
            token = httpx.post(
                f"{url}/streams/token", json={"scope": "run", "key": "r1"}, headers={"Authorization": f"Bearer {API_TOKEN}"}
            ).json()["token"]
            assert httpx.get(f"{url}/runs/r1/events", params={"token": token}).status_code == 404  # no such run, but let in
        finally:
            proc.terminate()
            output, _ = proc.communicate(timeout=20)
    assert "/runs/r1/events?token=[hidden]" in output, output
    assert token not in output and API_TOKEN not in output


def _opens(server: Served, path: str, token: str) -> int:
    """The status a stream answers with (the thread and user streams stay open: not read)."""
    with httpx.stream("GET", f"{server.url}{path}", params={"token": token}, timeout=10) as answer:
        return answer.status_code


def test_thread_and_user_tokens_open_their_own_streams_only(guarded: tuple[Served, str]) -> None:
    server, run_id = guarded
    thread = _token(server, scope="thread", key="t-1").json()["token"]
    user = _token(server, scope="user", key="ann").json()["token"]
    assert _opens(server, "/threads/t-1/events", thread) == 200
    assert _opens(server, "/threads/t-2/events", thread) == 401
    assert _opens(server, "/users/ann/events", user) == 200
    assert _opens(server, "/users/bob/events", user) == 401
    assert _opens(server, "/users/ann/events", thread) == 401  # a thread's token for a user's stream
    assert _opens(server, f"/runs/{run_id}/events", user) == 401


def test_the_log_filter_hides_percent_encoded_tokens_and_websocket_request_lines() -> None:
    """Regression: ``?tok%65n=`` (which the server decodes to ``token``) slipped past, and
    uvicorn logs each WebSocket's request line on ``uvicorn.error``, which had no filter."""
    import logging

    from netrun.serve.stream_tokens import hide_tokens_in_access_log

    hide_tokens_in_access_log()
    lines = [
        ('%s - "WebSocket %s" [accepted]', "/v1/realtime/connect?token=SECRET1&x=1"),
        ('%s - "GET %s HTTP/1.1" 200', "/users/u/events?tok%65n=SECRET2"),
        ('%s - "GET %s HTTP/1.1" 200', "/users/u/events?a=1&TOKEN=SECRET3"),
    ]
    seen = []
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for msg, path in lines:
            record = logger.makeRecord(name, logging.INFO, __file__, 1, msg, ("127.0.0.1:5", path), None)
            assert logger.filter(record)  # the logger's filters, as logging applies them
            seen.append(record.getMessage())
    assert len(seen) == 6 and not any("SECRET" in line for line in seen), seen
    assert "SECRET1" not in seen[0] and "&x=1" in seen[0]  # (another filter may word the blank its way)
