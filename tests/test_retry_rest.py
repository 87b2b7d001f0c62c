"""`POST /runs/{id}/retry`: a failed run runs again once its cause is fixed; its completed
steps (an inference, a human's answer) are kept, the failed inference is made again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from netrun.serve.app import create_app

from .fakes.llm_server import FakeLLM, Reply
from .fakes.served import Served
from .test_serve_local import ASK, FINISH, settings, wait_status, write_network


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[], Served]]:
    started: list[Served] = []

    def serve() -> Served:
        server = Served(lambda port: create_app(settings(tmp_path, port))).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


def wait_final(url: str, run_id: str) -> dict[str, object]:
    """The run once it has ended (wait_status asserts it does not fail)."""
    import time

    deadline = time.monotonic() + 30
    while True:
        run = httpx.get(f"{url}/runs/{run_id}").json()
        if run["status"] in ("completed", "failed"):
            return run  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_retry_runs_the_failed_step_again_and_keeps_the_others(tmp_path: Path, served: Callable[[], Served]) -> None:
    refused = Reply(status=401, error="invalid api key")  # no retry fixes it: the run fails
    with FakeLLM([ASK, refused]) as llm:
        write_network(tmp_path, llm)
        server = served()
        run_id = httpx.post(f"{server.url}/networks/helper/runs", json={"input": "q", "data": {"user": "ann"}}).json()["run_id"]
        wait_status(server.url, run_id, "waiting")
        assert httpx.post(f"{server.url}/runs/{run_id}/retry", timeout=30).status_code == 409  # waiting: nothing to retry
        httpx.post(f"{server.url}/events", json={"name": "app/human.answered", "data": {"user": "ann", "answer": "blue"}})
        failed = wait_final(server.url, run_id)
        assert failed["status"] == "failed", failed
        assert llm.count == 2
        llm.push(FINISH)  # the cause is fixed
        answer = httpx.post(f"{server.url}/runs/{run_id}/retry", timeout=30)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"run_id": run_id, "status": "running", "network": "helper"}
        run = wait_status(server.url, run_id, "completed")
        assert run["error"] is None
        assert run["result"]["state"]["answer"] == "42"
        assert run["result"]["results"][0]["tool_calls"][0]["result"]["answer"] == "blue"  # the human's answer, kept
        assert llm.count == 3  # the first inference was not made again; the failed one was
        again = httpx.post(f"{server.url}/runs/{run_id}/retry")
        assert again.status_code == 409
        assert "is completed, not failed" in again.json()["detail"]
        assert httpx.post(f"{server.url}/runs/run_nope/retry").status_code == 404
