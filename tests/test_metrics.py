"""``GET /metrics`` (netrun/serve/metrics.py) on a real ``netrun serve``: runs with tool calls,
a failing command, an approval and a tool the model invents, on the fake model through the
direct client, on the local engine and on Inngest (the stand-in executor replays every step
on every call); the text is parsed with prometheus_client's own parser.

What is asserted is what an operator reads: runs by network and status, tokens and cost
equal to the run's usage, each tool call once however often it is replayed, an approval
waiting 1 then 0, the token, and no label a model can make up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from netrun.engines.local import Journal
from netrun.observe import Span
from netrun.serve.metrics import LABEL_VALUES, OTHER, Metrics
from netrun.serve.run_events import RunEvents
from netrun.serve.settings import ServeSettings, SettingsError

from .conftest import REPO, until
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served
from .test_serve_inngest import synced

METERED = """\
name: metered
model: {{id: openai/gpt-4o-mini, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 6
state:
  count: {{type: integer, default: 0}}
  refunded: {{type: boolean, default: false}}
  done: {{type: boolean, default: false}}
agents:
  worker: {{description: works, system: "Work on {{{{ input }}}}", tools: [bump, fails, refund, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: worker}}]
tools:
  bump: {{parameters: {{note: {{type: string}}}}, state: {{count: "{{{{ state.count + 1 }}}}"}}}}
  fails: {{command: {{argv: [/bin/sh, -c, "exit 2"]}}}}
  refund: {{approval: required, state: {{refunded: true}}}}
  finish: {{state: {{done: true}}}}
"""

MODEL = "openai/gpt-4o-mini"
TOKEN = "metrics-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORK = Reply(
    text="working",
    tool_calls=[
        ToolCall("bump", {"note": "a"}),
        ToolCall("bump", {"note": "b"}),
        ToolCall("fails", {}),
        ToolCall("drop_every_table", {}),  # not offered: refused, and never a label
    ],
)
REFUND = Reply(text="refunding", tool_calls=[ToolCall("refund", {})])
FINISH = Reply(text="done", tool_calls=[ToolCall("finish", {})])

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, **kw: Any) -> Samples:
    """Every sample of ``GET /metrics``: (name, labels) -> value."""
    answer = httpx.get(f"{url}/metrics", **kw)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value (0 when absent), summed over the labels not given."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def label_values(samples: Samples, label: str) -> set[str]:
    return {v for (_, ls), _v in samples.items() for k, v in ls if k == label}


def wait_status(url: str, run_id: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        run: dict[str, Any] = httpx.get(f"{url}/runs/{run_id}", headers=AUTH).json()
        assert run["status"] == status or run["status"] not in ("completed", "failed"), run
        return run if run["status"] == status else None

    return until(f"run {run_id} {status}", reached)  # type: ignore[no-any-return]


def assert_tools_counted_once(samples: Samples) -> None:
    calls = {t: value(samples, "netrun_tool_calls_total", tool=t) for t in ("bump", "fails", "refund", "finish")}
    assert calls == {"bump": 2, "fails": 1, "refund": 1, "finish": 1}, calls
    assert value(samples, "netrun_tool_errors_total", tool="fails", kind="command") == 1
    assert value(samples, "netrun_tool_errors_total") == 1  # only the failing command
    assert value(samples, "netrun_tool_seconds_count", tool="bump") == 2
    assert "drop_every_table" not in label_values(samples, "tool")


def test_a_run_with_tool_calls_an_approval_and_a_restart_is_counted_once(
    tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]
) -> None:
    llm.set_script([WORK, REFUND, FINISH])
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    server = served(NETRUN_API_TOKEN=TOKEN)
    fresh = scrape(server.url, headers=AUTH)
    # A served network shows at 0 before its first run (a query never finds nothing).
    assert value(fresh, "netrun_runs_started_total", network="metered") == 0
    assert value(fresh, "netrun_approvals_waiting", network="metered") == 0
    assert ("netrun_runs_in_flight", frozenset({("network", "metered"), ("status", "waiting")})) in fresh

    denied = httpx.get(f"{server.url}/metrics")
    assert denied.status_code == 401 and "NETRUN_API_TOKEN" in denied.json()["detail"]
    assert httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401

    started = httpx.post(f"{server.url}/networks/metered/runs", json={"input": "ticket 7"}, headers=AUTH)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    wait_status(server.url, run_id, "waiting")
    waiting = scrape(server.url, headers=AUTH)
    assert value(waiting, "netrun_approvals_waiting", network="metered") == 1
    assert value(waiting, "netrun_runs_in_flight", network="metered", status="waiting") == 1
    assert value(waiting, "netrun_runs_started_total", network="metered") == 1
    assert value(waiting, "netrun_tool_calls_total", tool="bump") == 2

    answered = httpx.post(
        f"{server.url}/events", json={"name": "netrun/approval", "data": {"run_id": run_id, "approved": True}}, headers=AUTH
    )
    assert answered.status_code == 202, answered.text
    run = wait_status(server.url, run_id, "completed")
    done = scrape(server.url, headers=AUTH)
    assert value(done, "netrun_runs_started_total", network="metered") == 1
    assert value(done, "netrun_runs_ended_total", network="metered", status="completed") == 1
    assert value(done, "netrun_runs_ended_total", status="failed") == 0
    assert value(done, "netrun_approvals_waiting") == 0
    assert value(done, "netrun_runs_in_flight", network="metered") == 0
    usage = run["result"]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["cost"] > 0
    assert value(done, "netrun_inference_tokens_total", model=MODEL, kind="prompt") == usage["prompt_tokens"]
    assert value(done, "netrun_inference_tokens_total", model=MODEL, kind="completion") == usage["completion_tokens"]
    assert value(done, "netrun_inference_cost_usd_total", model=MODEL) == pytest.approx(usage["cost"])
    assert value(done, "netrun_inference_seconds_count", model=MODEL) == 3 == llm.count
    assert value(done, "netrun_inference_errors_total") == 0
    assert_tools_counted_once(done)

    # A restart: the run's steps are re-read, never counted again, and the start is not new.
    server.restart()
    again = scrape(server.url, headers=AUTH)
    assert value(again, "netrun_runs_started_total") == 0 and value(again, "netrun_tool_calls_total") == 0


def test_a_run_resumed_after_a_restart_counts_only_the_work_it_does_then(
    tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]
) -> None:
    llm.set_script([WORK, REFUND, FINISH])
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    server = served(NETRUN_METRICS="public", NETRUN_API_TOKEN=TOKEN)
    run_id = httpx.post(f"{server.url}/networks/metered/runs", json={"input": "x"}, headers=AUTH).json()["run_id"]
    wait_status(server.url, run_id, "waiting")
    assert value(scrape(server.url), "netrun_approvals_waiting") == 1  # public: no token needed
    assert httpx.get(f"{server.url}/networks").status_code == 401  # the rest of the API still wants it
    server.restart()
    resumed = scrape(server.url)
    assert value(resumed, "netrun_approvals_waiting", network="metered") == 1  # read from the journal
    assert value(resumed, "netrun_runs_in_flight", network="metered", status="waiting") == 1
    httpx.post(
        f"{server.url}/events", json={"name": "netrun/approval", "data": {"run_id": run_id, "approved": True}}, headers=AUTH
    )
    wait_status(server.url, run_id, "completed")
    after = scrape(server.url)
    assert value(after, "netrun_runs_started_total") == 0  # started before this process
    assert value(after, "netrun_runs_ended_total", network="metered", status="completed") == 1
    assert value(after, "netrun_approvals_waiting") == 0
    # Only the work after the approval: the refund itself, one inference, the finish.
    assert {t: value(after, "netrun_tool_calls_total", tool=t) for t in ("bump", "fails", "finish")} == {
        "bump": 0,
        "fails": 0,
        "finish": 1,
    }
    assert value(after, "netrun_inference_seconds_count", model=MODEL) == 1


def test_on_inngest_every_call_replays_the_run_and_each_thing_counts_once(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([WORK, REFUND, FINISH])
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    with synced(tmp_path) as (executor, server):
        (run_id,) = executor.send({"name": "netrun/metered.run", "data": {"input": "ticket 7"}})
        run = executor.runs[run_id]
        assert run.status == "waiting", run.error
        waiting = scrape(server.url)
        assert value(waiting, "netrun_approvals_waiting", network="metered") == 1
        (pending,) = httpx.get(f"{server.url}/runs/{run_id}").json()["approvals"]
        executor.send({"name": "netrun/approval", "data": {"run_id": run_id, "approved": True, "approval_id": pending["id"]}})
        assert run.status == "completed", run.error
        samples = scrape(server.url)
        calls = len([c for c in executor.requests if c.run_id == run_id])
    assert calls > 8  # every step was its own call, each replaying those before it
    assert value(samples, "netrun_runs_started_total", network="metered") == 1
    assert value(samples, "netrun_runs_ended_total", network="metered", status="completed") == 1
    assert value(samples, "netrun_approvals_waiting") == 0
    assert value(samples, "netrun_inference_seconds_count", model=MODEL) == 3 == llm.count
    usage = run.output["usage"]
    assert value(samples, "netrun_inference_tokens_total", model=MODEL, kind="prompt") == usage["prompt_tokens"]
    assert_tools_counted_once(samples)


def test_on_inngest_a_server_restarted_mid_run_counts_only_what_it_does_after(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([REFUND, FINISH])
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    with synced(tmp_path) as (executor, server):
        (run_id,) = executor.send({"name": "netrun/metered.run", "data": {"input": "ticket 8"}})
        assert value(scrape(server.url), "netrun_runs_started_total", network="metered") == 1
        server.restart()
        (pending,) = httpx.get(f"{server.url}/runs/{run_id}").json()["approvals"]
        executor.send({"name": "netrun/approval", "data": {"run_id": run_id, "approved": True, "approval_id": pending["id"]}})
        assert executor.runs[run_id].status == "completed", executor.runs[run_id].error
        samples = scrape(server.url)
    assert value(samples, "netrun_runs_started_total", network="metered") == 0
    assert value(samples, "netrun_runs_ended_total", network="metered", status="completed") == 1
    assert {t: value(samples, "netrun_tool_calls_total", tool=t) for t in ("refund", "finish")} == {"refund": 1, "finish": 1}
    assert value(samples, "netrun_inference_seconds_count") == 1  # the call before the restart is not asked again


def test_a_start_reported_again_is_not_a_new_run(tmp_path: Path) -> None:
    """A run's start reported again (an Inngest step retried after it reported it, a replica
    or a restarted server that sees it) counts once: the journal's stream has it."""
    journal = Journal(tmp_path / "runs.db")
    try:
        start = {"run_id": "r1", "network": "metered", "input": "x", "definition_hash": "h", "thread_id": None, "user": None}
        first = Metrics(journal, lambda: ["metered"])
        first.observe("run.started", {**start, "replayed": False})
        RunEvents(journal).emit("run.started", {**start, "replayed": False})  # journaled, as the server does
        first.observe("run.started", {**start, "replayed": False})
        later = Metrics(journal, lambda: ["metered"])  # another process, the same journal
        later.observe("run.started", {**start, "replayed": False})
        later.observe("run.started", {**start, "run_id": "r2", "replayed": False})
        later.observe("run.completed", {"run_id": "r1", "result": {}, "replayed": False})
        later.observe("run.completed", {"run_id": "r1", "result": {}, "replayed": False})  # reported twice
        counts = [
            {
                (s.name, tuple(sorted(s.labels.values()))): s.value
                for f in text_string_to_metric_families(m.render().decode())
                for s in f.samples
            }
            for m in (first, later)
        ]
    finally:
        journal.close()
    assert counts[0][("netrun_runs_started_total", ("metered",))] == 1
    assert counts[1][("netrun_runs_started_total", ("metered",))] == 1  # r2 only
    assert counts[1][("netrun_runs_ended_total", ("completed", "metered"))] == 1


def test_a_step_waiting_for_a_concurrency_slot_shows_queued(tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]) -> None:
    """Two runs of a network that runs one step at a time: while the first one's model call
    holds the slot, the second one's waits for it (the local engine's queue)."""
    slow = Reply(text="slow", tool_calls=[ToolCall("finish", {})], delay=1.5)
    llm.set_script([slow, Reply(text="quick", tool_calls=[ToolCall("finish", {})])])
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url) + "function: {concurrency: 1}\n")
    server = served()
    first = httpx.post(f"{server.url}/networks/metered/runs", json={"input": "a"}).json()["run_id"]
    until("the first call to reach the model", lambda: llm.count == 1)
    second = httpx.post(f"{server.url}/networks/metered/runs", json={"input": "b"}).json()["run_id"]

    def queued() -> Samples | None:
        samples = scrape(server.url)
        return samples if value(samples, "netrun_steps_queued") == 1 else None

    samples = until("the second run's step to queue", queued)
    assert value(samples, "netrun_runs_in_flight", network="metered", status="queued") == 1
    assert value(samples, "netrun_runs_in_flight", network="metered", status="running") == 1
    for run_id in (first, second):
        wait_status(server.url, run_id, "completed")
    done = scrape(server.url)
    assert value(done, "netrun_steps_queued") == 0 and value(done, "netrun_runs_in_flight") == 0
    assert value(done, "netrun_runs_ended_total", network="metered", status="completed") == 2


