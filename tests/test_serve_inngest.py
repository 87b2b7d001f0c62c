"""`netrun serve` as Inngest sees it: the functions it registers, and runs driven over real
HTTP by a stand-in executor that speaks Inngest's wire protocol (tests/fakes/inngest_executor.py).

The model is the fake OpenAI-compatible server through litellm; its request log is the
witness that a replay asks the model nothing again.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.runtime import agentkit_stream as ak
from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings

from .fakes.inngest_executor import StandInExecutor
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served

MODEL = '{{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}'

STEPS = """\
name: steps
model: MODEL
max_iter: 10
state: {{count: {{type: integer, default: 0}}}}
agents:
  worker: {{description: works, system: "{prompt} {{{{ state.count }}}} of {{{{ input }}}}", tools: [step]}}
router:
  rules: [{{if: "state.count >= 3", stop: true}}, {{if: "true", agent: worker}}]
tools:
  step: {{parameters: {{note: {{type: string}}}}, state: {{count: "{{{{ state.count + 1 }}}}"}}}}
function: {{retries: 2}}
""".replace("MODEL", MODEL)

HELPDESK = """\
name: helpdesk
model: MODEL
max_iter: 6
trigger:
  - {{event: app/ticket.created, if: 'event.data.tier == "pro"', input: "{{{{ event.data.title }}}}"}}
  - {{cron: "TZ=UTC 0 9 * * 1"}}
state:
  refunded: {{type: boolean, default: false}}
  done: {{type: boolean, default: false}}
agents:
  agent: {{description: helps, system: "Help with {{{{ input }}}}", tools: [ask_human, refund, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: agent}}]
tools:
  ask_human:
    wait_for_event: {{event: app/human.answered, match: data.user, timeout: 4h}}
    parameters: {{question: {{type: string}}}}
  refund: {{approval: required, state: {{refunded: true}}}}
  finish: {{state: {{done: true}}}}
function:
  retries: 1
  concurrency: [{{limit: 2, key: event.data.user}}]
  throttle: {{limit: 10, period: 1m}}
  cancel: [{{event: app/ticket.closed, if: "async.data.id == event.data.id"}}]
  timeouts: {{finish: 1h}}
