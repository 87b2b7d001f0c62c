"""A run's stream (AgentKit's chunks) is journaled with it: ``GET /runs/{id}/events``
replays it after a restart, numbers its chunks (``id:`` = ``sequenceNumber``) and resumes
after ``Last-Event-ID``; its bytes are bounded.

Real ``netrun serve`` (uvicorn in a thread, restarted on the same data directory), the fake
OpenAI-compatible model server through litellm, a real SSE client (httpx).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.engines.local import Journal
from netrun.runtime.approvals import approval_id
from netrun.serve.run_events import RunEvents
from netrun.serve.settings import ServeSettings

from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served

OPS = """\
name: ops
model: {{id: openai/fake, api_base: "{llm}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
state:
  last: {{type: string}}
agents:
  ops: {{description: runs commands, system: "Run {{{{ input }}}}", tools: [shell]}}
router:
  rules: [{{if: "call_count >= 1 or last_output", stop: true}}, {{if: "true", agent: ops}}]
tools:
  shell:
    description: Run a shell command on the production host.
    parameters: {{cmd: {{type: string}}}}
    approval: {{timeout: 1h}}
    state: {{last: "{{{{ args.cmd }}}}"}}
"""

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
APPROVAL = "netrun/approval"
STEP = "turn.0.ops.tool.0.shell"
Event = tuple[str | None, dict[str, Any]]
"""An SSE event: its ``id:`` (None when it has none) and its data."""


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM([]) as server:
        yield server


def read_sse(response: httpx.Response) -> Iterator[Event]:
    """The events of an SSE response as the EventSource algorithm reads them."""
    ident: str | None = None
    data: str | None = None
    kind: str | None = None
    for line in response.iter_lines():
        if not line:
            if data is not None:
                event = json.loads(data)
                assert event["event"] == kind and event["id"] == f"publish-{event['sequenceNumber']}:{kind}"
                yield ident, event
            ident = data = kind = None
        elif line.startswith("id:"):
            ident = line.partition(":")[2].strip()
        elif line.startswith("event:"):
            kind = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data = line.partition(":")[2]


def stream(
    url: str,
    run_id: str,
    until: Callable[[list[Event]], bool] | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    timeout: float = 10,
) -> list[Event]:
    """The run's events until the stream ends (or ``until`` holds); a server that sends
    nothing within ``timeout`` fails the read (its keep-alive pings come every 15 s)."""
    seen: list[Event] = []
    with httpx.stream("GET", f"{url}/runs/{run_id}/events{query}", headers=headers or {}, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        for event in read_sse(response):
            seen.append(event)
            if until is not None and until(seen):
                break
    return seen


def wait_status(url: str, run_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = httpx.get(f"{url}/runs/{run_id}", timeout=30).json()
        if run["status"] == status:
            return run  # type: ignore[no-any-return]
        assert run["status"] not in ("failed", "completed"), run
        assert time.monotonic() < deadline, f"run {run_id} is {run['status']}, not {status}"
        time.sleep(0.05)


def start(url: str, text: str = "the cleanup") -> str:
    answer = httpx.post(f"{url}/networks/ops/runs", json={"input": text}, timeout=30)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["run_id"])


def approve(url: str, run_id: str) -> None:
    answered = httpx.post(
        f"{url}/events",
        json={
            "name": APPROVAL,
            "run_id": run_id,
            "data": {"run_id": run_id, "approved": True, "approval_id": approval_id(run_id, STEP)},
        },
        timeout=30,
    )
    assert answered.status_code == 202, answered.text


def kinds(events: list[Event]) -> list[str]:
    return [e["event"] for _, e in events]


def gated_run(tmp_path: Path, llm: FakeLLM, served: Callable[..., Served], **env: str) -> tuple[Served, str]:
    """A run waiting for the approval of its one call (``rm -rf /tmp/x``)."""
    llm.set_script([Reply(text="cleaning", tool_calls=[ToolCall("shell", {"cmd": "rm -rf /tmp/x"})])])
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=llm.base_url))
    server = served(**env)
    run_id = start(server.url)
    wait_status(server.url, run_id, "waiting")
    return server, run_id


def test_a_completed_run_streams_its_whole_history_after_a_restart(
    tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]
) -> None:
    server, run_id = gated_run(tmp_path, llm, served)
    approve(server.url, run_id)
    wait_status(server.url, run_id, "completed")
    before = stream(server.url, run_id)
    names = kinds(before)
    assert names[0] == "run.started" and names[-2:] == ["run.completed", "stream.ended"]
    for kind in ("part.created", "part.completed", "hitl.requested", "hitl.resolved", "tool_call.output.delta"):
        assert kind in names, names
    ids = [int(i) for i, _ in before if i is not None]
    assert len(ids) == len(before) and ids == sorted(set(ids)), f"every event is numbered, in order: {ids}"
    server.restart()
    assert stream(server.url, run_id) == before  # the same events, the same numbers


def test_a_waiting_run_streams_its_pending_approval_after_a_restart(
    tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]
) -> None:
    """The dashboard's case: after a deploy, the pending approval is still on the stream
    (and the stream then follows the run live, to its end, with no number repeated)."""
    server, run_id = gated_run(tmp_path, llm, served)
    server.restart()
    wait_status(server.url, run_id, "waiting")
    seen: list[Event] = []
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", timeout=10) as response:
        for ident, event in read_sse(response):
            seen.append((ident, event))
            if event["event"] == "hitl.requested":
                assert event["data"]["requestId"] == approval_id(run_id, STEP)
                assert event["data"]["toolCalls"][0]["toolInput"] == {"cmd": "rm -rf /tmp/x"}
                approve(server.url, run_id)  # answered while watching: the rest arrives live
    names = kinds(seen)
    assert names[0] == "run.started" and "hitl.requested" in names and names[-1] == "stream.ended"
    ids = [int(i) for i, _ in seen if i is not None]
    assert len(ids) == len(seen) and ids == sorted(set(ids)), ids
    assert stream(server.url, run_id) == seen  # the live part was journaled as it went


def test_last_event_id_resumes_exactly_after_that_event(tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]) -> None:
    server, run_id = gated_run(tmp_path, llm, served)
    waiting = stream(server.url, run_id, until=lambda seen: seen[-1][1]["event"] == "hitl.requested")
    # Reconnect after each event seen so far, as an EventSource does: by header, or by query.
    for n, (ident, _) in enumerate(waiting):
        assert ident is not None
        rest = (
            stream(
                server.url,
                run_id,
                until=lambda seen, n=n: len(seen) == len(waiting) - n - 1 or seen[-1][1]["event"] == "hitl.requested",
                headers={"Last-Event-ID": ident},
            )
            if n < len(waiting) - 1
            else []
        )
        assert rest == waiting[n + 1 :]
    by_query = stream(
        server.url,
        run_id,
        until=lambda seen: seen[-1][1]["event"] == "hitl.requested",
        query=f"?last_event_id={waiting[0][0]}",
    )
    assert by_query == waiting[1:]
    # Across the replay/live boundary: resume after the approval request, then the rest is live.
    last = waiting[-1][0]
    assert last is not None
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", headers={"Last-Event-ID": last}, timeout=10) as response:
        approve(server.url, run_id)
        live = list(read_sse(response))
    whole = stream(server.url, run_id)
    assert kinds(live)[-1] == "stream.ended"
    assert waiting + live == whole  # no gap, no repeat
    assert (
        stream(server.url, run_id, headers={"Last-Event-ID": str(whole[-1][0])}) == []
    )  # nothing after the end... (ends at once)
    assert httpx.get(f"{server.url}/runs/{run_id}/events", headers={"Last-Event-ID": "nope"}).status_code == 400
    # Numbers past SQLite's 64-bit integers: a 400 (was a 200 whose stream broke on the query).
    for huge in ("9" * 30, str(2**63)):
        answer = httpx.get(f"{server.url}/runs/{run_id}/events", headers={"Last-Event-ID": huge})
        assert answer.status_code == 400 and "from 0 to" in answer.json()["detail"], answer.text


BIG = """\
name: big
model: {{id: openai/fake, api_base: "{llm}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 2
agents:
  writer: {{description: writes, system: "Write {{{{ input }}}}"}}
router:
  rules: [{{if: last_output, stop: true}}, {{if: "true", agent: writer}}]
"""


def test_journaled_events_stay_within_the_runs_byte_budget(tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]) -> None:
    """Many runs with large replies: each run's journaled events stay within
    NETRUN_EVENTS_MAX_BYTES plus its end event, and the bus keeps none of them in memory."""
    reply = "word " * 60_000  # 300 KB
    budget = 50_000
    llm.set_script([Reply(text=reply)] * 12)
    (tmp_path / "big.yaml").write_text(BIG.format(llm=llm.base_url))
    server = served(NETRUN_EVENTS_MAX_BYTES=str(budget))
    runs = [str(httpx.post(f"{server.url}/networks/big/runs", json={"input": f"essay {n}"}).json()["run_id"]) for n in range(12)]
    for run_id in runs:
        wait_status(server.url, run_id, "completed")
    bus: RunEvents = server.app.state.netrun.events
    assert bus.held_bytes() == 0
    journal = Journal(tmp_path / "data" / "runs.db")
    try:
        for run_id in runs:
            chunks = dict(journal.events(run_id))
            ends = [
                c for c in chunks.values() if c["event"] in ("run.completed", "stream.ended") and c["data"]["scope"] == "network"
            ]
            assert ends[0]["data"]["result"]["output"] == reply  # the end is kept whole
            assert journal.events_bytes(run_id) <= budget + sum(len(json.dumps(c).encode()) for c in ends)
            text = next(c for c in chunks.values() if c["event"] == "part.completed" and c["data"]["type"] == "text")
            assert text["data"]["truncated"] is True and "[truncated: 300000 characters]" in text["data"]["finalContent"]
    finally:
        journal.close()
    replayed = kinds(stream(server.url, runs[-1]))
    assert replayed[:4] == ["run.started", "run.started", "part.created", "part.completed"], replayed  # no 300 KB delta
    assert replayed[-1] == "stream.ended"


def test_a_slow_subscriber_holds_bounded_memory_and_catches_up_from_the_journal(tmp_path: Path) -> None:
    """The bus queues at most ``queue_bytes`` for a subscriber that does not read; past that
    it drops the queue, and the subscriber re-reads the journal: no event lost, none twice."""
    journal = Journal(tmp_path / "runs.db")
    bus = RunEvents(journal, run_bytes=10_000_000, queue_bytes=100_000)

    async def scenario() -> list[tuple[int | None, dict[str, Any]]]:
        bus.emit("run.started", {"run_id": "r", "network": "n", "replayed": False})
        reader = bus.stream("r")
        got = [(await anext(reader))[:2]]
        for n in range(40):  # 40 x 10 KB (three chunks each) while the reader reads nothing
            bus.emit("tool.result", {"run_id": "r", "step": f"s{n}", "tool": "t", "result": "x" * 10_000, "replayed": False})
            assert bus.held_bytes() <= 100_000
        bus.emit("agent.started", {"run_id": "r", "iteration": 0, "agent": "a", "replayed": False})
        for n in range(5):  # the model's text, written in one batch with the next chunk
            bus.emit("text.delta", {"run_id": "r", "caller": "a", "text": f"d{n}", "replayed": False})
        bus.emit("run.completed", {"run_id": "r", "result": {"output": "ok"}, "replayed": False})
        got += [(d.cursor, d.chunk) async for d in reader]
        return got

    try:
        got = asyncio.run(scenario())
        assert [seq for seq, _ in got] == list(range(1, 131))
        tool = ["part.created", "tool_call.output.delta", "part.completed"]
        text = ["run.started", "part.created"] + ["text.delta"] * 5
        assert [e["event"] for _, e in got] == ["run.started"] + tool * 40 + text + ["run.completed", "stream.ended"]
        outputs = [e["data"]["finalContent"] for _, e in got if e["event"] == "part.completed"]
        assert outputs == [{"data": "x" * 10_000}] * 40
        assert bus.held_bytes() == 0
        # A later process continues the numbering and knows what was reported once.
        again = RunEvents(journal)
        again.emit("tool.result", {"run_id": "r", "step": "s0", "tool": "t", "result": "again", "replayed": False})
        resolved = {"step": "s9", "approval_id": "a9", "tool": "t", "resolution": "approved", "reason": None, "by": "ana"}
        again.emit("approval.resolved", {"run_id": "r", **resolved, "replayed": False})
        assert [(seq, c["event"]) for seq, c in journal.events("r", 130)] == [(131, "hitl.resolved")]
    finally:
        journal.close()


def test_the_events_budget_is_a_setting_with_a_checked_value(tmp_path: Path) -> None:
    from netrun.serve.settings import SettingsError

    assert ServeSettings.from_env({}, (tmp_path,), engine="local").events_max_bytes == 4_000_000
    assert ServeSettings.from_env({"NETRUN_EVENTS_MAX_BYTES": "200000"}, (tmp_path,), engine="local").events_max_bytes == 200_000
    for bad in ("lots", "-5", "100"):
        with pytest.raises(SettingsError, match="NETRUN_EVENTS_MAX_BYTES"):
            ServeSettings.from_env({"NETRUN_EVENTS_MAX_BYTES": bad}, (tmp_path,), engine="local")


def test_a_thread_or_user_stream_reads_only_the_chunks_after_its_cursor(tmp_path: Path) -> None:
    """Regression: the read by thread or user found every chunk of every run of the thread
    (then filtered by the cursor), on every connect; the index on run_id seeks past it."""
    from netrun.engines.local import Journal

    journal = Journal(tmp_path / "runs.db")
    queries: list[str] = []
    journal.db.set_trace_callback(queries.append)
    journal.scope_events("user", "ann", after=10)
    journal.db.set_trace_callback(None)
    (sql,) = [q for q in queries if "run_events" in q]
    plan = " ".join(str(row[3]) for row in journal.db.execute("EXPLAIN QUERY PLAN " + sql))
    journal.close()
    assert "rowid>?" in plan.replace(" ", ""), plan
