"""The run journal: a SQLite file holding runs, their step outputs, waits, approvals and events.

Every step's output is committed before the run moves on, and a process executes a run
only while it holds the run's lease, so a run survives a crash and is never executed by two
processes at once. Its tables and records: :mod:`netrun.engines.journal_schema`; its runs'
streams (the journaled chunks): :mod:`netrun.engines.journal_events`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import NetrunError
from ..runtime import step_ids
from ..runtime.steps import Json, Wait
from ..sqlite_file import StorageFault, open_sqlite
from .journal_approvals import ApprovalsJournal
from .journal_batch import StepBatch
from .journal_events import RunEventsJournal
from .journal_schema import FINAL_STATUSES, NOT_FINAL_SQL, SCHEMA, RunRecord


class JournalError(NetrunError, phase="engine"):
    """The journal cannot be used (not a database, unreadable, a corrupt record)."""


LEASE_SECONDS = 60.0
"""How long a process owns a run without renewing: a crashed owner's runs free up after it."""


def _alive(owner: str) -> bool:
    """Whether a lease's owner may still run: a process of this machine that is gone (killed,
    crashed) holds nothing; another machine's lease is trusted until it expires."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class Journal(RunEventsJournal, ApprovalsJournal):
    """The SQLite file holding runs, their step outputs and their pending waits.

    A process executes a run only while it holds the run's lease (renewed with every step),
    so two processes resuming the same run (two `netrun send`, a `--resume` while the
    first process still runs) cannot both execute its steps.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = open_sqlite(path, SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"cannot use the run journal {path}: {exc}") from None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renewed: dict[str, float] = {}
        self.batch = StepBatch(self)  # step outcomes of concurrent runs, committed together

    # -- leases ------------------------------------------------------------------------
    def claim(self, run_id: str) -> bool:
        """Own ``run_id`` for LEASE_SECONDS unless another live process owns it."""
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT owner, until FROM leases WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and row[0] != self.owner and row[1] > now and _alive(row[0]):
                return False
            self.db.execute("INSERT OR REPLACE INTO leases VALUES (?,?,?)", (run_id, self.owner, now + LEASE_SECONDS))
        self._renewed[run_id] = now
        return True

    def renew(self, run_id: str) -> None:
        """Extend the lease, at most every quarter lease (not a write per step)."""
        now = time.time()
        if now - self._renewed.get(run_id, 0.0) < LEASE_SECONDS / 4:
            return
        self._renewed[run_id] = now
        self.db.execute("UPDATE leases SET until = ? WHERE run_id = ? AND owner = ?", (now + LEASE_SECONDS, run_id, self.owner))

    def release(self, run_id: str) -> None:
        """Give the run's lease up (nothing to do when this journal holds none: it never
        claimed the run, or :meth:`end_run` gave it up)."""
        if self._renewed.pop(run_id, None) is None:
            return
        with contextlib.suppress(StorageFault):  # a full disk: the lease is this process's, and it lapses by itself
            self.db.execute("DELETE FROM leases WHERE run_id = ? AND owner = ?", (run_id, self.owner))

    def close(self) -> None:
        self.db.close()

    def create_run(self, record: RunRecord, definition: str | None = None) -> None:
        """Record a new run (``definition``: its definition's JSON, when made already)."""
        self._insert_run(record, definition, time.time())

    async def start_run(self, record: RunRecord, definition: str | None = None) -> None:
        """Record a new run owned by this journal (:meth:`claim` without the check: no other
        process knows the run yet), in the group commit: runs started together share one."""
        self._renewed[record.id] = await self.batch.write(functools.partial(self._start_rows, record, definition))

    def _start_rows(self, record: RunRecord, definition: str | None, now: float) -> float:
        self._insert_run(record, definition, now)
        self.db.execute("INSERT OR REPLACE INTO leases VALUES (?,?,?)", (record.id, self.owner, now + LEASE_SECONDS))
        return now

    def _insert_run(self, record: RunRecord, definition: str | None, now: float) -> None:
        self.db.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                record.id,
                record.network,
                record.definition_hash,
                definition if definition is not None else json.dumps(record.definition),
                record.base_dir,
                record.input,
                json.dumps(record.state),
                json.dumps(record.event),
                json.dumps(record.options),
                record.status,
                None,
                None,
                now,
                now,
            ),
        )

    def run(self, run_id: str, *, approvals: bool = False) -> RunRecord | None:
        """A run; with ``approvals``, its pending approvals too (what its summary shows: two
        more queries, so only where they are shown or answered)."""
        row = self.db.execute(
            "SELECT id, network, definition_hash, definition, base_dir, input, state, event, options, status, result, error, created FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        record = RunRecord(
            row[0],
            row[1],
            row[2],
            json.loads(row[3]),
            row[4],
            row[5],
            json.loads(row[6]),
            json.loads(row[7]),
            json.loads(row[8]),
            row[9],
            json.loads(row[10]) if row[10] else None,
            row[11],
            created=row[12],
        )
        if approvals and record.status not in FINAL_STATUSES:
            record.approvals = self.approvals(run_id)
        return record

    def family(self, run_id: str) -> list[str]:
        """The run and its child runs (networks used as tools: ``RUN.step``, and theirs)."""
        children = step_ids.child_runs_prefix(run_id)
        rows = self.db.execute(
            "SELECT id FROM runs WHERE id = ? OR substr(id, 1, ?) = ? ORDER BY created", (run_id, len(children), children)
        )
        return [r[0] for r in rows]

    def list_runs(self, **filters: Any) -> list[dict[str, Any]]:
        """Runs newest first, filtered and paged (``GET /runs``): :func:`.run_list.list_runs`."""
        from .run_list import list_runs

        return list_runs(self.db, **filters)

    def status(self, run_id: str) -> tuple[str, str | None] | None:
        """The run's status and error, read alone (checked before every step of some runs)."""
        row = self.db.execute("SELECT status, error FROM runs WHERE id = ?", (run_id,)).fetchone()
        return (str(row[0]), row[1]) if row is not None else None

    def note_thread(self, run_id: str, thread_id: str, user: str | None) -> None:
        """Record the thread (and user) a run belongs to when its trigger's templates chose
        them at execution (``GET /runs?thread_id=`` finds it); a write only when it changes."""
        self.db.execute(
            "UPDATE runs SET options = json_set(options, '$.thread_id', ?, '$.user', ?) WHERE id = ? AND "
            "(json_extract(options, '$.thread_id') IS NOT ? OR json_extract(options, '$.user') IS NOT ?)",
            (thread_id, user, run_id, thread_id, user),
        )

    def runs(self, status: str | None = None) -> list[str]:
        if status is None:
            return [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY created")]
        return [r[0] for r in self.db.execute("SELECT id FROM runs WHERE status = ? ORDER BY created", (status,))]

    def set_status(self, run_id: str, status: str, result: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        self._status_rows(run_id, status, result, error, False, time.time())

    async def end_run(self, run_id: str, status: str, result: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        """:meth:`set_status` for a run this journal executed, in the group commit (runs
        ending together share one), with its lease given up in the same commit."""
        release = run_id in self._renewed
        await self.batch.write(functools.partial(self._status_rows, run_id, status, result, error, release))
        if release:
            self._renewed.pop(run_id, None)

    def _status_rows(
        self, run_id: str, status: str, result: Mapping[str, Any] | None, error: str | None, release: bool, now: float
    ) -> None:
        # A finished run stays finished, whatever a slower process says afterwards.
        self.db.execute(
            "UPDATE runs SET status = ?, result = ?, error = ?, updated = ? WHERE id = ? AND " + NOT_FINAL_SQL,
            (status, json.dumps(result) if result is not None else None, error, now, run_id),
        )
        if release:
            self.db.execute("DELETE FROM leases WHERE run_id = ? AND owner = ?", (run_id, self.owner))

    def reopen(self, run_id: str) -> str | None:
        """Make a failed run ``running`` again, for a retry: its completed steps stay recorded
        (a retry repeats none of them); the step whose failure ended it (its newest error
        before the steps that end a run) is forgotten so that it runs again, and so are the
        steps that ended it (``send:``, ``finally:``): the retried run ends anew and they run
        for that end. Returns the failed step's id (None when the run failed between steps:
        a limit, a definition that did not compile)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row[0] != "failed":
                return None
            rows = self.db.execute(
                "SELECT step_id, error FROM steps WHERE run_id = ? ORDER BY created DESC, rowid DESC", (run_id,)
            ).fetchall()
            ending = [str(r[0]) for r in rows if _ends_run(str(r[0]))]
            newest = next((r for r in rows if not _ends_run(str(r[0]))), None)
            cleared = None
            if newest is not None and newest[1] is not None:
                cleared = str(newest[0])
            forget = ending + ([cleared] if cleared else [])
            self.db.executemany("DELETE FROM steps WHERE run_id = ? AND step_id = ?", [(run_id, s) for s in forget])
            self.db.execute(
                "UPDATE runs SET status = 'running', result = NULL, error = NULL, updated = ? WHERE id = ?", (time.time(), run_id)
            )
        return cleared

    def step(self, run_id: str, step_id: str) -> tuple[bool, Json, str | None]:
        row = self.db.execute("SELECT output, error FROM steps WHERE run_id = ? AND step_id = ?", (run_id, step_id)).fetchone()
        if row is None:
            return False, None, None
        try:
            return True, json.loads(row[0]) if row[0] is not None else None, row[1]
        except ValueError:
            raise JournalError(f"the journal {self.path} holds a corrupt record for run {run_id}, step {step_id}") from None

    def step_ids(self, run_id: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT step_id FROM steps WHERE run_id = ?", (run_id,))}

    def record(
        self, run_id: str, step_id: str, output: Json = None, error: str | None = None, *, encoded: str | None = None
    ) -> tuple[Json, str | None]:
        """Record a step's outcome (``encoded``: ``output`` as JSON, when the caller made it
        already); the first one recorded wins and is returned, so a process never goes on
        with an outcome the journal does not hold."""
        text = None if error is not None else encoded if encoded is not None else json.dumps(output)
        try:
            self.db.execute("INSERT INTO steps VALUES (?,?,?,?,?)", (run_id, step_id, text, error, time.time()))
        except sqlite3.IntegrityError:
            _, output, error = self.step(run_id, step_id)
        self.renew(run_id)
        return output, error

    def add_wait(self, run_id: str, step_id: str, wait: Wait) -> None:
        spec = {
            "match": wait.match,
            "if": wait.if_,
            "match_value": wait.match_value,
            "variables": wait.variables,
            "timeout": wait.timeout.total_seconds(),
        }
        self.db.execute(
            "INSERT OR IGNORE INTO waits VALUES (?,?,?,?,?)",
            (run_id, step_id, wait.event, json.dumps(spec, default=str), time.time() + wait.timeout.total_seconds()),
        )

    def due_waits(self, now: float) -> list[str]:
        """Runs with a wait whose timeout has passed (they resume to see it time out)."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT run_id FROM waits WHERE deadline <= ?", (now,))]

    def waits(self, event: str | None = None, *, run_id: str | None = None) -> list[tuple[str, str, str, dict[str, Any], float]]:
        where = [(c, v) for c, v in (("event", event), ("run_id", run_id)) if v]
        query = "SELECT run_id, step_id, event, spec, deadline FROM waits" + (
            " WHERE " + " AND ".join(f"{c} = ?" for c, _ in where) if where else ""
        )
        rows = self.db.execute(query, tuple(v for _, v in where))
        return [(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def news(self, run_id: str) -> set[str]:
        """Waits of a waiting run answered since it went waiting: outcomes no execution has
        seen yet. Normally its resume follows at once; after a crash in between, start-up
        finds them here (the run may still wait for other calls of the same turn)."""
        rows = self.db.execute(
            "SELECT s.step_id FROM steps s JOIN runs r ON r.id = s.run_id WHERE s.run_id = ? AND r.status = 'waiting' AND s.created > r.updated",
            (run_id,),
        )
        return {r[0] for r in rows}

    def cancel(self, run_id: str, reason: str) -> bool:
        """End an unfinished run as ``cancelled`` with ``reason``, and drop its waits (no event
        resumes it), atomically; False if it had ended already."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            ended = (
                self.db.execute(
                    "UPDATE runs SET status = 'cancelled', error = ?, updated = ? WHERE id = ? AND " + NOT_FINAL_SQL,
                    (reason, time.time(), run_id),
                ).rowcount
                == 0
            )
            if ended:
                return False
            self.db.execute("DELETE FROM waits WHERE run_id = ?", (run_id,))
        return True

    def unfinished(self, network: str) -> list[RunRecord]:
        """The runs of ``network`` that have not ended (queued, running, waiting), oldest first."""
        rows = self.db.execute(
            "SELECT id FROM runs WHERE network = ? AND " + NOT_FINAL_SQL + " ORDER BY created",
            (network,),
        ).fetchall()
        return [r for r in (self.run(row[0]) for row in rows) if r is not None]

    def resolve_wait(self, run_id: str, step_id: str, output: Json) -> bool:
        """Record the wait's outcome and drop the wait, atomically; False if already resolved."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            gone = self.db.execute("DELETE FROM waits WHERE run_id = ? AND step_id = ?", (run_id, step_id)).rowcount == 0
            if gone:
                return False
            self.db.execute(
                "INSERT OR IGNORE INTO steps VALUES (?,?,?,?,?)", (run_id, step_id, json.dumps(output), None, time.time())
            )
        return True


__all__ = ["LEASE_SECONDS", "Journal", "JournalError"]


_ENDING = ("send.", "finally.", "run.internal_failure")
"""The step ids of how a run ended (its ``send:`` events, its ``finally:`` steps, an internal
failure recorded on Inngest): a retry forgets them, as the run will end again."""


def _ends_run(step_id: str) -> bool:
    return step_id.startswith(_ENDING)