def test_inference_errors_are_counted_by_model_and_a_retried_run_ends_again(
    tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]
) -> None:
    llm.set_script([Reply(status=400, error="bad request: no such thing")])
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    server, other = served(), served()  # two servers in one process: each counts its own work
    run_id = httpx.post(f"{server.url}/networks/metered/runs", json={"input": "x"}).json()["run_id"]
    wait_status(server.url, run_id, "failed")
    samples = scrape(server.url)
    assert value(samples, "netrun_inference_errors_total", network="metered", model=MODEL) == 1
    assert value(scrape(other.url), "netrun_inference_errors_total") == 0
    assert value(samples, "netrun_inference_seconds_count") == 0
    assert value(samples, "netrun_runs_ended_total", network="metered", status="failed") == 1
    # Retried once its cause is fixed, the run ends again: that end counts too.
    llm.set_script([FINISH])
    assert httpx.post(f"{server.url}/runs/{run_id}/retry").status_code == 202
    wait_status(server.url, run_id, "completed")
    retried = scrape(server.url)
    assert value(retried, "netrun_runs_ended_total", network="metered", status="completed") == 1
    assert value(retried, "netrun_runs_ended_total", network="metered", status="failed") == 1
    assert value(retried, "netrun_runs_started_total", network="metered") == 1