""".replace("MODEL", MODEL)

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
SIGNING_KEY = "signkey-test-" + "ab12" * 16


@pytest.fixture
def executor() -> Iterator[StandInExecutor]:
    with StandInExecutor() as ex:
        yield ex


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM([]) as server:
        yield server


def serve(folder: Path, executor: StandInExecutor, **env: str) -> Served:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")}
    environ |= {**ENV, "INNGEST_API_BASE_URL": executor.url, "INNGEST_EVENT_API_BASE_URL": executor.url, **env}
    if "INNGEST_SIGNING_KEY" not in env:
        environ["INNGEST_DEV"] = "1"

    def make(port: int) -> Any:
        return create_app(ServeSettings.from_env(environ, (folder,), data_dir=folder / "data", port=port))

    return Served(make).start()


@contextmanager
def synced(folder: Path, **env: str) -> Iterator[tuple[StandInExecutor, Served]]:
    """A stand-in executor and ``netrun serve`` on it (the networks of ``folder``), synced;
    both stopped after the block."""
    with StandInExecutor() as executor:
        server = serve(folder, executor, **env)
        try:
            executor.sync(f"{server.url}/api/inngest")
            yield executor, server
        finally:
            server.stop()


@pytest.fixture
def served(tmp_path: Path, executor: StandInExecutor) -> Iterator[Callable[..., Served]]:
    servers: list[Served] = []

    def start(**env: str) -> Served:
        server = serve(tmp_path, executor, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def signatures(llm: FakeLLM) -> list[str]:
    return [json.dumps(r["messages"], sort_keys=True) for r in llm.requests]


def test_sync_registers_each_network_with_the_settings_of_its_yaml(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    (tmp_path / "helpdesk.yaml").write_text(HELPDESK.format(base=llm.base_url))
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served()
    functions = executor.sync(f"{server.url}/api/inngest")
    assert sorted(functions) == ["netrun-helpdesk", "netrun-netrun-run-ended", "netrun-steps"]
    helpdesk = functions["netrun-helpdesk"]
    assert helpdesk["triggers"] == [
        {"event": "app/ticket.created", "expression": 'event.data.tier == "pro"'},
        {"cron": "TZ=UTC 0 9 * * 1"},
    ]
    assert helpdesk["steps"]["step"]["retries"] == {"attempts": 1}
    assert helpdesk["steps"]["step"]["runtime"]["url"].startswith(f"{server.url}/api/inngest?fnId=netrun-helpdesk")
    assert helpdesk["concurrency"] == [{"limit": 2, "key": "event.data.user", "scope": "fn"}]
    assert helpdesk["throttle"]["limit"] == 10 and helpdesk["throttle"]["period"] == "1m"
    assert helpdesk["cancel"][0] == {"event": "app/ticket.closed", "if": "async.data.id == event.data.id"}
    assert helpdesk["cancel"][1]["event"] == "netrun/run.cancel"  # POST /runs/{id}/cancel's (tests/test_cancel_inngest.py)
    assert helpdesk["timeouts"] == {"finish": "1h"}
    steps = functions["netrun-steps"]
    assert steps["triggers"] == [{"event": "netrun/steps.run"}]  # no trigger: netrun/<name>.run
    assert steps["steps"]["step"]["retries"] == {"attempts": 2}


def test_netrun_app_id_names_the_app_and_its_functions(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served(NETRUN_APP_ID="acme")
    functions = executor.sync(f"{server.url}/api/inngest")
    assert sorted(functions) == ["acme-netrun-run-ended", "acme-steps"]


def test_a_run_goes_step_by_step_and_replays_repeat_nothing(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    llm.set_script([Reply(text=f"step {i}", tool_calls=[ToolCall("step", {"note": str(i)})]) for i in range(3)])
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    run = executor.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "three"}})
    assert run.status == "completed", run.error
    assert run.output["state"] == {"count": 3}
    assert run.output["route"] == ["worker"] * 3
    assert run.output["stop_reason"] == "router"
    # One request per step (the definition pin, 3 inferences, 3 tool calls) and the final one.
    calls = [c for c in executor.requests if c.run_id == run.id]
    assert len(run.stack) == 7
    assert len(calls) == len(run.stack) + 1
    assert llm.count == 3 and len(set(signatures(llm))) == 3
    assert llm.requests[0]["messages"][0]["content"] == "Step 0 of three"
    record = httpx.get(f"{server.url}/runs/{run.id}").json()
    assert record["status"] == "completed" and record["result"]["state"] == {"count": 3}
    assert (
        record["input"] == "three"
        and record["definition_hash"] == httpx.get(f"{server.url}/networks").json()["networks"][0]["definition_hash"]
    )


def test_waits_and_approvals_are_answered_by_events(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    llm.set_script(
        [
            Reply(text="asking", tool_calls=[ToolCall("ask_human", {"question": "which order?"})]),
            Reply(text="refunding", tool_calls=[ToolCall("refund", {})]),
            Reply(text="done", tool_calls=[ToolCall("finish", {})]),
        ]
    )
    (tmp_path / "helpdesk.yaml").write_text(HELPDESK.format(base=llm.base_url))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    ticket = {"name": "app/ticket.created", "data": {"tier": "pro", "title": "Refund me", "user": "ann"}}
    assert (
        executor.send({"name": "app/ticket.created", "data": {"tier": "free", "title": "x", "user": "ann"}}) == []
    )  # filtered out
    (run_id,) = executor.send(ticket)
    run = executor.runs[run_id]
    assert run.status == "waiting" and run.waiting["name"] == "app/human.answered"
    assert run.waiting["opts"]["if"] == "event.data.user == async.data.user"
    assert executor.send({"name": "app/human.answered", "data": {"user": "bob", "answer": "no"}}) == []  # another user's
    executor.send({"name": "app/human.answered", "data": {"user": "ann", "answer": "order 7"}})
    assert run.status == "waiting" and run.waiting["name"] == "netrun/approval"  # the refund waits for a human
    (pending,) = httpx.get(f"{server.url}/runs/{run_id}").json()["approvals"]
    assert pending["tool"] == "refund" and pending["step"] == "turn.1.agent.tool.0.refund"
    # An approval answers one call by its id: another run's, or one naming no call, answers none.
    assert (
        executor.send(
            {"name": "netrun/approval", "data": {"run_id": "another-run", "approved": True, "approval_id": pending["id"]}}
        )
        == []
    )
    assert executor.send({"name": "netrun/approval", "data": {"run_id": run_id, "approved": True}}) == []
    executor.send({"name": "netrun/approval", "data": {"run_id": run_id, "approved": True, "approval_id": pending["id"]}})
    assert run.status == "completed", run.error
    assert run.output["state"] == {"refunded": True, "done": True}
    assert run.output["results"][0]["tool_calls"][0]["result"] == {"user": "ann", "answer": "order 7"}
    assert llm.requests[0]["messages"][0]["content"] == "Help with Refund me"
    assert llm.count == 3 and len(set(signatures(llm))) == 3  # every replay took the memoized answers
    assert httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "completed"

    # An event the trigger's input template cannot use fails the run at once, saying why.
    (broken,) = executor.send({"name": "app/ticket.created", "data": {"tier": "pro", "user": "ann"}})
    assert executor.runs[broken].status == "failed"
    assert "input template" in executor.runs[broken].error["message"] and "title" in executor.runs[broken].error["message"]
    assert llm.count == 3


def test_a_failing_inference_is_retried_by_inngest_and_a_hopeless_one_fails_the_run(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    llm.set_script([Reply(status=503), *[Reply(text="s", tool_calls=[ToolCall("step", {"note": "x"})]) for _ in range(3)]])
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    run = executor.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "x"}})
    assert run.status == "completed", run.error
    assert llm.count == 4
    assert signatures(llm)[0] == signatures(llm)[1]  # the failed inference, and its retry
    assert max(run.attempts.values()) == 2

    llm.reset(Reply(status=400, error="bad request: no such model"))
    failed = executor.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "y"}})
    assert failed.status == "failed"
    assert "no such model" in failed.error["message"]
    assert llm.count == 1  # not retried: a 400 is the same every time
    record = httpx.get(f"{server.url}/runs/{failed.id}").json()
    assert record["status"] == "failed" and "no such model" in record["error"]


def test_a_restart_between_steps_and_an_edit_in_flight_change_nothing(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    llm.set_script([Reply(text=f"step {i}", tool_calls=[ToolCall("step", {"note": str(i)})]) for i in range(3)])
    path = tmp_path / "steps.yaml"
    path.write_text(STEPS.format(base=llm.base_url, prompt="Before"))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    restarts = []

    def between() -> None:
        if len(restarts) == 2:  # after the first inference: edit the file, restart the server
            path.write_text(STEPS.format(base=llm.base_url, prompt="After"))
        if len(restarts) in (2, 4):
            server.restart()
        restarts.append(1)

    run = executor.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "x"}}, between=between)
    assert run.status == "completed", run.error
    prompts = [r["messages"][0]["content"] for r in llm.requests]
    assert prompts == ["Before 0 of x", "Before 1 of x", "Before 2 of x"]  # the definition it started on
    assert llm.count == 3
    # A new run starts on the edited file.
    llm.set_script([Reply(text="s", tool_calls=[ToolCall("step", {"note": "x"})]) for _ in range(3)])
    executor.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "y"}})
    assert llm.requests[3]["messages"][0]["content"] == "After 0 of y"


def test_rest_api_starts_runs_through_inngest(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    llm.set_script([Reply(text=f"s{i}", tool_calls=[ToolCall("step", {"note": "x"})]) for i in range(3)])
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    started = httpx.post(f"{server.url}/networks/steps/runs", json={"input": "via rest", "state": {"count": 1}})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    assert executor.events[-1]["name"] == "netrun/steps.run"
    executor.deliver_received()
    record = httpx.get(f"{server.url}/runs/{run_id}").json()
    assert record["status"] == "completed"
    assert record["result"]["state"] == {"count": 3}  # started from the given state
    assert record["input"] == "via rest"
    assert llm.count == 2 and llm.requests[0]["messages"][0]["content"] == "Step 1 of via rest"
    # A completed run is neither cancelled nor retried (on Inngest: tests/test_cancel_inngest.py).
    for verb in ("cancel", "retry"):
        refused = httpx.post(f"{server.url}/runs/{run_id}/{verb}")
        assert refused.status_code == 409, refused.text
        assert "is completed" in refused.json()["detail"]
    assert httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "completed"


def test_production_mode_accepts_signed_calls_only(tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]) -> None:
    llm.set_script([Reply(text="s", tool_calls=[ToolCall("step", {"note": "x"})]) for _ in range(3)])
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    with StandInExecutor(signing_key=SIGNING_KEY) as signed:
        server = serve(tmp_path, signed, INNGEST_SIGNING_KEY=SIGNING_KEY, INNGEST_EVENT_KEY="evt-key")
        try:
            signed.sync(f"{server.url}/api/inngest")
            run = signed.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "x"}})
            assert run.status == "completed", run.error
            body = {
                "event": {"name": "netrun/steps.run", "data": {"input": "x"}},
                "events": [],
                "steps": {},
                "use_api": False,
                "ctx": {"run_id": "forged", "attempt": 0, "disable_immediate_execution": False, "stack": {"stack": []}},
            }
            forged = httpx.post(f"{server.url}/api/inngest?fnId=netrun-netrun-steps&stepId=step", json=body)
            assert forged.status_code == 401
            assert httpx.get(f"{server.url}/api/inngest").status_code == 401
        finally:
            server.stop()
    assert llm.count == 3  # the forged call ran nothing


def test_hot_reload_resyncs_and_an_invalid_edit_keeps_the_last_good_functions(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    path = tmp_path / "steps.yaml"
    path.write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served()
    _until(lambda: "netrun-steps" in executor.functions)  # netrun syncs itself at start-up
    path.write_text(STEPS.format(base=llm.base_url, prompt="Step").replace("retries: 2", "retries: 4"))
    _until(lambda: executor.functions["netrun-steps"]["steps"]["step"]["retries"] == {"attempts": 4})
    path.write_text(STEPS.format(base=llm.base_url, prompt="Step").replace("retries: 2", "retries: lots"))
    _until(lambda: server.app.state.netrun.reloads >= 2)
    time.sleep(0.3)
    assert executor.functions["netrun-steps"]["steps"]["step"]["retries"] == {"attempts": 4}
    functions = executor.sync(f"{server.url}/api/inngest")
    assert functions["netrun-steps"]["steps"]["step"]["retries"] == {"attempts": 4}


def _until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


CHILD = """\
name: researcher
model: MODEL
max_iter: 1
agents:
  reader: {{description: reads, system: "Research {{{{ input }}}}"}}
