"""``netrun serve``'s log (issue 17, logs): ``--log-format json|text`` and ``--log-level``,
timestamps, one line when a run starts, waits, resumes and ends (id, network, status,
duration, tokens), uvicorn's access log only with ``--access-log``.

Real parts: ``netrun serve`` as a process, the fake OpenAI-compatible model, the REST API.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .conftest import NETRUN, until
from .fakes.llm_server import FakeLLM
from .fakes.server_thread import free_port
from .test_serve_local import ASK, ENV, FINISH, _await_up, write_network


def _serve(folder: Path, port: int, *flags: str, **env: str) -> Any:
    import subprocess

    proc = subprocess.Popen(
        [NETRUN, "serve", str(folder), "--port", str(port), "--data-dir", str(folder / "data"), "--no-watch", *flags],
        env={**os.environ, **ENV, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _await_up(f"http://127.0.0.1:{port}", proc)
    return proc


def _stop(proc: Any) -> str:
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return str(err)


def _a_run_that_waits_then_ends(url: str) -> dict[str, Any]:
    """The run (as GET /runs/{id} shows it) of a network that waits for a human, then ends."""
    run_id = httpx.post(f"{url}/networks/helper/runs", json={"input": "q", "data": {"user": "ann"}}).json()["run_id"]
    until("the run waits", lambda: httpx.get(f"{url}/runs/{run_id}").json()["status"] == "waiting")
    httpx.post(f"{url}/events", json={"name": "app/human.answered", "data": {"user": "ann", "answer": "blue"}})
    until("the run ends", lambda: httpx.get(f"{url}/runs/{run_id}").json()["status"] == "completed")
    return dict(httpx.get(f"{url}/runs/{run_id}").json())


def test_json_logs_say_when_a_run_starts_waits_resumes_and_ends(tmp_path: Path) -> None:
    with FakeLLM([ASK, FINISH]) as llm:
        write_network(tmp_path, llm)
        port = free_port()
        proc = _serve(tmp_path, port, "--log-format", "json")
        try:
            run = _a_run_that_waits_then_ends(f"http://127.0.0.1:{port}")
        finally:
            err = _stop(proc)
    run_id = run["run_id"]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert len(lines) == len([line for line in err.splitlines() if line.strip()]), err  # every line is JSON
    mine = [entry for entry in lines if entry.get("run_id") == run_id]
    assert [e["event"] for e in mine] == ["run.started", "run.waiting", "run.resumed", "run.ended"], mine
    for entry in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"]) and entry["level"] and entry["logger"]
    started, waiting, _, ended = mine
    assert started["network"] == "helper" and started["logger"] == "netrun.runs"
    assert waiting["waits_for"] == "app/human.answered"
    assert ended["status"] == "completed" and ended["network"] == "helper"
    assert isinstance(ended["duration_ms"], int) and ended["duration_ms"] >= 0
    assert ended["tokens"] == run["result"]["usage"]["tokens"] > 0
    assert not any("GET /runs" in e["message"] for e in lines)  # no access log unless asked


def test_text_logs_have_timestamps_fields_and_the_access_log_when_asked(tmp_path: Path, netrun_cli: Callable[..., Any]) -> None:
    with FakeLLM([ASK, FINISH]) as llm:
        write_network(tmp_path, llm)
        port = free_port()
        proc = _serve(tmp_path, port, "--access-log", NETRUN_LOG_LEVEL="info")
        try:
            run_id = _a_run_that_waits_then_ends(f"http://127.0.0.1:{port}")["run_id"]
        finally:
            err = _stop(proc)
    ended = [line for line in err.splitlines() if f"run {run_id} completed" in line]
    assert len(ended) == 1, err
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO netrun\.runs: ", ended[0]), ended
    assert f"run_id={run_id}" in ended[0] and "status=completed" in ended[0] and "duration_ms=" in ended[0]
    assert any(f'"GET /runs/{run_id} HTTP/1.1" 200' in line for line in err.splitlines()), err  # the access log
    assert netrun_cli("serve", str(tmp_path), "--log-format", "yaml").exit_code == 2  # a usage error


def test_a_failed_run_logs_at_warning_once_with_its_error_and_a_second_start_report_is_dropped(
    caplog: Any,
) -> None:
    """The run lines from the events alone: a start reported again (each Inngest call of a run
    reports it) logs once; a failure logs at WARNING with its error; replayed events log nothing;
    a run this process did not see start takes its duration from ``started_at``."""
    import logging
    import time

    from netrun.serve.run_log import RunLog

    log = RunLog(started_at=lambda run_id: time.time() - 2.0 if run_id == "r2" else None)
    caplog.set_level(logging.INFO, logger="netrun.runs")
    start = {"run_id": "r1", "network": "n", "input": "", "definition_hash": "h", "thread_id": None, "user": None}
    log.observe("run.started", {**start, "replayed": False})
    log.observe("run.started", {**start, "replayed": False})
    log.observe("routed", {"run_id": "r1", "iteration": 0, "agent": "a", "how": "rule", "replayed": True})
    log.observe("run.failed", {"run_id": "r1", "error": "model down", "replayed": False})
    log.observe("run.completed", {"run_id": "r2", "result": {"usage": {"tokens": 7}}, "replayed": False})
    records = [(r.levelname, r.getMessage(), r.netrun) for r in caplog.records if r.name == "netrun.runs"]
    assert [(level, message) for level, message, _ in records] == [
        ("INFO", "run r1 of n started"),
        ("WARNING", "run r1 failed: model down"),
        ("INFO", "run r2 completed"),
    ]
    assert records[1][2]["status"] == "failed" and records[1][2]["error"] == "model down"
    assert records[2][2]["tokens"] == 7 and records[2][2]["duration_ms"] >= 2000
