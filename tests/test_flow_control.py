"""Flow control on the embedded local engine, with Inngest's meanings, over real HTTP:
``function.singleton`` (one run per key: ``skip`` the newcomer or ``cancel`` the holder),
``function.cancel`` (an event ends the runs it matches) and ``POST /runs/{id}/cancel``.

The model is the fake OpenAI-compatible server reached through litellm; a run that asks a
human waits, so that it is unfinished while the next one starts.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings

from . import test_serve_local as serve_local
from .conftest import until
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served

# The network of tests/test_serve_local.py, with the flow control each test declares.
NETWORK = serve_local.NETWORK.replace("function: {{concurrency: [{{limit: 1, key: event.data.user}}]}}", "function: {function}")
assert "function: {function}" in NETWORK
ENV, ASK, FINISH = serve_local.ENV, serve_local.ASK, serve_local.FINISH


def _answer(body: dict[str, Any]) -> Reply:
    """Ask the human first; finish once the conversation has the answer."""
    return FINISH if len(body["messages"]) > 2 else ASK


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM([], fallback=_answer) as fake:
        yield fake


@pytest.fixture
def serve(tmp_path: Path, llm: FakeLLM) -> Iterator[Callable[[str], Served]]:
    started: list[Served] = []

    def start(function: str) -> Served:
        (tmp_path / "helper.yaml").write_text(NETWORK.format(base=llm.base_url, function=function, prompt="Help with"))
        settings = ServeSettings.from_env({**os.environ, **ENV}, (tmp_path,), engine="local", data_dir=tmp_path / "data", port=0)
        server = Served(lambda port: create_app(settings)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _start(url: str, user: str) -> httpx.Response:
    return httpx.post(f"{url}/networks/helper/runs", json={"input": f"q {user}", "data": {"user": user}})


def _status(url: str, run_id: str, *want: str, timeout: float = 30) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        run = httpx.get(f"{url}/runs/{run_id}").json()
        if run["status"] in want:
            return run  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"run {run_id} is {run['status']}, not {want}"
        time.sleep(0.05)


def test_singleton_skip_refuses_a_second_run_per_key_until_the_first_ends(serve: Callable[[str], Served]) -> None:
    url = serve("{singleton: {mode: skip, key: event.data.user}}").url
    first = _start(url, "ann")
    assert first.status_code == 202
    ann = first.json()["run_id"]
    _status(url, ann, "waiting")  # unfinished: it waits for a human
    skipped = _start(url, "ann")
    assert skipped.status_code == 409
    assert skipped.json()["status"] == "skipped" and skipped.json()["run_id"] == ann
    assert "function.singleton, mode skip" in skipped.json()["detail"]
    by_event = httpx.post(f"{url}/events", json={"name": "app/helper.asked", "data": {"user": "ann", "question": "again"}}).json()
    assert by_event["started"] == [] and by_event["skipped"] == [{"network": "helper", "running": ann}]
    bob = _start(url, "bob")  # another key: its own run
    assert bob.status_code == 202
    httpx.post(f"{url}/events", json={"name": "app/human.answered", "data": {"user": "ann", "text": "this one"}})
    _status(url, ann, "completed")
    assert _start(url, "ann").status_code == 202  # the holder ended: a new run starts


def test_singleton_cancel_ends_the_holder_and_starts_the_newcomer(serve: Callable[[str], Served]) -> None:
    url = serve("{singleton: {mode: cancel, key: event.data.user}}").url
    old = _start(url, "ann").json()["run_id"]
    _status(url, old, "waiting")
    new = _start(url, "ann")
    assert new.status_code == 202
    ended = _status(url, old, "cancelled")
    assert "function.singleton, mode cancel" in ended["error"]
    _status(url, new.json()["run_id"], "waiting")
    # The cancelled run's wait is gone: the answer resumes only the new run.
    answered = httpx.post(f"{url}/events", json={"name": "app/human.answered", "data": {"user": "ann", "text": "ok"}}).json()
    assert answered["resumed"] == [new.json()["run_id"]]
    events = httpx.get(f"{url}/runs/{old}/events", timeout=30).text
    assert "event: run.interrupted" in events


def test_a_cancel_event_ends_only_the_runs_its_if_matches(serve: Callable[[str], Served]) -> None:
    url = serve("{cancel: [{event: app/helper.cancelled, if: async.data.user == event.data.user, timeout: 1h}]}").url
    ann, bob = (_start(url, user).json()["run_id"] for user in ("ann", "bob"))
    _status(url, ann, "waiting")
    _status(url, bob, "waiting")
    sent = httpx.post(f"{url}/events", json={"name": "app/helper.cancelled", "data": {"user": "ann"}}).json()
    assert sent["cancelled"] == [ann]
    assert "app/helper.cancelled (function.cancel)" in _status(url, ann, "cancelled")["error"]
    assert httpx.get(f"{url}/runs/{bob}").json()["status"] == "waiting"
    nothing = httpx.post(f"{url}/events", json={"name": "app/helper.cancelled", "data": {"user": "carl"}}).json()
    assert "cancelled" not in nothing


def test_a_cancel_listens_only_for_its_timeout_after_the_run_starts(serve: Callable[[str], Served]) -> None:
    """``cancel[].timeout``: after that long from a run's start, the event no longer cancels it."""
    url = serve("{cancel: [{event: app/helper.cancelled, timeout: 1s}]}").url
    old = _start(url, "ann").json()["run_id"]
    _status(url, old, "waiting")
    created_before = time.time()  # the run was created before this
    until("the cancel's 1 s to pass for the first run", lambda: time.time() - created_before > 1.2, timeout=10)
    young = _start(url, "bob").json()["run_id"]
    _status(url, young, "waiting")
    sent = httpx.post(f"{url}/events", json={"name": "app/helper.cancelled", "data": {}}).json()
    assert sent["cancelled"] == [young]
    assert httpx.get(f"{url}/runs/{old}").json()["status"] == "waiting"


