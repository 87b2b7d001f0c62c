"""The chunks netrun streams are AgentKit's: checked by AgentKit's own package, in Node.

Real runs of the examples and of small networks (a tool call, an approval approved and one
denied, a wait answered, a failure, a cancellation: the scenarios of
tests/test_event_protocol.py) on the local engine; their events go through the real bus
(:class:`netrun.serve.run_events.RunEvents`, journaled in SQLite) and the journaled chunks
are checked by tests/node/check_chunks.mjs against ``AgentMessageChunkSchema`` (zod) and,
as typed literals compiled by ``tsc --noEmit --strict``, the event-specific types of
``@inngest/agent-kit`` 0.13.2 (npm, installed by ``npm ci``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from netrun.engines.local import Journal
from netrun.runtime import agentkit_stream as ak
from netrun.serve.run_events import RunEvents

from .conftest import REPO
from .test_event_protocol import SCENARIOS, Emitted

NODE = shutil.which("node")
CHECK = REPO / "tests" / "node" / "check_chunks.mjs"
needs_node = pytest.mark.skipif(
    NODE is None
    or not (REPO / "node_modules" / "@inngest" / "agent-kit").is_dir()
    or not (REPO / "node_modules" / "typescript").is_dir(),
    reason="needs node and `npm ci` (@inngest/agent-kit, typescript)",
)


def through_the_bus(journal: Journal, emitted: Emitted) -> dict[str, list[dict[str, Any]]]:
    """The chunks the bus journals for these events, by run (in the order runs started)."""
    bus = RunEvents(journal)
    for kind, data in emitted:
        bus.emit(kind, data)
    runs = dict.fromkeys(str(data["run_id"]) for _, data in emitted)
    return {run_id: [chunk for _, chunk in bus.history(run_id)] for run_id in runs}


@pytest.fixture(scope="module")
def chunks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per scenario, per run, the journaled chunks."""
    journal = Journal(tmp_path_factory.mktemp("bus") / "runs.db")
    try:
        return {name: through_the_bus(journal, scenario(tmp_path_factory.mktemp("run"))) for name, scenario in SCENARIOS.items()}
    finally:
        journal.close()


