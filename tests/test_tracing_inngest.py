"""Traces of runs served (netrun/tracing), on Inngest, from POST /events and from one run to another. On Inngest
every call replays the run up to its next step; the trace shows each piece of work once, in one trace per run, with the
Inngest run id. The real Inngest SDK serving in-process, driven by the stand-in executor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from netrun import tracing

from .conftest import until
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served
from .test_metrics import FINISH, METERED, REFUND, WORK
from .test_serve_inngest import synced


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def _named(found: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in found if s.name.startswith(prefix)]


def test_an_inngest_run_is_one_trace_and_each_piece_of_work_is_traced_once(
    tmp_path: Path, llm: FakeLLM, spans: InMemorySpanExporter
) -> None:
    llm.set_script([WORK, REFUND, FINISH])
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    parent = "00-" + "5e" * 16 + "-" + "7a" * 8 + "-01"
    with synced(tmp_path) as (executor, server):
        started = httpx.post(
            f"{server.url}/networks/metered/runs", json={"input": "ticket 9"}, headers={"traceparent": parent}, timeout=30
        )
        assert started.status_code < 300, started.text
        run_id = started.json()["run_id"]
        executor.deliver_received()  # the stand-in runs what the server sent it
        (inngest_id,) = [i for i, r in executor.runs.items() if r.status == "waiting"]
        (pending,) = httpx.get(f"{server.url}/runs/{run_id}").json()["approvals"]
        executor.send({"name": "netrun/approval", "data": {"run_id": run_id, "approved": True, "approval_id": pending["id"]}})
        assert executor.runs[inngest_id].status == "completed", executor.runs[inngest_id].error
        calls = len([c for c in executor.requests if c.run_id == inngest_id])
    tracing.shutdown()  # flushes the batch
    found = spans.get_finished_spans()
    mine = [s for s in found if s.context is not None and s.context.trace_id == int("5e" * 16, 16)]
    assert mine and len(mine) == len(found), "every span of the run continues the POST's traceparent"
    workflows = _named(found, "invoke_workflow")
    assert 8 < len(workflows) <= calls  # one per call Inngest made that executed the run
    assert {s.attributes["netrun.inngest_run_id"] for s in workflows if s.attributes} == {inngest_id}
    assert {s.attributes["netrun.run_id"] for s in workflows if s.attributes} == {run_id}
    assert all(s.parent is not None and s.parent.span_id == int("7a" * 8, 16) for s in workflows)
    assert len(_named(found, "chat")) == 3 == llm.count  # replays trace no inference again
    tools = sorted(s.name for s in _named(found, "execute_tool"))
    assert tools == ["execute_tool bump", "execute_tool bump", "execute_tool fails", "execute_tool finish", "execute_tool refund"]
    [failing] = [s for s in found if s.name == "execute_tool fails"]
    assert failing.status.status_code.name == "ERROR"
    for s in _named(found, "chat") + _named(found, "execute_tool"):
        assert s.parent is not None and any(p.context.span_id == s.parent.span_id for p in found if p.context)


def test_an_event_posted_with_a_traceparent_starts_runs_that_continue_it(
    tmp_path: Path, llm: FakeLLM, spans: InMemorySpanExporter, served: Callable[..., Served]
) -> None:
    """POST /events on the local engine: the runs the event starts are children of the
    request's span, and a malformed header is ignored (the run traces on its own)."""
    llm.set_script([WORK, REFUND, WORK, REFUND])  # each run parks at its refund's approval
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    server = served()
    parent = "00-" + "3c" * 16 + "-" + "4d" * 8 + "-01"
    sent = httpx.post(
        f"{server.url}/events", json={"name": "netrun/metered.run", "data": {"input": "x"}}, headers={"traceparent": parent}
    )
    assert sent.status_code == 202, sent.text
    (run_id,) = sent.json()["started"]
    until("the run to wait for its approval", lambda: httpx.get(f"{server.url}/runs/{run_id}").json()["approvals"])
    bad = httpx.post(
        f"{server.url}/events", json={"name": "netrun/metered.run", "data": {"input": "y"}}, headers={"traceparent": "00-zz"}
    )
    assert bad.status_code == 202, bad.text
    (other,) = bad.json()["started"]
    until("the second run to wait", lambda: httpx.get(f"{server.url}/runs/{other}").json()["approvals"])
    tracing.shutdown()
    by_run = {s.attributes["netrun.run_id"]: s for s in _named(spans.get_finished_spans(), "invoke_workflow") if s.attributes}
    first, second = by_run[run_id], by_run[other]
    assert first.context is not None and first.context.trace_id == int("3c" * 16, 16)
    assert first.parent is not None and first.parent.span_id == int("4d" * 8, 16)
    assert second.parent is None and second.context is not None and second.context.trace_id != int("3c" * 16, 16)


