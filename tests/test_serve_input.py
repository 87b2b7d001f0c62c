"""`netrun serve` refuses bad input at the door, over real HTTP: text that is not valid
Unicode (lone surrogates), numbers JSON cannot write, bodies over the limit (with and
without a content-length) and initial state the network does not declare. Each refusal
names the field; nothing refused is stored, and what is stored reads back.

Bodies are sent as raw JSON text (``content=``) so that the escapes reach the server as a
client could send them.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings, SettingsError

from .fakes.served import Served

NETWORK = """\
name: gate
model: scripted/gate.replies
max_iter: 3
state:
  done: {type: boolean, default: false}
  color: {type: string, enum: [red, green]}
  count: integer
  note: string
  tags: {type: array, items: {type: string}}
agents:
  helper: {description: helps, system: "Help.", tools: [finish]}
router:
  rules: [{if: state.done, stop: true}, {if: "true", agent: helper}]
tools:
  finish:
    state: {done: true}
"""

REPLIES = "helper:\n  - {text: finished, tool_calls: [{name: finish, args: {}}]}\n"

LIMIT = 4000
"""NETRUN_MAX_BODY in these tests."""

JSON = {"content-type": "application/json"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "gate.yaml").write_text(NETWORK)
    (tmp_path / "gate.replies").write_text(REPLIES)  # not *.yaml: the server would load it as a network

    def make(port: int) -> Any:
        settings = ServeSettings.from_env(
            {**os.environ, "NETRUN_MAX_BODY": str(LIMIT)}, (tmp_path,), engine="local", data_dir=tmp_path / "data", port=port
        )
        app = create_app(settings)

        @app.get("/test-only/boom")  # an unexpected error in a route: what the handler answers
        async def boom() -> None:
            raise RuntimeError("a bug")

        return app

    with Served(make) as served:
        yield served


def stored_runs(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "data" / "runs.db") as db:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])


def wait_done(url: str, run_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{url}/runs/{run_id}")
        assert answer.status_code == 200, answer.text
        run: dict[str, Any] = answer.json()
        if run["status"] in ("completed", "failed"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/networks/gate/runs", rb'{"input": "\ud800"}', "body.input"),
        ("/networks/gate/runs", rb'{"thread_id": "a\ud800"}', "body.thread_id"),
        ("/networks/gate/runs", rb'{"user": "\udfff"}', "body.user"),
        ("/networks/gate/runs", rb'{"state": {"note": "\ud800"}}', "body.state.note"),
        ("/networks/gate/runs", rb'{"data": {"a": [1, {"b": "\ud800"}]}}', "body.data.a[1].b"),
        ("/networks/gate/runs", rb'{"data": {"\ud800": 1}}', "body.data"),
        ("/networks/gate/runs", rb'{"history": [{"role": "user", "content": "\ud83d"}]}', "body.history[0].content"),
        ("/networks/gate/runs", b'{"input": "\xed\xa0\x80"}', "body.input"),  # the surrogate UTF-8-encoded, not escaped
        ("/events", rb'{"name": "\ud800"}', "body.name"),
        ("/events", rb'{"name": "app/x", "data": {"k": ["\udc00"]}}', "body.data.k[0]"),
    ],
)
def test_text_that_is_not_unicode_is_a_422_naming_the_field(
    server: Served, tmp_path: Path, path: str, body: bytes, field: str
) -> None:
    answer = httpx.post(server.url + path, content=body, headers=JSON)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"{field}: "), answer.text
    assert answer.json()["errors"][0]["field"] == field
    assert stored_runs(tmp_path) == 0


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        (b'{"state": {"count": NaN}}', "body.state.count", "not a JSON number"),
        (b'{"data": {"x": 1e400}}', "body.data.x", "not a JSON number"),
        (b'{"data": {"x": -Infinity}}', "body.data.x", "not a JSON number"),
        (b'{"data": ' + b"[" * 70 + b"]" * 70 + b"}", "body.data" + "[0]" * 63, "nested deeper than 64 levels"),
        # Past Python's parser at its default recursion limit (some libraries raise the limit:
        # then the walk names the 65th level); either way a 422.
        (b'{"data": ' + b"[" * 1900 + b"]" * 1900 + b"}", "body*", "nested deeper"),
        (b'{"input": "x"', "body", "not valid JSON"),
        (b'{"input": "\xff"}', "body", "not UTF-8"),
    ],
)
def test_json_that_would_not_read_back_is_a_422(server: Served, tmp_path: Path, body: bytes, field: str, why: str) -> None:
    answer = httpx.post(f"{server.url}/networks/gate/runs", content=body, headers=JSON)
    assert answer.status_code == 422, answer.text
    named = answer.json()["errors"][0]["field"]
    assert (named.startswith(field[:-1]) if field.endswith("*") else named == field) and why in answer.json()["detail"], (
        answer.text
    )
    assert stored_runs(tmp_path) == 0


def test_valid_unicode_is_stored_and_reads_back(server: Served) -> None:
    """A surrogate pair is one character (an emoji), not a lone surrogate: accepted, and
    GET /runs/{id} gives it back."""
    body = rb'{"input": "hi \ud83d\ude00", "state": {"done": true, "note": "\ud83d\ude00 \u00e9"}, "data": {"k": "\u4e2d"}}'
    started = httpx.post(f"{server.url}/networks/gate/runs", content=body, headers=JSON)
    assert started.status_code == 202, started.text
    run = wait_done(server.url, started.json()["run_id"])
    assert run["status"] == "completed" and run["input"] == "hi \U0001f600"
    assert run["result"]["state"]["note"] == "\U0001f600 \u00e9"


def test_a_body_over_the_limit_is_a_413_before_it_is_read(server: Served, tmp_path: Path) -> None:
    big = b'{"input": "' + b"x" * (LIMIT + 10) + b'"}'
    declared = httpx.post(f"{server.url}/networks/gate/runs", content=big, headers=JSON)
    assert declared.status_code == 413, declared.text
    assert "NETRUN_MAX_BODY" in declared.json()["detail"] and str(LIMIT) in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no content-length: Transfer-Encoding: chunked
        yield b'{"input": "'
        for _ in range(LIMIT // 100 + 5):
            yield b"x" * 100
        yield b'"}'

    chunked = httpx.post(f"{server.url}/networks/gate/runs", content=chunks(), headers=JSON)
    assert chunked.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in chunked.request.headers
    assert chunked.status_code == 413, chunked.text
    huge = httpx.post(f"{server.url}/events", content=b'{"name": "a", "data": {"x": "' + b"y" * (20 << 20) + b'"}}', headers=JSON)
    assert huge.status_code == 413, huge.text
    assert stored_runs(tmp_path) == 0
    # At the limit it is a request like any other.
    fits = b'{"state": {"done": true}, "input": "' + b"x" * (LIMIT - 100) + b'"}'
    assert httpx.post(f"{server.url}/networks/gate/runs", content=fits, headers=JSON).status_code == 202


def test_api_inngest_has_its_own_larger_limit(server: Served) -> None:
    """Inngest's calls are sized by Inngest's limits, not the REST API's: a body over
    NETRUN_MAX_BODY reaches /api/inngest (not served here: 404), one over
    NETRUN_MAX_INNGEST_BODY does not."""
    over_rest = httpx.post(f"{server.url}/api/inngest", content=b"{" + b" " * (LIMIT * 2) + b"}", headers=JSON)
    assert over_rest.status_code == 404, over_rest.text
    over_inngest = httpx.post(f"{server.url}/api/inngest", content=b" " * ((16 << 20) + 1), headers=JSON)
    assert over_inngest.status_code == 413 and "NETRUN_MAX_INNGEST_BODY" in over_inngest.json()["detail"]


@pytest.mark.parametrize(
    ("state", "field", "why"),
    [
        ({"done": "maybe"}, "body.state.done", "expected boolean, got string"),
        ({"done": None}, "body.state.done", "expected boolean, got null (leave the field out for its default)"),
        ({"count": "5"}, "body.state.count", "expected integer, got string"),
        ({"color": "blue"}, "body.state.color", 'must be one of ["red", "green"]'),
        (
            {"colour": "red"},
            "body.state.colour",
            "not a declared state field; did you mean 'color'? defined state fields: color, count, done, note, tags",
        ),
        ({"tags": ["a", 2]}, "body.state.tags[1]", "expected string"),
    ],
)
def test_initial_state_must_fit_the_declared_state(
    server: Served, tmp_path: Path, state: dict[str, Any], field: str, why: str
) -> None:
    answer = httpx.post(f"{server.url}/networks/gate/runs", json={"input": "x", "state": state})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == f"{field}: {why}", answer.text
    assert stored_runs(tmp_path) == 0


def test_fitting_initial_state_starts_the_run(server: Served) -> None:
    started = httpx.post(
        f"{server.url}/networks/gate/runs", json={"input": "x", "state": {"count": 3, "color": "red", "tags": ["a"]}}
    )
    assert started.status_code == 202, started.text
    run = wait_done(server.url, started.json()["run_id"])
    assert run["status"] == "completed", run
    assert run["result"]["state"] == {"done": True, "color": "red", "count": 3, "note": None, "tags": ["a"]}
    assert run["result"]["route"] == ["helper"]  # done started false: the stop rule did not fire at once


def test_validation_errors_name_the_field_and_never_echo_the_value(server: Served) -> None:
    typo = httpx.post(f"{server.url}/networks/gate/runs", json={"inpt": "x"})
    assert typo.status_code == 422 and typo.json()["errors"][0]["field"] == "body.inpt", typo.text
    wrong = httpx.post(f"{server.url}/networks/gate/runs", content=b'{"input": ["secret-ish"]}', headers=JSON)
    assert wrong.status_code == 422 and wrong.json()["detail"].startswith("body.input: ") and "secret-ish" not in wrong.text
    # A body FastAPI does not parse as JSON (text/plain) still gets a JSON 422, not a 500.
    plain = httpx.post(f"{server.url}/networks/gate/runs", content=b'"\xc3\xa9"', headers={"content-type": "text/plain"})
    assert plain.status_code == 422, plain.text


def test_an_unexpected_error_is_a_json_500_with_a_short_reason(server: Served) -> None:
    answer = httpx.get(f"{server.url}/test-only/boom")
    assert answer.status_code == 500
    assert answer.json() == {"detail": "internal error (RuntimeError); the server log has the details"}


@pytest.mark.parametrize("value", ["0", "-1", "1M", "lots"])
def test_max_body_must_be_a_number_of_bytes(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="NETRUN_MAX_BODY must be a number of bytes above 0"):
        ServeSettings.from_env({"NETRUN_MAX_BODY": value}, (tmp_path,), engine="local")
    assert ServeSettings.from_env({}, (tmp_path,), engine="local").max_body == 1 << 20


def test_model_text_that_is_not_unicode_still_reads_back(tmp_path: Path) -> None:
    """A model's reply may carry half a surrogate pair (a ``\\ud83d`` escape cut off in its
    JSON): what the run stores from it must read back, with U+FFFD in place of the half,
    from GET /runs/{id} and its event stream alike."""
    (tmp_path / "gate.yaml").write_text(NETWORK)
    (tmp_path / "gate.replies").write_text('helper:\n  - {text: "half \\ud83d pair", tool_calls: [{name: finish, args: {}}]}\n')
    settings = ServeSettings.from_env(dict(os.environ), (tmp_path,), engine="local", data_dir=tmp_path / "data", port=0)
    with Served(lambda port: create_app(settings)) as served:
        started = httpx.post(f"{served.url}/networks/gate/runs", json={"input": "hi"})
        run = wait_done(served.url, started.json()["run_id"])
        assert run["status"] == "completed", run
        answer = httpx.get(f"{served.url}/runs/{started.json()['run_id']}")
        assert answer.status_code == 200 and "half \ufffd pair" in answer.text
        events = httpx.get(f"{served.url}/runs/{started.json()['run_id']}/events", timeout=30)
        assert events.status_code == 200 and "run.completed" in events.text
