"""``POST /runs/{id}/cancel`` and ``/retry`` on Inngest, driven by the stand-in executor over
real HTTP: the cancel is Inngest's own (every function cancels on ``netrun/run.cancel``
naming the run), recorded in the journal and told to the run's stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .fakes.inngest_executor import StandInExecutor
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served
from .test_serve_inngest import HELPDESK, MODEL, serve

ASK = Reply(text="asking", tool_calls=[ToolCall("ask_human", {"question": "which?"})])

# A second network on the same event: a cancel of one run must leave the other's alone.
TWIN = """\
name: twin
model: MODEL
max_iter: 4
trigger: {{event: app/ticket.created, input: "{{{{ event.data.title }}}}"}}
agents:
  agent: {{description: helps, system: "Twin {{{{ input }}}}", tools: [ask_human]}}
router:
  rules: [{{if: "true", agent: agent}}]
tools:
  ask_human:
    wait_for_event: {{event: app/human.answered, match: data.user, timeout: 4h}}
    parameters: {{question: {{type: string}}}}
""".replace("MODEL", MODEL)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[StandInExecutor, FakeLLM, Served]]:
    with StandInExecutor() as executor, FakeLLM([], fallback=lambda request: ASK) as llm:
        (tmp_path / "helpdesk.yaml").write_text(HELPDESK.format(base=llm.base_url))
        (tmp_path / "twin.yaml").write_text(TWIN.format(base=llm.base_url))
        server = serve(tmp_path, executor)
        try:
            executor.sync(f"{server.url}/api/inngest")
            yield executor, llm, server
        finally:
            server.stop()


def _run(server: Served, run_id: str) -> dict[str, Any]:
    return httpx.get(f"{server.url}/runs/{run_id}").json()  # type: ignore[no-any-return]


def _inngest_run(executor: StandInExecutor, run_id: str) -> Any:
    """The executor's run for netrun's run id (a REST-started run carries it in its event)."""
    for run in executor.runs.values():
        if run.id == run_id or (run.event["data"].get("_netrun") or {}).get("run_id") == run_id:
            return run
    raise AssertionError(f"no Inngest run for {run_id}")


def test_every_function_cancels_on_netruns_event_as_inngest_checks_it(setup: tuple[StandInExecutor, FakeLLM, Served]) -> None:
    executor, _, _ = setup
    helpdesk = executor.functions["netrun-helpdesk"]
    assert helpdesk["cancel"][0] == {"event": "app/ticket.closed", "if": "async.data.id == event.data.id"}  # the YAML's first
    assert helpdesk["cancel"][1] == {
        "event": "netrun/run.cancel",
        "if": 'async.data.network == "helpdesk" && (async.data.run_id == event.data._netrun.run_id '
        "|| async.data.event_id == event.id)",
    }
    assert executor.functions["netrun-twin"]["cancel"][0]["event"] == "netrun/run.cancel"  # no function: in its YAML


def test_a_rest_started_run_is_cancelled_on_inngest_and_in_the_journal(setup: tuple[StandInExecutor, FakeLLM, Served]) -> None:
    executor, llm, server = setup
    started = httpx.post(
        f"{server.url}/networks/helpdesk/runs", json={"data": {"tier": "pro", "title": "Refund", "user": "ann", "id": 1}}
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    executor.deliver_received()
    assert _run(server, run_id)["status"] == "waiting"
    assert _inngest_run(executor, run_id).status == "waiting"
    # the twin network started on the same event: its run must survive this cancel
    (twin,) = [r for r in executor.runs.values() if r.fn_id == "netrun-twin"]
    answer = httpx.post(f"{server.url}/runs/{run_id}/cancel")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"run_id": run_id, "status": "cancelled", "network": "helpdesk"}
    assert executor.events[-1]["name"] == "netrun/run.cancel"
    executor.deliver_received()
    assert _inngest_run(executor, run_id).status == "cancelled"  # Inngest ended it, not only netrun's record
    assert twin.status == "waiting"
    record = _run(server, run_id)
    assert record["status"] == "cancelled" and record["error"] == "cancelled through the REST API"
    asked = llm.count
    executor.send({"name": "app/human.answered", "data": {"user": "ann", "answer": "late"}})
    assert llm.count == asked + 1  # only the twin went on; the cancelled run asked nothing more
    assert _run(server, run_id)["status"] == "cancelled"
    again = httpx.post(f"{server.url}/runs/{run_id}/cancel")
    assert again.status_code == 409 and "is cancelled: only a run that has not ended" in again.json()["detail"]
    assert httpx.post(f"{server.url}/runs/nope/cancel").status_code == 404
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", timeout=10) as stream:  # the stream ends
        text = "".join(stream.iter_text())
    assert "run.cancelled" in text or "run.interrupted" in text, text


def test_an_event_started_run_is_cancelled_by_its_event_id_alone(setup: tuple[StandInExecutor, FakeLLM, Served]) -> None:
    executor, _, server = setup
    started = executor.send({"name": "app/ticket.created", "data": {"tier": "pro", "title": "T", "user": "bob", "id": 2}})
    by_fn = {executor.runs[r].fn_id: r for r in started}
    helpdesk, twin = by_fn["netrun-helpdesk"], by_fn["netrun-twin"]
    assert _run(server, helpdesk)["status"] == "waiting"  # netrun tracks it by Inngest's run id
    answer = httpx.post(f"{server.url}/runs/{helpdesk}/cancel")
    assert answer.status_code == 202, answer.text
    executor.deliver_received()
    assert executor.runs[helpdesk].status == "cancelled"
    assert executor.runs[twin].status == "waiting"  # same event, another network: untouched
    assert _run(server, twin)["status"] == "waiting"


def test_a_cancel_entry_of_the_yaml_marks_the_run_cancelled(setup: tuple[StandInExecutor, FakeLLM, Served]) -> None:
    executor, _, server = setup
    started = executor.send({"name": "app/ticket.created", "data": {"tier": "pro", "title": "T", "user": "cy", "id": 3}})
    (helpdesk,) = [r for r in started if executor.runs[r].fn_id == "netrun-helpdesk"]
    executor.send({"name": "app/ticket.closed", "data": {"id": 3}})
    assert executor.runs[helpdesk].status == "cancelled"
    record = _run(server, helpdesk)
    assert record["status"] == "cancelled" and record["error"] == "cancelled by Inngest: function cancelled", record


def test_retry_on_inngest_says_why_it_cannot(setup: tuple[StandInExecutor, FakeLLM, Served]) -> None:
    executor, _, server = setup
    (broken,) = [
        r
        for r in executor.send({"name": "app/ticket.created", "data": {"tier": "pro", "user": "dee", "id": 4}})
        if executor.runs[r].fn_id == "netrun-helpdesk"
    ]  # no title: the input template fails the run
    assert _run(server, broken)["status"] == "failed"
    refused = httpx.post(f"{server.url}/runs/{broken}/retry")
    assert refused.status_code == 409
    assert "executes on Inngest, which has no API to run a failed run again" in refused.json()["detail"]
    (waiting,) = [
        r
        for r in executor.send({"name": "app/ticket.created", "data": {"tier": "pro", "title": "T", "user": "ed", "id": 5}})
        if executor.runs[r].fn_id == "netrun-helpdesk"
    ]
    refused = httpx.post(f"{server.url}/runs/{waiting}/retry")
    assert (
        refused.status_code == 409
        and refused.json()["detail"] == f"run {waiting} is waiting, not failed: only a failed run can be retried"
    )


def test_four_cancel_entries_and_netruns_one_are_what_inngest_takes(tmp_path: Path) -> None:
    """netrun adds one cancel entry: four of the YAML's still sync (Inngest takes five)."""
    stops = "".join(f"    - {{event: app/stop{i}}}\n" for i in range(4))
    with StandInExecutor() as executor, FakeLLM([]) as llm:
        (tmp_path / "twin.yaml").write_text(TWIN.format(base=llm.base_url) + "function:\n  cancel:\n" + stops)
        server = serve(tmp_path, executor)
        try:
            functions = executor.sync(f"{server.url}/api/inngest")
        finally:
            server.stop()
    assert [c["event"] for c in functions["netrun-twin"]["cancel"]] == [*(f"app/stop{i}" for i in range(4)), "netrun/run.cancel"]


def test_a_run_inngest_has_not_started_yet_is_listed_queued_and_cancelled(
    setup: tuple[StandInExecutor, FakeLLM, Served],
) -> None:
    executor, llm, server = setup
    started = httpx.post(f"{server.url}/networks/twin/runs", json={"input": "hi", "thread_id": "th-q", "user": "qa"})
    run_id = started.json()["run_id"]
    record = _run(server, run_id)  # before Inngest called the function at all
    assert record["status"] == "queued" and record["input"] == "hi", record
    (listed,) = httpx.get(f"{server.url}/runs", params={"status": "queued"}).json()["runs"]
    assert listed["run_id"] == run_id and listed["thread_id"] == "th-q" and listed["user"] == "qa"
    assert httpx.post(f"{server.url}/runs/{run_id}/cancel").status_code == 202
    # The stand-in executes the start before it sees the cancel (Inngest may be as late):
    # the function finds the run cancelled in the journal and starts no step.
    executor.deliver_received()
    ran = _inngest_run(executor, run_id)
    assert ran.status == "failed" and ran.error["message"] == "cancelled through the REST API", ran.error
    assert llm.count == 0
    assert _run(server, run_id)["status"] == "cancelled"  # the end Inngest reports changes nothing