SENDER = """\
name: sender
model: {{id: openai/gpt-4o-mini, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
state: {{done: {{type: boolean, default: false}}}}
agents:
  kicker: {{description: kicks, system: "Kick.", tools: [kick, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: kicker}}]
tools:
  kick: {{event: {{name: {event}, data: {{input: child work}}}}}}
  finish: {{state: {{done: true}}}}
"""


def test_a_run_another_run_starts_is_in_its_trace_under_the_call_and_stays_there_when_resumed(
    tmp_path: Path, llm: FakeLLM, spans: InMemorySpanExporter, served: Callable[..., Served]
) -> None:
    """The event tool's run (started in a task that carries the sender's context) continues
    the sending call; its resumed execution (after an approval, in a task of the request
    that answered it) lands in the same trace, under the same call, not in the answerer's."""
    llm.set_script([Reply(tool_calls=[ToolCall("kick", {}), ToolCall("finish", {})]), WORK, REFUND, FINISH])
    (tmp_path / "metered.yaml").write_text(METERED.format(base=llm.base_url))
    (tmp_path / "sender.yaml").write_text(SENDER.format(base=llm.base_url, event="netrun/metered.run"))
    server = served()
    parent = "00-" + "6b" * 16 + "-" + "1f" * 8 + "-01"
    sent = httpx.post(f"{server.url}/networks/sender/runs", json={"input": "go"}, headers={"traceparent": parent})
    assert sent.status_code == 202, sent.text

    def child() -> str | None:
        found = [s for s in spans.get_finished_spans() if s.name == "invoke_workflow metered" and s.attributes]
        return str(found[0].attributes["netrun.run_id"]) if found else None

    child_id = until("the child run to park", child)
    until("its approval", lambda: httpx.get(f"{server.url}/runs/{child_id}").json()["approvals"])
    answerer = "00-" + "9a" * 16 + "-" + "2e" * 8 + "-01"  # the answering request's own trace
    answered = httpx.post(
        f"{server.url}/events",
        json={"name": "netrun/approval", "data": {"run_id": child_id, "approved": True}},
        headers={"traceparent": answerer},
    )
    assert answered.status_code == 202, answered.text
    until("the child to complete", lambda: httpx.get(f"{server.url}/runs/{child_id}").json()["status"] == "completed")
    tracing.shutdown()
    found = spans.get_finished_spans()
    [kick] = [s for s in found if s.name == "execute_tool kick"]
    executions = [s for s in found if s.name == "invoke_workflow metered"]
    assert len(executions) == 2
    assert kick.context is not None and {s.context.trace_id for s in executions if s.context} == {int("6b" * 16, 16)}
    assert all(s.parent is not None and s.parent.span_id == kick.context.span_id for s in executions)


def test_a_run_resumed_by_another_runs_event_stays_in_its_own_trace(
    tmp_path: Path, llm: FakeLLM, spans: InMemorySpanExporter, served: Callable[..., Served]
) -> None:
    """A run started with no trace context is the trace its run id names, whatever span is
    current where it resumes (here: the sending run's call, whose task resumes it)."""
    from netrun.tracing.observer import trace_id_of

    from .test_metrics_waits import ASKING

    llm.set_script([Reply(tool_calls=[ToolCall("ask", {"q": "?"})])])
    (tmp_path / "asking.yaml").write_text(ASKING.format(base=llm.base_url))
    (tmp_path / "sender.yaml").write_text(SENDER.format(base=llm.base_url, event="app/answered"))
    server = served()
    waiting = httpx.post(f"{server.url}/networks/asking/runs", json={"input": "x"}).json()["run_id"]
    until("the run to wait", lambda: httpx.get(f"{server.url}/runs/{waiting}").json()["status"] == "waiting")
    llm.set_script([Reply(tool_calls=[ToolCall("kick", {}), ToolCall("finish", {})]), Reply(tool_calls=[ToolCall("finish", {})])])
    parent = "00-" + "6b" * 16 + "-" + "1f" * 8 + "-01"
    assert httpx.post(f"{server.url}/networks/sender/runs", json={"input": "go"}, headers={"traceparent": parent}).is_success
    until("the waiting run to complete", lambda: httpx.get(f"{server.url}/runs/{waiting}").json()["status"] == "completed")
    tracing.shutdown()
    executions = [s for s in spans.get_finished_spans() if s.name == "invoke_workflow asking"]
    assert len(executions) == 2
    assert {s.context.trace_id for s in executions if s.context} == {trace_id_of(waiting)}
    assert all(s.parent is None for s in executions)
