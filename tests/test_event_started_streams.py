"""Runs started by events stream like the ones ``POST /networks/{name}/runs`` starts: a run
``POST /events`` starts on the local engine, and one an Inngest trigger starts (the stand-in
executor), followed live on ``GET /runs/{id}/events`` from a waiting point to their end."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from netrun.serve.app import create_app

from .conftest import until
from .fakes.inngest_executor import StandInExecutor
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served
from .test_serve_inngest import HELPDESK, serve
from .test_serve_local import ASK, FINISH, settings, wait_status, write_network


class Follower:
    """A subscriber reading a run's stream in a thread until the stream ends."""

    def __init__(self, url: str) -> None:
        self.text = ""
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        with httpx.stream("GET", url, timeout=30) as answer:
            assert answer.status_code == 200
            self.opened.set()
            for piece in answer.iter_text():
                self.text += piece

    def ended(self, timeout: float = 30) -> str:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the stream did not end: {self.text[-500:]}"
        return self.text


def test_a_run_post_events_starts_streams_live_to_its_end(tmp_path: Path) -> None:
    with FakeLLM([ASK, FINISH]) as llm:
        write_network(tmp_path, llm)
        with Served(lambda port: create_app(settings(tmp_path, port))) as server:
            answer = httpx.post(
                f"{server.url}/events", json={"name": "app/helper.asked", "data": {"question": "which?", "user": "ann"}}
            )
            assert answer.status_code == 202, answer.text
            (run_id,) = answer.json()["started"]
            wait_status(server.url, run_id, "waiting")
            follower = Follower(f"{server.url}/runs/{run_id}/events")
            assert follower.opened.wait(10)
            until("the journaled start", lambda: "run.started" in follower.text)
            assert "run.completed" not in follower.text
            httpx.post(f"{server.url}/events", json={"name": "app/human.answered", "data": {"user": "ann", "answer": "blue"}})
            text = follower.ended()
            assert text.count("run.started") >= 1 and "run.completed" in text
            assert "All done." in text  # the model's text after the wait streamed live
            assert wait_status(server.url, run_id, "completed")["result"]["state"]["answer"] == "42"


def test_a_run_an_inngest_trigger_starts_streams_live_to_its_end(tmp_path: Path) -> None:
    script = [
        Reply(text="asking", tool_calls=[ToolCall("ask_human", {"question": "which order?"})]),
        Reply(text="closing now", tool_calls=[ToolCall("finish", {})]),
    ]
    with StandInExecutor() as executor, FakeLLM(script) as llm:
        (tmp_path / "helpdesk.yaml").write_text(HELPDESK.format(base=llm.base_url))
        server = serve(tmp_path, executor)
        try:
            executor.sync(f"{server.url}/api/inngest")
            (run_id,) = executor.send({"name": "app/ticket.created", "data": {"tier": "pro", "title": "T", "user": "ann"}})
            assert httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "waiting"
            follower = Follower(f"{server.url}/runs/{run_id}/events")
            assert follower.opened.wait(10)
            until("the journaled start", lambda: "run.started" in follower.text)
            executor.send({"name": "app/human.answered", "data": {"user": "ann", "answer": "order 7"}})
            assert executor.runs[run_id].status == "completed", executor.runs[run_id].error
            text = follower.ended()
            assert "run.completed" in text and "closing now" in text
        finally:
            server.stop()