def test_metrics_off_or_without_prometheus_client_answer_why_and_serve_still_runs(
    tmp_path: Path, llm: FakeLLM, served: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    off = served(NETRUN_METRICS="off")
    answer = httpx.get(f"{off.url}/metrics")
    assert answer.status_code == 404 and "NETRUN_METRICS" in answer.json()["detail"]
    # As if the extra were not installed: the import of prometheus_client fails.
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "netrun.serve.metrics")
    bare = served()
    answer = httpx.get(f"{bare.url}/metrics")
    assert answer.status_code == 501, answer.text
    assert "pip install 'netrun-agents[metrics]'" in answer.json()["detail"]
    assert httpx.get(f"{bare.url}/healthz").json()["status"] == "ok"


def test_the_metrics_setting_accepts_token_public_or_off_only() -> None:
    def mode(**env: str) -> str:
        return ServeSettings.from_env(env, (Path("."),), engine="local").metrics

    assert mode() == "token" and mode(NETRUN_METRICS="Public") == "public" and mode(NETRUN_METRICS="off") == "off"
    with pytest.raises(SettingsError, match=r"NETRUN_METRICS must be one of token, public, off \(got 'yes'\)"):
        mode(NETRUN_METRICS="yes")


def test_a_label_keeps_a_bounded_number_of_values(tmp_path: Path) -> None:
    """However many names reach it (a model choice spread over many ids, an MCP server with
    thousands of tools), a label never holds more than LABEL_VALUES values."""
    journal = Journal(tmp_path / "runs.db")
    try:
        metrics = Metrics(journal, lambda: [])
        for i in range(LABEL_VALUES + 20):
            span = Span("tool", f"t{i}", {"network": "n", "tool": f"t{i}", "kind": "state"})
            metrics.tool_call(span)
        metrics.tool_call(Span("tool", "x", {"network": "n", "tool": None, "kind": "state"}))
        text = metrics.render().decode()
    finally:
        journal.close()
    tools = {s.labels["tool"] for f in text_string_to_metric_families(text) if f.name == "netrun_tool_calls" for s in f.samples}
    assert len(tools) == LABEL_VALUES + 1 and OTHER in tools
    assert (
        sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "netrun_tool_calls_total")
        == LABEL_VALUES + 21
    )