def check(tmp_path: Path, chunks: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "chunks.json"
    path.write_text(json.dumps(chunks), encoding="utf-8")
    assert NODE is not None
    return subprocess.run(
        [NODE, str(CHECK), str(path), str(tmp_path / "ts")], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@needs_node
def test_every_chunk_of_the_examples_passes_agentkits_schema_and_types(
    tmp_path: Path, chunks: dict[str, dict[str, list[dict[str, Any]]]]
) -> None:
    every = [c for runs in chunks.values() for run in runs.values() for c in run]
    done = check(tmp_path, every)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["chunks"] == len(every)
    seen = Counter(c["event"] for c in every)
    for event in (
        "run.started",
        "part.created",
        "text.delta",
        "tool_call.arguments.delta",
        "tool_call.output.delta",
        "part.completed",
        "hitl.requested",
        "hitl.resolved",
        "usage.updated",
        "run.completed",
        "run.failed",
        "run.interrupted",
        "stream.ended",
        "netrun.waiting",
        "netrun.routed",
    ):
        assert seen[event], f"no scenario produced {event}: {sorted(seen)}"
    assert report["typed"] == sum(n for e, n in seen.items() if not e.startswith("netrun."))


@needs_node
def test_the_node_check_fails_on_a_chunk_agentkit_would_not_accept(
    tmp_path: Path, chunks: dict[str, dict[str, list[dict[str, Any]]]]
) -> None:
    run = next(iter(chunks["approved"].values()))
    part = next(c for c in run if c["event"] == "part.created")
    wrong = {**part, "data": {**part["data"], "type": "texty"}}
    extra = {**run[0], "data": {**run[0]["data"], "routing": "not a field of run.started"}}
    done = check(tmp_path, [wrong, extra, {**run[0], "timestamp": "now"}])
    assert done.returncode == 1
    assert '"texty"' in done.stderr and "'\"routing\"' does not exist" in done.stderr
    assert "timestamp" in done.stderr


def test_every_run_stream_is_whole_and_ends_once(chunks: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for name, runs in chunks.items():
        for run_id, run in runs.items():
            assert [c["sequenceNumber"] for c in run] == list(range(1, len(run) + 1)), (name, run_id)
            assert run[0]["event"] == "run.started" and run[0]["data"]["runId"] == run_id
            assert run[-1]["event"] == "stream.ended" and [c["event"] for c in run].count("stream.ended") == 1
            created = [c["data"]["partId"] for c in run if c["event"] == "part.created"]
            completed = [c["data"]["partId"] for c in run if c["event"] == "part.completed"]
            assert len(created) == len(set(created)) and sorted(created) == sorted(completed), (name, run_id)
            for c in run:  # every delta belongs to a part created before it
                if c["event"].endswith(".delta"):
                    assert c["data"]["partId"] in created[: created.index(c["data"]["partId"]) + 1]


def test_an_approval_names_the_tool_call_part_it_gates(chunks: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for name, decided in (("approved", "approved"), ("denied", "denied")):
        run = next(iter(chunks[name].values()))
        (request,) = [c["data"] for c in run if c["event"] == "hitl.requested"]
        (resolved,) = [c["data"] for c in run if c["event"] == "hitl.resolved"]
        calls = {c["data"]["partId"]: c["data"] for c in run if c["event"] == "part.created" and c["data"]["type"] == "tool-call"}
        (gated,) = request["toolCalls"]
        assert calls[gated["partId"]]["metadata"]["toolName"] == gated["toolName"] == "refund"
        assert gated["toolInput"] == {"order": "A1"}
        assert resolved["requestId"] == request["requestId"] and resolved["resolution"] == decided
        assert resolved.get("approvedTools") == (["refund"] if decided == "approved" else None)
    denied = next(c["data"] for c in next(iter(chunks["denied"].values())) if c["event"] == "hitl.resolved")
    assert denied["reason"] == "too large"


def clockless(runs: dict[str, list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The chunks without what carries the clock (when they were sent, when an approval expires)."""
    clock = ("resolvedAt", "expiresAt")
    return [
        [{**c, "timestamp": 0, "data": {k: v for k, v in c["data"].items() if k not in clock}} for c in run]
        for run in runs.values()
    ]


def test_ids_are_the_same_on_a_second_report_and_after_a_restart(tmp_path: Path) -> None:
    """A second Inngest call of the same run, or a process that takes a run over, names the
    same messages and parts; a text part opened before the restart is completed, not
    created again; the run's thread survives the restart (from the journal)."""
    emitted = SCENARIOS["approved"](tmp_path / "run")
    fresh = [(k, d) for k, d in emitted if not d["replayed"]]
    first = through_the_bus(Journal(tmp_path / "a.db"), fresh)
    second = through_the_bus(Journal(tmp_path / "b.db"), fresh)
    assert clockless(first) == clockless(second)

    run_id, journal = "r1", Journal(tmp_path / "c.db")
    started = {"network": "n", "input": "hi", "definition_hash": "h", "thread_id": "t1", "user": "ann"}
    before = RunEvents(journal)
    before.emit("run.started", {"run_id": run_id, **started, "replayed": False})
    before.emit("agent.started", {"run_id": run_id, "iteration": 0, "agent": "a", "replayed": False})
    before.emit("text.delta", {"run_id": run_id, "caller": "a", "text": "Hel", "replayed": False})
    before.flush()
    after = RunEvents(journal)  # a new process: nothing of the run in memory
    after.emit("text.delta", {"run_id": run_id, "caller": "a", "text": "lo", "replayed": False})
    finished = {"iteration": 0, "agent": "a", "text": "Hello", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    after.emit("agent.finished", {"run_id": run_id, **finished, "replayed": False})
    after.emit("agent.finished", {"run_id": run_id, **finished, "replayed": False})  # a second call's report
    run = [c for _, c in journal.events(run_id)]
    assert [c["event"] for c in run] == [
        "run.started",
        "run.started",
        "part.created",
        "text.delta",
        "text.delta",
        "part.completed",
        "usage.updated",
        "run.completed",
    ]
    assert {c["data"]["partId"] for c in run[2:6]} == {ak.text_part(run_id, 0)}
    assert all(c["data"]["threadId"] == "t1" and c["data"]["userId"] == "ann" for c in run)
    assert run[5]["data"]["finalContent"] == "Hello" and run[1]["data"]["messageId"] == ak.message_id(run_id, 0)
    assert run[6]["data"]["usage"] == {"promptTokens": 3, "completionTokens": 2, "totalTokens": 5}
    journal.close()


def test_the_terminal_reads_the_same_chunks(tmp_path: Path) -> None:
    """`netrun run`'s output is made from the chunks: a tool call of a lifecycle step keeps
    its label (from the part's id), an approval names its tool when it is resolved."""
    import io

    from netrun.console import Progress

    out = io.StringIO()
    show = Progress(out, color=False)
    for kind, data in SCENARIOS["denied"](tmp_path):
        show(kind, data)
    text = out.getvalue()
    assert "✋ refund needs approval" in text and "refund: denied (too large)" in text
    assert "⚙ refund(" in text and "✓ done in 2 turns" in text
    assert ak.step_of(ak.call_part("r", "setup.0.fetch")) == "setup.0.fetch" and ak.step_of(ak.text_part("r", 1)) is None


def test_state_changes_stream_as_they_happen_and_end_as_the_result_says(
    chunks: dict[str, dict[str, list[dict[str, Any]]]],
) -> None:
    """A call that writes state is followed by ``metadata.updated`` with the state it left;
    state changes only by writes, so a completed run's last one is its result's state."""
    updates = 0
    for name, runs in chunks.items():
        for run_id, run in runs.items():
            states = [c["data"]["metadata"]["state"] for c in run if c["event"] == "metadata.updated"]
            updates += len(states)
            for c in run:
                if c["event"] == "metadata.updated":
                    assert c["data"]["type"] == "context_update" and c["data"]["runId"] == run_id
            done = [c for c in run if c["event"] == "run.completed" and c["data"]["scope"] == "network"]
            if states and done:
                assert states[-1] == done[0]["data"]["result"]["state"], (name, run_id)
    assert updates > 0  # the examples' state tools reported their writes
