"""The journal's group commit: steps of concurrent runs share a transaction, and none goes on
before its outcome is committed (durability is what the batching must not weaken)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from netrun.engines.journal import Journal
from netrun.engines.journal_schema import RunRecord
from netrun.engines.local_steps import LocalSteps
from netrun.engines.runner import LocalEngine
from netrun.models.scripted import ScriptedClient
from netrun.runtime.steps import Json, StepFailed
from netrun.spec import NetworkSpec


def _committed(path: Path) -> dict[tuple[str, str], str | None]:
    """What another connection (another process) reads: committed rows only."""
    with sqlite3.connect(path) as other:
        return {(r, s): o for r, s, o in other.execute("SELECT run_id, step_id, output FROM steps")}


def test_concurrent_steps_share_commits_and_each_is_committed_before_its_run_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    journal = Journal(path)
    commits: list[str] = []
    journal.db.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
    seen_after: dict[str, bool] = {}

    async def run(i: int) -> Json:
        steps = LocalSteps(journal, f"run-{i}")

        async def work() -> Json:
            await asyncio.sleep(0.01)  # the runs' steps end together, as 200 replies of one model do
            return {"n": i}

        output = await steps.run("step-a", work)
        # Committed, not merely written: a crash now must not lose it (another connection sees it).
        seen_after[f"run-{i}"] = (f"run-{i}", "step-a") in _committed(path)
        return output

    async def main() -> list[Json]:
        return await asyncio.gather(*(run(i) for i in range(20)))

    outputs = asyncio.run(main())
    assert outputs == [{"n": i} for i in range(20)]
    assert all(seen_after.values()) and len(seen_after) == 20
    assert len(_committed(path)) == 20
    assert 1 <= len(commits) < 20, commits  # shared transactions, not a commit per step
    # A replay reads the outcome back and runs nothing.
    replayed = asyncio.run(LocalSteps(journal, "run-3").run("step-a", _never))
    assert replayed == {"n": 3}


async def _never() -> Json:
    raise AssertionError("a recorded step ran again")


def test_a_record_the_store_refuses_fails_its_own_step_only(tmp_path: Path) -> None:
    """Steps of other runs that ended in the same pass keep their outcomes: their effects are
    done, and failing them would run those effects again on a retry."""
    path = tmp_path / "runs.db"
    journal = Journal(path)
    # A record refused inside the shared transaction (as a corrupt row or a too-big value is).
    journal.db.execute(
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON steps WHEN NEW.step_id = 'bad' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )

    async def one(run_id: str, step_id: str) -> Json:
        async def work() -> Json:
            return step_id

        return await LocalSteps(journal, run_id).run(step_id, work)

    async def main() -> list[RunRecord]:
        return await asyncio.gather(one("r1", "ok"), one("r2", "bad"), one("r3", "ok"), return_exceptions=True)

    first, refused, third = asyncio.run(main())
    assert (first, third) == ("ok", "ok")
    assert isinstance(refused, sqlite3.IntegrityError) and "refused" in str(refused), refused
    assert _committed(path) == {("r1", "ok"): '"ok"', ("r3", "ok"): '"ok"'}
    journal.db.execute("DROP TRIGGER refuse")
    assert asyncio.run(one("r2", "bad")) == "bad"  # the next batch works
    assert _committed(path)[("r2", "bad")] == '"bad"'


def test_an_error_that_is_not_valid_utf8_is_recorded_escaped(tmp_path: Path) -> None:
    """A step failing with a lone surrogate in its message (a file name that is not UTF-8)."""
    journal = Journal(tmp_path / "runs.db")
    name = b"report-\xff.csv".decode("utf-8", "surrogateescape")

    async def broken() -> Json:
        raise StepFailed("s", f"cannot read {name}")

    async def fine() -> Json:
        return "ok"

    async def main() -> list[RunRecord]:
        return await asyncio.gather(
            LocalSteps(journal, "r1").run("s", broken), LocalSteps(journal, "r2").run("s", fine), return_exceptions=True
        )

    failed, done = asyncio.run(main())
    assert done == "ok"
    assert isinstance(failed, StepFailed) and failed.message == "cannot read report-\\udcff.csv", failed
    with pytest.raises(StepFailed, match="udcff"):  # a replay reads the same text back
        asyncio.run(LocalSteps(journal, "r1").run("s", _never))


def test_the_first_outcome_recorded_wins_across_journals(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    first, second = Journal(path), Journal(path)  # two processes sharing the file

    async def step(journal: Journal, value: str) -> Json:
        async def work() -> Json:
            return value

        return await LocalSteps(journal, "run").run("s", work)

    # The second execution starts before the first records: it has not seen the step.
    steps, late = LocalSteps(second, "run"), LocalSteps(second, "run")
    assert asyncio.run(step(first, "first")) == "first"
    assert asyncio.run(steps.run("s", lambda: _value("second"))) == "first"  # goes on with the journal's
    first.record("run", "t", None, "boom")
    with pytest.raises(StepFailed, match="boom"):  # a failure recorded first is the outcome too
        asyncio.run(late.run("t", lambda: _value("fine")))


async def _value(value: str) -> Json:
    return value


def _transactions(statements: list[str]) -> list[list[str]]:
    """The write transactions of a connection in autocommit mode, from its statement trace:
    a BEGIN ... COMMIT group, or a lone write (it commits by itself)."""
    found: list[list[str]] = []
    group: list[str] | None = None
    for sql in (s.strip() for s in statements):
        word = sql.split(None, 1)[0].upper() if sql else ""
        if word == "BEGIN":
            group = [sql]
        elif word in ("COMMIT", "ROLLBACK") and group is not None:
            found.append(group)
            group = None
        elif group is not None:
            group.append(sql)
        elif word in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            found.append([sql])
    return found


def _one_step_engine(journal: Journal, replies: int) -> tuple[LocalEngine, NetworkSpec]:
    client = ScriptedClient({"writer": [{"text": "done"}] * replies}, "test")
    engine = LocalEngine(journal, {}, None, models=lambda spec: client)
    spec = NetworkSpec.model_validate(
        {
            "name": "one",
            "model": "openai/x",
            "max_iter": 1,
            "agents": {"writer": {"description": "writes", "system": "Write."}},
            "router": {"rules": [{"if": "true", "agent": "writer"}]},
        }
    )
    return engine, spec


def test_a_run_commits_once_to_start_and_once_to_end_and_leaves_no_lease(tmp_path: Path) -> None:
    """A commit costs the event loop as much as a step's does: recording a new run and
    claiming it share one, recording its end and giving its lease up share another. Afterwards
    the journal holds no lease of the run, on disk or in memory (a server lives for weeks)."""
    journal = Journal(tmp_path / "runs.db")
    engine, spec = _one_step_engine(journal, 1)
    statements: list[str] = []
    journal.db.set_trace_callback(statements.append)
    record = asyncio.run(engine.start(spec, tmp_path, input="hi"))
    journal.db.set_trace_callback(None)
    assert record.status == "completed", record.error
    writes = _transactions(statements)
    # the run and its lease; its one step (the inference); its end and the lease's release
    assert len(writes) == 3, writes
    assert any("INSERT INTO runs" in s for s in writes[0]) and any("leases" in s for s in writes[0])
    assert any("UPDATE runs SET status" in s for s in writes[-1]) and any("DELETE FROM leases" in s for s in writes[-1])
    assert journal.db.execute("SELECT COUNT(*) FROM leases").fetchone() == (0,)
    assert not journal._renewed  # what the journal kept per run to renew its lease


def test_runs_started_and_ended_together_share_commits(tmp_path: Path) -> None:
    """200 runs started at once were 200 commits before their first step: they share the
    group commit as their steps do, and so do their ends."""
    journal = Journal(tmp_path / "runs.db")
    engine, spec = _one_step_engine(journal, 10)
    statements: list[str] = []
    journal.db.set_trace_callback(statements.append)

    async def main() -> list[RunRecord]:
        return await asyncio.gather(*(engine.start(spec, tmp_path, input=f"run {i}") for i in range(10)))

    records = asyncio.run(main())
    journal.db.set_trace_callback(None)
    assert [r.status for r in records] == ["completed"] * 10
    writes = _transactions(statements)
    starts = [w for w in writes if any("INSERT INTO runs" in s for s in w)]
    ends = [w for w in writes if any("UPDATE runs SET status" in s for s in w)]
    assert len(starts) == 1 and sum("INSERT INTO runs" in s for s in starts[0]) == 10, starts
    assert len(ends) < 10 and sum(s.startswith("UPDATE runs SET status") for w in ends for s in w) == 10, ends
    assert journal.db.execute("SELECT COUNT(*) FROM leases").fetchone() == (0,)