@pytest.mark.parametrize("command", ["validate", "run"])
def test_validate_and_run_never_import_prometheus_client(command: str, tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="ok")])
    network = tmp_path / "one.yaml"
    network.write_text(
        f'name: one\nmodel: {{id: openai/x, api_base: "{llm.base_url}", api_key: "${{FAKE_LLM_KEY}}"}}\n'
        "agents:\n  a: {description: answers, system: hi}\nrouter:\n  rules: [{if: 'call_count < 1', agent: a}]\n"
    )
    args = [str(network)] if command == "validate" else [str(network), "-i", "hi", "--json"]
    code = (
        "import sys\nfrom netrun.cli import main\n"
        f"try:\n    main([{command!r}, *{args!r}])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('prometheus_client' in sys.modules)\n"
    )
    env = {**os.environ, "FAKE_LLM_KEY": "sk-test", "NETRUN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_netrun_serve_metrics_public_serves_them_without_the_token(tmp_path: Path, llm: FakeLLM) -> None:
    """The command line's ``--metrics public`` (a real ``netrun serve`` process)."""
    from .fakes.server_thread import free_port

    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INNGEST_", "NETRUN_"))}
    env |= {"NETRUN_API_TOKEN": TOKEN, "FAKE_LLM_KEY": "sk-test", "NETRUN_DATA_DIR": str(tmp_path / "data")}
    args = [sys.executable, "-m", "netrun", "serve", str(tmp_path), "--port", str(port), "--metrics", "public", "--no-watch"]
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as stderr:
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)

        def up() -> bool:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        try:
            until("netrun serve to answer", up, timeout=60)
            samples = scrape(url)
            assert value(samples, "netrun_runs_in_flight", network="metered") == 0
            assert value(samples, "process_cpu_seconds_total") > 0  # the process's own metrics are there too
            assert httpx.get(f"{url}/networks").status_code == 401
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "/metrics: public (no token)" in log.read_text()  # the start-up line says so