router: {{rules: [{{if: "call_count == 0", agent: reader}}], otherwise: stop}}
""".replace("MODEL", MODEL)

PARENT = """\
name: writer
model: MODEL
max_iter: 3
state: {{done: {{type: boolean, default: false}}}}
agents:
  author: {{description: writes, system: "Write about {{{{ input }}}}", tools: [research, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: author}}]
tools:
  research: {{network: researcher, description: Ask the researcher.}}
  finish: {{state: {{done: true}}}}
""".replace("MODEL", MODEL)


def test_a_network_tool_is_a_step_invoke_of_the_other_networks_function(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    llm.set_script(
        [
            Reply(text="asking", tool_calls=[ToolCall("research", {"input": "owls"})]),
            Reply(text="Owls hunt at night."),
            Reply(text="Here is the piece.", tool_calls=[ToolCall("finish", {})]),
        ]
    )
    (tmp_path / "researcher.yaml").write_text(CHILD.format(base=llm.base_url))
    (tmp_path / "writer.yaml").write_text(PARENT.format(base=llm.base_url))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    run = executor.run("netrun-writer", {"name": "netrun/writer.run", "data": {"input": "owls"}})
    assert run.status == "completed", run.error
    children = [r for r in executor.runs.values() if r.fn_id == "netrun-researcher"]
    # The child's depth (limits.depth) travels with the invocation, under netrun's key.
    assert len(children) == 1 and children[0].event["name"] == "inngest/function.invoked"
    data = dict(children[0].event["data"])
    assert data.pop("_inngest")["fn_id"] == "netrun-researcher"  # Inngest's own key: which function, which parent step
    assert data == {"input": "owls", "_netrun": {"depth": 1}}
    call = run.output["results"][0]["tool_calls"][0]
    assert call["name"] == "research" and call["result"]["output"] == "Owls hunt at night."
    prompts = [r["messages"][0]["content"] for r in llm.requests]
    assert prompts == ["Write about owls", "Research owls", "Write about owls"]


def test_a_run_started_through_rest_keeps_its_id_to_its_own_network(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    """Two networks listen for one event: the run id POST /networks/alpha/runs returns is
    alpha's; beta's run, started by the same event, gets its own."""
    llm.set_script([Reply(text=f"s{i}", tool_calls=[ToolCall("step", {"note": "x"})]) for i in range(6)])
    for name in ("alpha", "beta"):
        text = STEPS.format(base=llm.base_url, prompt=name).replace("name: steps", f"name: {name}")
        (tmp_path / f"{name}.yaml").write_text(
            text.replace("function: {retries: 2}", "trigger: {event: app/shared, if: event.data.go}")
        )
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    refused = httpx.post(f"{server.url}/networks/alpha/runs", json={"input": "x", "data": {"go": False}})
    assert refused.status_code == 400 and "false for this data" in refused.json()["detail"]
    run_id = httpx.post(f"{server.url}/networks/alpha/runs", json={"input": "x", "data": {"go": True}}).json()["run_id"]
    touched = executor.deliver_received()
    assert len(touched) == 2
    alpha = httpx.get(f"{server.url}/runs/{run_id}").json()
    assert alpha["network"] == "alpha" and alpha["status"] == "completed"
    # Beta's run is known by Inngest's run id; alpha's by the id the REST API returned.
    known = [r.json() for r in (httpx.get(f"{server.url}/runs/{t}") for t in touched) if r.status_code == 200]
    assert [r["network"] for r in known] == ["beta"]


def test_the_sse_events_of_an_inngest_run_report_each_thing_once(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    """Every call replays the run from the top; the stream still shows each turn and each
    tool call once, results included (they are reported by the call after the step ran)."""
    import threading

    from .test_serve_local import sse

    llm.set_script(
        [
            Reply(text="two at once", tool_calls=[ToolCall("step", {"note": "a"}), ToolCall("step", {"note": "b"})]),
            Reply(text="one more", tool_calls=[ToolCall("step", {"note": "c"})]),
        ]
    )
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    run_id = executor.start("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "x"}})
    events: list[dict[str, Any]] = []

    def watch() -> None:
        with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", timeout=30) as response:
            events.extend(sse(response))

    watcher = threading.Thread(target=watch)

    def between() -> None:  # the run is known once its first step ran: a client follows it from then on
        if not watcher.is_alive() and not events:
            watcher.start()
            time.sleep(0.2)

    run = executor.drive(run_id, between=between)
    watcher.join(timeout=30)
    assert run.status == "completed", run.error
    kinds = [f"{e['event']}/{e['data'].get('scope') or e['data'].get('type') or ''}" for e in events]
    assert kinds.count("run.started/network") == 1 and kinds[-2:] == ["run.completed/network", "stream.ended/network"]
    # The two calls of turn 0 both count (they once lost one write: count 1, not 2), so the
    # third call reaches the rule's 3.
    assert kinds.count("run.started/agent") == 2 and kinds.count("run.completed/agent") == 2
    assert kinds.count("part.created/tool-call") == 3 and kinds.count("part.created/tool-output") == 3
    outputs = [e["data"]["partId"] for e in events if e["event"] == "part.created" and e["data"]["type"] == "tool-output"]
    assert sorted(str(ak.step_of(p)) for p in outputs) == [
        "turn.0.worker.tool.0.step",
        "turn.0.worker.tool.1.step",
        "turn.1.worker.tool.0.step",
    ]
    kinds = [e["event"] for e in events]
    assert kinds.count("text.delta") >= 1  # the inference that ran while the client watched streamed


def test_a_run_inngest_cancels_is_marked_and_a_removed_network_keeps_its_runs(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    llm.set_script(
        [
            Reply(text="asking", tool_calls=[ToolCall("ask_human", {"question": "which?"})]),
            Reply(text="asking", tool_calls=[ToolCall("ask_human", {"question": "which?"})]),
            Reply(text="done", tool_calls=[ToolCall("finish", {})]),
        ]
    )
    path = tmp_path / "helpdesk.yaml"
    path.write_text(HELPDESK.format(base=llm.base_url))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    ticket = {"name": "app/ticket.created", "data": {"tier": "pro", "title": "T", "user": "ann", "id": 1}}
    (cancelled,) = executor.send(ticket)
    (kept,) = executor.send({**ticket, "data": {**ticket["data"], "user": "bob", "id": 2}})
    # Inngest cancels the first run (its cancel event, a timeout): the system event tells netrun.
    executor.send(
        {
            "name": "inngest/function.cancelled",
            "data": {
                "function_id": "netrun-helpdesk",
                "run_id": cancelled,
                "event": executor.runs[cancelled].event,
                "error": {"name": "Error", "message": "function cancelled"},
            },
        }
    )
    record = httpx.get(f"{server.url}/runs/{cancelled}").json()
    assert record["status"] == "cancelled" and record["error"] == "cancelled by Inngest: function cancelled"
    # The network's file goes away while the second run waits: the run still finishes.
    path.unlink()
    _until(lambda: httpx.get(f"{server.url}/networks").json()["networks"] == [])
    functions = executor.sync(f"{server.url}/api/inngest")
    assert functions["netrun-helpdesk"]["triggers"] == [{"event": "netrun/retired.helpdesk"}]  # answers no event
    assert executor.send(ticket) == []
    executor.send({"name": "app/human.answered", "data": {"user": "bob"}})
    assert executor.runs[kept].status == "completed", executor.runs[kept].error
    assert llm.count == 3


def test_an_event_tool_is_a_step_send_event_with_an_id_for_deduplication(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    from .test_serve_local import MEMORY, NOTIFIER

    llm.set_script([Reply(text="Noted.", tool_calls=[ToolCall("remember", {"fact": "likes owls"})]), Reply(text="stored")])
    (tmp_path / "notifier.yaml").write_text(NOTIFIER.format(base=llm.base_url))
    (tmp_path / "memory.yaml").write_text(MEMORY.format(base=llm.base_url))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    run = executor.run("netrun-notifier", {"name": "netrun/notifier.run", "data": {"input": "hi", "user": "ann"}})
    assert run.status == "completed", run.error
    (sent,) = [e for e in executor.events if e["name"] == "app/memory.write"]
    assert (
        sent["data"] == {"user": "ann", "fact": "likes owls", "_netrun": {"depth": 1}}
        and sent["id"] == f"{run.id}:turn.0.chat.tool.0.remember"
    )
    (memory_id,) = executor.deliver_received()
    assert executor.runs[memory_id].status == "completed"
    assert llm.requests[1]["messages"][0]["content"] == "Store for ann: likes owls"


def test_runs_that_start_each_other_stop_at_the_depth_limit_on_inngest(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    """The depth travels in the events runs send and the invocations they make (under
    ``_netrun``, which an outside event cannot use to go deeper), so on Inngest too an event
    storm, even across a restart of the app, and a cycle of network tools end at the limit."""
    from .test_run_loop import PING_PONG
    from .test_serve_local import STORM

    def answer(body: dict[str, Any]) -> Reply:
        if any(m["role"] == "assistant" for m in body["messages"]) or not body.get("tools"):
            return Reply(text="done")
        return Reply(text="again", tool_calls=[ToolCall(body["tools"][0]["function"]["name"], {"input": "x"})])

    llm.fallback = answer
    (tmp_path / "storm.yaml").write_text(STORM.format(base=llm.base_url))
    # A cycle of network tools would not be served (a validation error): a chain, whose middle
    # network's limit stops it (the limit of the network making the call applies).
    for me, other, limits in (("top", "mid", ""), ("mid", "low", "limits: {depth: 1}\n"), ("low", "top", "")):
        text = PING_PONG.format(me=me, other=other, limits=limits).replace(
            "model: openai/x", f"model: {MODEL.format(base=llm.base_url)}"
        )
        (tmp_path / f"{me}.yaml").write_text(
            text.replace(", tools: [call]", "").split("tools:\n  call")[0] if me == "low" else text
        )
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    # An outside event: a negative depth in its data does not buy more runs.
    executor.send({"name": "app/storm", "data": {"n": "go", "_netrun": {"depth": -10}}})
    for i in range(10):  # 4 runs deliver 3 events; a storm without end would still be going
        if i == 1:
            server.restart()
            executor.sync(f"{server.url}/api/inngest")
        if not executor.deliver_received():
            break
    storms = [r for r in executor.runs.values() if r.fn_id == "netrun-storm"]
    assert len(storms) == 4 and all(r.status == "completed" for r in storms), [(r.status, r.error) for r in storms]
    refused = [t["error"] for r in storms for t in r.output["results"][0]["tool_calls"] if t["error"]]
    assert refused == [
        "refused: sending the event app/storm would start a run at depth 4, past the limit of 3 "
        "(limits.depth of network 'storm'; this run is at depth 3); the event was not sent"
    ]

    run = executor.run("netrun-top", {"name": "netrun/top.run", "data": {"input": "go"}})
    assert run.status == "completed", run.error
    nested = [r for r in executor.runs.values() if r.fn_id in ("netrun-top", "netrun-mid", "netrun-low")]
    assert [r.fn_id for r in nested] == ["netrun-top", "netrun-mid"]  # mid's call of low is refused
    assert nested[1].output["results"][0]["tool_calls"][0]["error"] == (
        "refused: running network 'low' would start a run at depth 2, past the limit of 1 "
        "(limits.depth of network 'mid'; this run is at depth 1); nothing was started"
    )


def test_a_run_that_fans_out_events_on_inngest_sends_at_most_limits_runs(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    """Four events per turn, two turns, in parallel steps: limits.runs (3) counts them in the
    model's order on every replay of the function, so three are sent (three sink runs) and
    the other five are refused, an error for the model."""

    def answer(body: dict[str, Any]) -> Reply:
        if not body.get("tools"):
            return Reply(text="sunk")
        return Reply(text="burst", tool_calls=[ToolCall("note", {}) for _ in range(4)])

    llm.fallback = answer
    (tmp_path / "burst.yaml").write_text(
        f"name: burst\nmodel: {MODEL.format(base=llm.base_url)}\nmax_iter: 2\nlimits: {{runs: 3}}\n"
        "agents:\n  a: {description: d, system: hi, tools: [note]}\nrouter: {rules: [{if: 'true', agent: a}]}\n"
        "tools:\n  note: {event: {name: app/noted}}\n"
    )
    (tmp_path / "sink.yaml").write_text(
        f"name: sink\nmodel: {MODEL.format(base=llm.base_url)}\nmax_iter: 1\ntrigger: {{event: app/noted, input: x}}\n"
        "agents:\n  a: {description: d, system: hi}\n"
    )
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    run = executor.run("netrun-burst", {"name": "netrun/burst.run", "data": {"input": "go"}})
    assert run.status == "completed", run.error
    for _ in range(5):
        if not executor.deliver_received():
            break
    sinks = [r for r in executor.runs.values() if r.fn_id == "netrun-sink"]
    assert len(sinks) == 3 and all(r.status == "completed" for r in sinks)
    calls = [t for turn in run.output["results"] for t in turn["tool_calls"]]
    assert [t["error"] is None for t in calls] == [True] * 3 + [False] * 5
    assert calls[3]["error"].startswith("refused: this run may start at most 3 runs (limits.runs of network 'burst'")


def test_a_429_retry_after_reaches_inngest_and_a_rejected_key_is_not_retried(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    llm.set_script(
        [
            Reply(status=429, retry_after=2, error="Rate limit reached"),
            *[Reply(text="s", tool_calls=[ToolCall("step", {"note": "x"})]) for _ in range(3)],
        ]
    )
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    before = datetime.now(UTC)
    run = executor.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "x"}})
    assert run.status == "completed", run.error
    assert llm.count == 4  # the rate-limited inference once more, then the run
    [limited] = [c for c in executor.requests if c.run_id == run.id and c.retry_after is not None]
    assert limited.status == 500  # RetryAfterError: the SDK answers for the function, with when to retry
    retry_at = datetime.fromisoformat(limited.retry_after.replace("Z", "+00:00"))
    assert before + timedelta(seconds=2) - timedelta(milliseconds=1) <= retry_at <= datetime.now(UTC) + timedelta(seconds=2)

    llm.reset(Reply(status=403, error="Your key lacks access to this model"))
    failed = executor.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "y"}})
    assert failed.status == "failed"
    assert llm.count == 1  # not retried (function.retries: 2 would allow 3 attempts)
    assert "access was denied (HTTP 403): Your key lacks access to this model" in failed.error["message"]
    record = httpx.get(f"{server.url}/runs/{failed.id}").json()
    assert record["status"] == "failed" and "Your key lacks access" in record["error"]


def _refuse_retries(attempts: int) -> Callable[[dict[str, Any]], list[str]]:
    """A sync rule netrun does not know: Inngest refuses a step with this many attempts."""

    def rule(fn: dict[str, Any]) -> list[str]:
        step = (fn.get("steps") or {}).get("step") or {}
        return [f"retries of {attempts} are not allowed here"] if step.get("retries") == {"attempts": attempts} else []

    return rule


def test_a_sync_refused_at_start_up_is_an_error_in_healthz_and_starts_no_run(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    executor.newer_rules.append(_refuse_retries(2))
    path = tmp_path / "steps.yaml"
    path.write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    caplog.set_level("INFO", logger="netrun.serve")
    server = served()
    _until(lambda: httpx.get(f"{server.url}/healthz").status_code == 503)
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "error" and health["sync"]["status"] == "refused"
    assert "retries of 2 are not allowed here" in health["sync"]["reason"]
    assert not any("synced" in r.getMessage() for r in caplog.records)
    assert any(r.levelname == "ERROR" and "Inngest refused the functions" in r.getMessage() for r in caplog.records)
    refused = httpx.post(f"{server.url}/networks/steps/runs", json={"input": "x"})
    assert refused.status_code == 503 and "refused the sync" in refused.json()["detail"]
    assert "retries of 2 are not allowed here" in refused.json()["detail"]
    assert executor.events == []  # nothing sent to Inngest for a run that could never start
    # Fixed (the file edited): synced, healthy, runs start.
    path.write_text(STEPS.format(base=llm.base_url, prompt="Step").replace("retries: 2", "retries: 3"))
    _until(lambda: httpx.get(f"{server.url}/healthz").status_code == 200)
    assert httpx.get(f"{server.url}/healthz").json()["sync"]["status"] == "synced"
    assert executor.functions["netrun-steps"]["steps"]["step"]["retries"] == {"attempts": 3}
    assert httpx.post(f"{server.url}/networks/steps/runs", json={"input": "x"}).status_code == 202


def test_a_reload_inngest_refuses_keeps_the_last_synced_version_served_and_synced(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    path = tmp_path / "steps.yaml"
    path.write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served()
    _until(lambda: "netrun-steps" in executor.functions)
    executor.newer_rules.append(_refuse_retries(4))
    path.write_text(STEPS.format(base=llm.base_url, prompt="Step").replace("retries: 2", "retries: 4"))
    _until(lambda: httpx.get(f"{server.url}/healthz").json()["sync"]["status"] == "refused")
    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 200 and "last versions Inngest accepted" in health.json()["sync"]["serving"]
    # Inngest kept the old function, and the server serves that one again (a manual sync says so).
    assert executor.functions["netrun-steps"]["steps"]["step"]["retries"] == {"attempts": 2}
    executor.newer_rules.clear()
    assert executor.sync(f"{server.url}/api/inngest")["netrun-steps"]["steps"]["step"]["retries"] == {"attempts": 2}
    assert server.app.state.netrun.catalog.get("steps").spec.function.retries == 2
    assert httpx.post(f"{server.url}/networks/steps/runs", json={"input": "x"}).status_code == 202


def test_a_step_output_over_4_mb_fails_the_run_with_netruns_reason_first(
    tmp_path: Path, llm: FakeLLM, executor: StandInExecutor, served: Callable[..., Served]
) -> None:
    """A step output over 4 MB fails the run with what to change, before Inngest fails it
    with its own error (the stand-in applies the limit too)."""
    llm.set_script([Reply(text="x" * (4 * 1024 * 1024 + 10))])
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    server = served()
    executor.sync(f"{server.url}/api/inngest")
    big = executor.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "x"}})
    assert big.status == "failed"
    assert (
        "the output of step turn.0.worker.infer is" in big.error["message"]
        and "over Inngest's 4,194,304 per step" in big.error["message"]
    )
    assert llm.count == 1  # not retried: the same output every time


def test_a_run_stops_before_its_step_1001_with_netruns_reason() -> None:
    """1,000 steps through the stand-in take minutes (each call replays every step before
    it), so the guard is driven here with the SDK's context shape holding 1,000 memoized
    steps: a new step is refused, a replayed one is not."""
    import hashlib
    from types import SimpleNamespace

    import inngest

    from netrun.engines.inngest_steps import InngestSteps

    done = {hashlib.sha1(f"s{i}".encode()).hexdigest(): {"data": None} for i in range(1000)}
    execution = SimpleNamespace(
        _memos=SimpleNamespace(_memos=done),
        _request=SimpleNamespace(ctx=SimpleNamespace(stack=SimpleNamespace(stack=list(done)))),
    )
    steps = InngestSteps(SimpleNamespace(step=SimpleNamespace(_execution=execution)), "run-1", lambda name: None)  # type: ignore[arg-type]
    steps._within_limits("s999")  # a replay: fine
    with pytest.raises(inngest.NonRetriableError) as refused:
        steps._within_limits("turn.500.worker.infer")
    assert "run run-1 stops before step 1001 (turn.500.worker.infer)" in str(refused.value)
    assert "at most 1,000 steps per run" in str(refused.value)


def test_an_inngest_server_that_is_not_running_is_unreachable_not_a_refusal(
    tmp_path: Path, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK answers a sync with a 500 when it cannot reach Inngest: that is not Inngest
    refusing the files (which would tell the user to fix them); /healthz says unreachable."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    caplog.set_level("INFO", logger="netrun.serve")

    class Nowhere:
        url = nowhere

    server = serve(tmp_path, Nowhere())  # type: ignore[arg-type]
    try:
        _until(lambda: httpx.get(f"{server.url}/healthz").json()["sync"]["status"] != "pending")
        health = httpx.get(f"{server.url}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.json()["sync"]["status"] == "unreachable", health.json()
        assert f"could not reach Inngest ({nowhere})" in health.json()["sync"]["reason"]
        assert not any("fix the network files" in r.getMessage() for r in caplog.records)
    finally:
        server.stop()
