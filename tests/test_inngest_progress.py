"""Progress events of a run on Inngest: each reported exactly once, whatever order and
concurrency Inngest uses. The stand-in runs a turn's tool calls as concurrent planned calls
(separate queue items, one state snapshot) and handles their answers in either order; the
discovery call after them is the first to see both outcomes."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.runtime import agentkit_stream as ak
from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings

from .fakes.inngest_executor import StandInExecutor, step_hash
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served
from .test_serve_local import sse

NETWORK = """\
name: chat
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 4
state: {{done: {{type: boolean, default: false}}, notes: {{type: integer, default: 0}}}}
agents:
  helper: {{description: helps, system: "Be brief.", tools: [note, done]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: helper}}]
tools:
  note: {{parameters: {{text: {{type: string}}}}, state: {{notes: "{{{{ state.notes + 1 }}}}"}}}}
  done: {{state: {{done: true}}}}
"""

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
KEYS = {
    "routed": "iteration",
    "agent.started": "iteration",
    "agent.finished": "iteration",
    "tool.called": "step",
    "tool.result": "step",
}


@pytest.fixture(params=["planned", "reversed"])
def executor(request: pytest.FixtureRequest) -> Iterator[StandInExecutor]:
    with StandInExecutor(parallel_order=request.param) as ex:
        yield ex


@pytest.fixture
def server(tmp_path: Path, executor: StandInExecutor) -> Iterator[Served]:
    script = [
        Reply(text="two notes", tool_calls=[ToolCall("note", {"text": "a"}), ToolCall("note", {"text": "b"})]),
        Reply(text="finished", tool_calls=[ToolCall("done", {})]),
    ]
    with FakeLLM(script) as llm:
        (tmp_path / "chat.yaml").write_text(NETWORK.format(base=llm.base_url))
        environ = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")}
        environ |= {**ENV, "INNGEST_DEV": "1", "INNGEST_API_BASE_URL": executor.url, "INNGEST_EVENT_API_BASE_URL": executor.url}
        with Served(
            lambda port: create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=port))
        ) as served:
            executor.sync(f"{served.url}/api/inngest")
            yield served


def events_of(server: Served, run_id: str) -> list[dict[str, Any]]:
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", timeout=30) as response:
        return list(sse(response))


def reported(chunks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What the run's chunks report, as (what, which): a turn's start and end by its
    iteration, a tool call and its outcome by its step (read back from AgentKit's ids)."""
    turns: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for c in chunks:
        event, d = c["event"], c["data"]
        if event == "run.started" and d["scope"] == "agent":
            turns[d["messageId"]] = str(d["metadata"]["routing"]["iteration"])
            out.append(("agent.started", turns[d["messageId"]]))
        elif event == "run.completed" and d["scope"] == "agent":
            out.append(("agent.finished", turns[d["messageId"]]))
        elif event == "part.created" and d["type"] in ("tool-call", "tool-output"):
            out.append(("tool.called" if d["type"] == "tool-call" else "tool.result", str(ak.step_of(d["partId"]))))
        elif event == "netrun.routed":
            out.append(("routed", str(d["iteration"])))
        else:
            out.append((f"{event}/{d.get('scope', '')}", ""))
    return out


def check_sequence(events: list[dict[str, Any]]) -> None:
    order = reported(events)
    kinds = Counter(kind for kind, _ in order)
    assert kinds["run.started/network"] == 1 and kinds["run.completed/network"] == 1 and events[-1]["event"] == "stream.ended"
    assert kinds["routed"] == 1  # the stop (the turns' routing rides in their run.started)
    assert kinds["agent.started"] == 2 and kinds["agent.finished"] == 2
    assert kinds["tool.called"] == 3 and kinds["tool.result"] == 3
    keyed = Counter(item for item in order if item[0] in KEYS)
    assert set(keyed.values()) == {1}, keyed
    for n in ("0", "1"):
        assert order.index(("agent.started", n)) < order.index(("agent.finished", n))
    for kind, step in order:
        if kind == "tool.result":
            turn = step.split(".")[1]
            assert order.index(("tool.called", step)) < order.index(("tool.result", step)) < order.index(("agent.finished", turn))
    assert sorted(step for kind, step in order if kind == "tool.result") == [
        "turn.0.helper.tool.0.note",
        "turn.0.helper.tool.1.note",
        "turn.1.helper.tool.0.done",
    ]


def test_a_rest_run_with_a_thread_reports_each_turn_and_tool_call_once(server: Served, executor: StandInExecutor) -> None:
    started = httpx.post(f"{server.url}/networks/chat/runs", json={"input": "take notes", "thread_id": "t1"}).json()
    [fn_run] = executor.deliver_received()
    run = executor.runs[fn_run]
    assert run.status == "completed", run.error
    # The two note calls ran as concurrent planned calls, neither seeing the other's output.
    planned = [c for c in executor.requests if c.run_id == fn_run and c.step_id != "step"]
    hashes = {step_hash(f"turn.0.helper.tool.{i}.note") for i in (0, 1)}
    assert {c.step_id for c in planned} == hashes and all(c.disable_immediate_execution for c in planned)
    assert all(not (set(c.body["steps"]) & hashes) for c in planned if c.body is not None)
    events = events_of(server, started["run_id"])
    check_sequence(events)


def test_a_run_without_a_thread_reports_each_tool_result_of_a_parallel_turn_once(
    server: Served, executor: StandInExecutor
) -> None:
    [fn_run] = executor.send({"name": "netrun/chat.run", "data": {"input": "take notes"}})
    run = executor.runs[fn_run]
    assert run.status == "completed", run.error
    check_sequence(events_of(server, fn_run))  # an event's run is known by Inngest's run id