def test_cancel_over_rest_lets_the_step_in_flight_finish_and_starts_no_other(
    serve: Callable[[str], Served], llm: FakeLLM
) -> None:
    llm.set_script([Reply(text="thinking", tool_calls=[ToolCall("ask_human", {"question": "?"})], delay=1.0)])
    url = serve("{retries: 0}").url
    run_id = _start(url, "ann").json()["run_id"]
    llm.wait_for(1, timeout=30)  # the inference is in flight
    cancelled = httpx.post(f"{url}/runs/{run_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.json() == {"run_id": run_id, "status": "cancelled", "network": "helper"}
    run = httpx.get(f"{url}/runs/{run_id}").json()
    assert run["status"] == "cancelled" and run["error"] == "cancelled through the REST API"
    again = httpx.post(f"{url}/runs/{run_id}/cancel")
    assert again.status_code == 409 and "is cancelled" in again.json()["detail"]
    assert httpx.post(f"{url}/runs/nope/cancel").status_code == 404
    # The inference in flight finishes; its tool call (a wait) is never made.
    answered = httpx.post(f"{url}/events", json={"name": "app/human.answered", "data": {"user": "ann", "text": "late"}}).json()
    assert answered["resumed"] == []
    assert llm.count == 1
    assert httpx.get(f"{url}/runs/{run_id}").json()["status"] == "cancelled"


KID = """\
name: kid
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
agents:
  kid: {{description: works, system: "Work on {{{{ input }}}}", tools: [note]}}
router:
  rules: [{{if: "call_count >= 2", stop: true}}, {{if: "true", agent: kid}}]
state:
  notes: {{type: string}}
tools:
  note: {{description: notes, parameters: {{text: {{type: string}}}}, state: {{notes: "{{{{ args.text }}}}"}}}}
"""
BOSS = """\
name: boss
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
agents:
  boss: {{description: delegates, system: "Do {{{{ input }}}}", tools: [kid]}}
router:
  rules: [{{if: "call_count >= 1", stop: true}}, {{if: "true", agent: boss}}]
tools:
  kid: {{description: delegates, parameters: {{input: {{type: string}}}}, network: kid}}
"""


def test_cancelling_a_run_ends_the_child_run_its_tool_started(tmp_path: Path, llm: FakeLLM) -> None:
    """``POST /runs/{id}/cancel`` on a parent whose network tool is running a child: both end
    as cancelled; the child's inference in flight finishes and no step of either follows."""
    llm.set_script(
        [
            Reply(text="delegating", tool_calls=[ToolCall("kid", {"input": "x"})]),
            Reply(text="working", tool_calls=[ToolCall("note", {"text": "a"})], delay=1.0),
        ]
    )
    (tmp_path / "kid.yaml").write_text(KID.format(base=llm.base_url))
    (tmp_path / "boss.yaml").write_text(BOSS.format(base=llm.base_url))
    settings = ServeSettings.from_env({**os.environ, **ENV}, (tmp_path,), engine="local", data_dir=tmp_path / "data", port=0)
    with Served(lambda port: create_app(settings)) as server:
        parent = httpx.post(f"{server.url}/networks/boss/runs", json={"input": "x"}).json()["run_id"]
        llm.wait_for(2, timeout=30)  # the child's first inference is in flight
        child = f"{parent}.turn.0.boss.tool.0.kid"
        assert httpx.get(f"{server.url}/runs/{child}").json()["status"] == "running"
        cancelled = httpx.post(f"{server.url}/runs/{parent}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        for run_id in (parent, child):
            until(
                f"run {run_id} to be cancelled",
                lambda run_id=run_id: httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "cancelled",
            )

        # The child's inference in flight ends and is journaled; then no step of either run follows.
        def journal(sql: str) -> list[Any]:
            with contextlib.closing(sqlite3.connect(tmp_path / "data" / "runs.db", timeout=10)) as db:
                return db.execute(sql, (child,)).fetchall()

        until("the child's inference in flight to be journaled", lambda: journal("SELECT 1 FROM steps WHERE run_id = ?"))
        until("the child to stop executing", lambda: not journal("SELECT 1 FROM leases WHERE run_id = ?"))
        assert [step for (step,) in journal("SELECT step_id FROM steps WHERE run_id = ?")] == ["turn.0.kid.infer"]
        assert llm.count == 2
