"""The local engine: runs journaled in SQLite, resumable after a crash or a wait.

Every step's output is committed before the run moves on. Resuming a run (after
``kill -9``, or when an awaited event arrives) replays it from the start: completed steps
return their recorded outputs, so no inference or tool call is made twice. A run keeps
the definition it started with: the validated spec is stored with the run, and a resume
compiles that, not the file as it is now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from ..errors import NetrunError
from ..runtime.approvals import approval_id as make_approval_id
from ..runtime.render import RenderError, evaluate
from ..runtime.steps import Json, RunSuspended, StepFailed, Wait, path_get
from ..spec import scopes
from ..sqlite_file import StorageFault, open_sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    definition TEXT NOT NULL,
    base_dir TEXT NOT NULL,
    input TEXT NOT NULL,
    state TEXT NOT NULL,
    event TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
-- The unfinished runs of a network (singleton, cancel events) without reading every run.
CREATE INDEX IF NOT EXISTS runs_by_network ON runs (network, status);
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    output TEXT,
    error TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS waits (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    event TEXT NOT NULL,
    spec TEXT NOT NULL,
    deadline REAL NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX IF NOT EXISTS waits_by_event ON waits (event);
CREATE TABLE IF NOT EXISTS approvals (
    run_id TEXT NOT NULL,
    id TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL,
    expires REAL NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (run_id, id)
);
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    data TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""


@dataclass
class RunRecord:
    id: str
    network: str
    definition_hash: str
    definition: dict[str, Any]
    base_dir: str
    input: str
    state: dict[str, Any]
    event: dict[str, Any]
    options: dict[str, Any]
    status: str
    """queued | running | waiting | completed | failed | cancelled"""
    result: dict[str, Any] | None
    error: str | None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    created: float = 0.0
    """When the run was recorded (seconds since the epoch; 0 for a record not read back)."""
    """The tool calls waiting for a human's approval: ``{id, tool, args, step, event,
    expires_at}`` each (filled by :meth:`Journal.run`)."""

    def summary(self) -> dict[str, Any]:
        """The run as ``netrun run --json`` prints it and ``GET /runs/{id}`` returns it."""
        return {"run_id": self.id, "status": self.status, "network": self.network, "definition_hash": self.definition_hash,
                "input": self.input, "result": self.result, "error": self.error, "approvals": list(self.approvals)}


class RunStopped(Exception):  # noqa: N818 - control flow, not an error
    """The engine is shutting down: the run stops before a step and resumes at the next start."""

    def __init__(self, step_id: str) -> None:
        super().__init__(f"stopped before step {step_id}: the server is shutting down")


class JournalError(NetrunError, phase="engine"):
    """The journal cannot be used (not a database, unreadable, a corrupt record)."""


LEASE_SECONDS = 60.0
"""How long a process owns a run without renewing: a crashed owner's runs free up after it."""

FINAL_STATUSES = ("completed", "failed", "cancelled")
"""A run in one of these has ended for good: nothing changes its status again."""


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


class Journal:
    """The SQLite file holding runs, their step outputs and their pending waits.

    A process executes a run only while it holds the run's lease (renewed with every step),
    so two processes resuming the same run (two `netrun send`, a `--resume` while the
    first process still runs) cannot both execute its steps.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = open_sqlite(path, _SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"cannot use the run journal {path}: {exc}") from None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renewed: dict[str, float] = {}

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
        with contextlib.suppress(StorageFault):  # a full disk: the lease is this process's, and it lapses by itself
            self.db.execute("DELETE FROM leases WHERE run_id = ? AND owner = ?", (run_id, self.owner))

    def close(self) -> None:
        self.db.close()

    def create_run(self, record: RunRecord) -> None:
        now = time.time()
        self.db.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (record.id, record.network, record.definition_hash, json.dumps(record.definition), record.base_dir, record.input,
             json.dumps(record.state), json.dumps(record.event), json.dumps(record.options), record.status, None, None, now, now),
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
        record = RunRecord(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], json.loads(row[6]), json.loads(row[7]),
                           json.loads(row[8]), row[9], json.loads(row[10]) if row[10] else None, row[11], created=row[12])
        if approvals and record.status not in FINAL_STATUSES:
            record.approvals = self.approvals(run_id)
        return record

    # -- approvals -----------------------------------------------------------------------
    def approvals(self, run_id: str) -> list[dict[str, Any]]:
        """The run's pending approvals, oldest first: its approval waits (a run of this
        engine) and the approvals tracked for a run Inngest executes; none past its expiry."""
        now = time.time()
        found = []
        for _, _, event, spec, deadline in self.waits(run_id=run_id):
            detail = (spec.get("variables") or {}).get("approval")
            if isinstance(detail, dict) and detail.get("id") and deadline > now:
                found.append((deadline, {**detail, "event": event, "expires_at": _iso(deadline)}))
        rows = self.db.execute("SELECT event, detail, expires FROM approvals WHERE run_id = ? AND status = 'pending' AND expires > ?", (run_id, now))
        found += [(r[2], {**json.loads(r[1]), "event": r[0], "expires_at": _iso(r[2])}) for r in rows]
        return [a for _, a in sorted(found, key=lambda pair: pair[0])]

    def awaits_approval(self, event: str) -> bool:
        """Whether any run waits for an approval answered by ``event`` (now, pending)."""
        now = time.time()
        if any(isinstance((spec.get("variables") or {}).get("approval"), dict) and deadline > now for *_, spec, deadline in self.waits(event)):
            return True
        return self.db.execute("SELECT 1 FROM approvals WHERE event = ? AND status = 'pending' AND expires > ? LIMIT 1", (event, now)).fetchone() is not None

    def approval_outcome(self, run_id: str, approval_id: str) -> str | None:
        """What became of an approval that is not pending: ``answered``, ``expired`` (its
        timeout passed), or None when the run never had it."""
        row = self.db.execute("SELECT status, expires FROM approvals WHERE run_id = ? AND id = ?", (run_id, approval_id)).fetchone()
        if row is not None:
            return "expired" if row[0] == "expired" or (row[0] == "pending" and row[1] <= time.time()) else "answered"
        for *_, spec, deadline in self.waits(run_id=run_id):
            detail = (spec.get("variables") or {}).get("approval")
            if isinstance(detail, dict) and detail.get("id") == approval_id:
                return "expired" if deadline <= time.time() else None
        for step_id in self.step_ids(run_id):
            if step_id.endswith(".approval") and make_approval_id(run_id, step_id.removesuffix(".approval")) == approval_id:
                return "answered" if self.step(run_id, step_id)[1] is not None else "expired"
        return None

    def track_approval(self, run_id: str, detail: Mapping[str, Any], expires: float) -> None:
        """Record an approval a run executed by Inngest waits for (the journal tracks those
        runs for the REST API); a repeated report of the same approval changes nothing."""
        body = {k: detail.get(k) for k in ("id", "tool", "args", "step")}
        self.db.execute("INSERT OR IGNORE INTO approvals VALUES (?,?,?,?,?,?)",
                        (run_id, str(detail["id"]), str(detail.get("event")), json.dumps(body, default=str), expires, "pending"))

    def settle_approval(self, run_id: str, approval_id: str, status: str = "answered", *, was: str = "pending") -> bool:
        """Move a tracked approval from ``was`` to ``status``; False when it was not ``was``
        (another request answered it first: only one answer is sent on)."""
        return self.db.execute("UPDATE approvals SET status = ? WHERE run_id = ? AND id = ? AND status = ?",
                               (status, run_id, approval_id, was)).rowcount == 1

    # -- run events (the SSE history, netrun/serve/run_events.py) ------------------------------
    def add_events(self, rows: Sequence[tuple[str, int, str, str | None, str, int]]) -> None:
        """Write events ``(run_id, seq, kind, key, data JSON, bytes)`` in one transaction; a
        number already written (another process reported it) keeps its first event."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR IGNORE INTO run_events VALUES (?,?,?,?,?,?)", rows)

    def events(self, run_id: str, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """The run's events numbered above ``after``, in order: ``(seq, event)`` each."""
        rows = self.db.execute("SELECT seq, data FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after))
        return [(r[0], json.loads(r[1])) for r in rows]

    def event_marks(self, run_id: str) -> tuple[int, int, set[tuple[str, str]]]:
        """The run's last event number, its events' bytes and the ``(kind, key)`` of its
        once-only events, for a process that reports more of its events."""
        last, size = self.db.execute("SELECT coalesce(max(seq), 0), coalesce(sum(bytes), 0) FROM run_events WHERE run_id = ?", (run_id,)).fetchone()
        keys = {(r[0], r[1]) for r in self.db.execute("SELECT kind, key FROM run_events WHERE run_id = ? AND key IS NOT NULL", (run_id,))}
        return int(last), int(size), keys

    def last_event(self, run_id: str, kinds: Sequence[str]) -> int | None:
        """The number of the run's last event of one of ``kinds``, None when it has none."""
        row = self.db.execute(f"SELECT max(seq) FROM run_events WHERE run_id = ? AND kind IN ({','.join('?' * len(kinds))})", (run_id, *kinds)).fetchone()
        return None if row[0] is None else int(row[0])

    def events_bytes(self, run_id: str | None = None) -> int:
        """The bytes of the journaled events (of one run, or of all)."""
        query = "SELECT coalesce(sum(bytes), 0) FROM run_events" + (" WHERE run_id = ?" if run_id is not None else "")
        return int(self.db.execute(query, (run_id,) if run_id is not None else ()).fetchone()[0])

    def family(self, run_id: str) -> list[str]:
        """The run and its child runs (networks used as tools: ``RUN.step``, and theirs)."""
        rows = self.db.execute("SELECT id FROM runs WHERE id = ? OR substr(id, 1, ?) = ? ORDER BY created", (run_id, len(run_id) + 1, run_id + "."))
        return [r[0] for r in rows]

    def runs(self, status: str | None = None) -> list[str]:
        if status is None:
            return [r[0] for r in self.db.execute("SELECT id FROM runs ORDER BY created")]
        return [r[0] for r in self.db.execute("SELECT id FROM runs WHERE status = ? ORDER BY created", (status,))]

    def set_status(self, run_id: str, status: str, result: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        # A finished run stays finished, whatever a slower process says afterwards.
        self.db.execute(
            "UPDATE runs SET status = ?, result = ?, error = ?, updated = ? WHERE id = ? AND status NOT IN ('completed', 'failed', 'cancelled')",
            (status, json.dumps(result) if result is not None else None, error, time.time(), run_id),
        )

    def reopen(self, run_id: str) -> str | None:
        """Make a failed run ``running`` again, for a retry: its completed steps stay recorded
        (a retry repeats none of them); the step whose failure ended it, its newest record
        when that is an error, is forgotten so that it runs again. Returns that step's id
        (None when the run failed between steps: a limit, a definition that did not compile)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row[0] != "failed":
                return None
            newest = self.db.execute(
                "SELECT step_id, error FROM steps WHERE run_id = ? ORDER BY created DESC, rowid DESC LIMIT 1", (run_id,),
            ).fetchone()
            cleared = None
            if newest is not None and newest[1] is not None:
                cleared = str(newest[0])
                self.db.execute("DELETE FROM steps WHERE run_id = ? AND step_id = ?", (run_id, cleared))
            self.db.execute("UPDATE runs SET status = 'running', result = NULL, error = NULL, updated = ? WHERE id = ?", (time.time(), run_id))
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

    def record(self, run_id: str, step_id: str, output: Json = None, error: str | None = None) -> tuple[Json, str | None]:
        """Record a step's outcome; the first one recorded wins and is returned, so a
        process never goes on with an outcome the journal does not hold."""
        try:
            self.db.execute(
                "INSERT INTO steps VALUES (?,?,?,?,?)",
                (run_id, step_id, json.dumps(output) if error is None else None, error, time.time()),
            )
        except sqlite3.IntegrityError:
            _, output, error = self.step(run_id, step_id)
        self.renew(run_id)
        return output, error

    def add_wait(self, run_id: str, step_id: str, wait: Wait) -> None:
        spec = {"match": wait.match, "if": wait.if_, "match_value": wait.match_value, "variables": wait.variables, "timeout": wait.timeout.total_seconds()}
        self.db.execute(
            "INSERT OR IGNORE INTO waits VALUES (?,?,?,?,?)",
            (run_id, step_id, wait.event, json.dumps(spec, default=str), time.time() + wait.timeout.total_seconds()),
        )

    def due_waits(self, now: float) -> list[str]:
        """Runs with a wait whose timeout has passed (they resume to see it time out)."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT run_id FROM waits WHERE deadline <= ?", (now,))]

    def waits(self, event: str | None = None, *, run_id: str | None = None) -> list[tuple[str, str, str, dict[str, Any], float]]:
        where = [(c, v) for c, v in (("event", event), ("run_id", run_id)) if v]
        query = "SELECT run_id, step_id, event, spec, deadline FROM waits" + (" WHERE " + " AND ".join(f"{c} = ?" for c, _ in where) if where else "")
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
            ended = self.db.execute(
                "UPDATE runs SET status = 'cancelled', error = ?, updated = ? WHERE id = ? AND status NOT IN ('completed', 'failed', 'cancelled')",
                (reason, time.time(), run_id),
            ).rowcount == 0
            if ended:
                return False
            self.db.execute("DELETE FROM waits WHERE run_id = ?", (run_id,))
        return True

    def unfinished(self, network: str) -> list[RunRecord]:
        """The runs of ``network`` that have not ended (queued, running, waiting), oldest first."""
        rows = self.db.execute(
            "SELECT id FROM runs WHERE network = ? AND status NOT IN ('completed', 'failed', 'cancelled') ORDER BY created", (network,),
        ).fetchall()
        return [r for r in (self.run(row[0]) for row in rows) if r is not None]

    def resolve_wait(self, run_id: str, step_id: str, output: Json) -> bool:
        """Record the wait's outcome and drop the wait, atomically; False if already resolved."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            gone = self.db.execute("DELETE FROM waits WHERE run_id = ? AND step_id = ?", (run_id, step_id)).rowcount == 0
            if gone:
                return False
            self.db.execute("INSERT OR IGNORE INTO steps VALUES (?,?,?,?,?)", (run_id, step_id, json.dumps(output), None, time.time()))
        return True


Invoker = Callable[[str, str, str], Awaitable[dict[str, Any]]]
"""(network, input, child run id) -> the child run's result; provided by the engine."""
Sender = Callable[[list[dict[str, Any]]], Awaitable[None]]
"""Delivers sent events (starting networks, answering waits); provided by the engine."""

INLINE_SLEEP = timedelta(seconds=30)
"""Shorter sleeps happen in the process; longer ones suspend the run until it is resumed."""


class LocalSteps:
    """The steps interface over a :class:`Journal`, for one run."""

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        retries: int = 4,
        backoff: float = 0.5,
        invoker: Invoker | None = None,
        sender: Sender | None = None,
        answered: set[str] | frozenset[str] = frozenset(),
        stopping: Callable[[], bool] = lambda: False,
        retry_after_cap: float = 60.0,
        hold: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
        on_start: Callable[[], None] = lambda: None,
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.retries = retries
        """Retries of a failed step: it runs at most ``retries + 1`` times (Inngest's meaning
        of ``function.retries``; the engine passes the network's, default 4 as on Inngest)."""
        self.backoff = backoff
        """Seconds before the first retry, doubling with each further one."""
        self.retry_after_cap = retry_after_cap
        """The longest wait a failure's ``retry_after`` (a model's 429 ``Retry-After``) gets;
        a provider asking for more fails the step at once, saying so."""
        self.invoker = invoker
        self.sender = sender
        self._done = journal.step_ids(run_id)
        self.stopping = stopping
        self.hold = hold
        """The run's concurrency slots (``netrun serve``), held while each step executes:
        the YAML's limit is on steps at once, as on Inngest."""
        self.on_start = on_start
        """Called once, when the first step of this execution starts (its slots taken)."""
        self._started = False
        """The engine is shutting down: start no new step (the run resumes at the next start)."""
        self._seen = self._done - set(answered)
        """Outcomes an earlier execution saw (``answered``: waits resolved since then)."""
        self.suspended: list[str] = []
        """The waits this execution stopped at (the tool calls of a turn wait side by side)."""

    def replaying(self, step_id: str) -> bool:
        return step_id in self._done

    def fresh(self, step_id: str) -> bool:
        return step_id not in self._seen

    async def run(self, step_id: str, fn: Callable[[], Awaitable[Json]]) -> Json:
        return await self._run(step_id, fn, slot=True)

    async def _run(self, step_id: str, fn: Callable[[], Awaitable[Json]], *, slot: bool) -> Json:
        if step_id in self._done:
            found, output, error = self.journal.step(self.run_id, step_id)
            if found:
                if error is not None:
                    raise StepFailed(step_id, error)
                return output
        if self.stopping():
            raise RunStopped(step_id)
        try:
            output = await self._attempts(fn, slot)
        except (RunSuspended, StorageFault):  # a store that cannot write: not the step's failure
            raise
        except (StepFailed, _GaveUpError) as exc:
            self._finish(step_id, None, exc.message)
        except Exception as exc:  # not worth another attempt: a bug or a bad input fails the same way every time
            self._finish(step_id, None, f"{type(exc).__name__}: {exc}")
        try:
            json.dumps(output)  # a step's output must survive the journal (as on Inngest)
        except (TypeError, ValueError) as exc:
            # The side effect happened; running it again would not make its output savable.
            self._finish(step_id, None, f"the step's output cannot be saved as JSON: {exc}")
        return self._finish(step_id, output, None)

    async def _attempts(self, fn: Callable[[], Awaitable[Json]], slot: bool) -> Json:
        """The step's attempts, retried by tenacity (:meth:`_spent`, :meth:`_delay`, :meth:`_give_up`).

        The first attempt runs outside tenacity: most steps succeed at once, and tenacity's
        loop would double the engine's cost of a step. When it fails, tenacity's first
        attempt re-raises that failure, so tenacity counts, waits and gives up as if it had
        made the attempt itself."""
        try:
            return await self._attempt(fn, slot)
        except Exception as failed:
            first: list[Exception] = [failed]

        async def attempt() -> Json:
            if first:
                raise first.pop()
            return await self._attempt(fn, slot)

        retrying = AsyncRetrying(stop=self._spent, wait=self._delay, retry=retry_if_exception(_worth_retrying),
                                 retry_error_callback=self._give_up)
        return await retrying(attempt)  # type: ignore[no-any-return]

    async def _attempt(self, fn: Callable[[], Awaitable[Json]], slot: bool) -> Json:
        """One attempt of a step: each takes the run's slots anew, as a retry on Inngest does."""
        async with self.hold() if slot and self.hold is not None else contextlib.nullcontext():
            if not self._started:
                self._started = True
                self.on_start()
            return await fn()

    def _spent(self, state: RetryCallState) -> bool:
        """Whether a failed attempt is the step's last: its retries are used up, or the provider
        asks to wait longer than :attr:`retry_after_cap` (waiting would only hold the run)."""
        asked = _retry_after(state)
        return state.attempt_number > self.retries or (asked is not None and asked > self.retry_after_cap)

    def _delay(self, state: RetryCallState) -> float:
        """The wait before the next attempt: what the provider asked for (a 429's
        ``Retry-After``), else ``backoff`` doubling with each attempt."""
        asked = _retry_after(state)
        return wait_exponential(multiplier=self.backoff)(state) if asked is None else max(asked, 0.0)

    def _give_up(self, state: RetryCallState) -> NoReturn:
        """The step's failure once :meth:`_spent` says no further attempt is made (the spent
        retries first: that is the reason when both hold)."""
        attempts, asked = state.attempt_number, _retry_after(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        if attempts > self.retries or asked is None:
            raise _GaveUpError(f"{exc} (after {attempts} attempt{'s' if attempts > 1 else ''})")
        raise _GaveUpError(f"{exc} (the provider asks to wait {asked:g} s before retrying, "
                           f"longer than netrun waits: {self.retry_after_cap:g} s)")

    def _finish(self, step_id: str, output: Json, error: str | None) -> Json:
        """Record the outcome; go on with what the journal holds (it may be another
        process's, recorded first), raising StepFailed for an error."""
        output, error = self.journal.record(self.run_id, step_id, output, error)
        self._done.add(step_id)
        if error is not None:
            raise StepFailed(step_id, error)
        return output

    async def parallel(self, thunks: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        results = await asyncio.gather(*(t() for t in thunks), return_exceptions=True)
        for failed in results:  # a suspension (a wait) or a failure ends the caller here
            if isinstance(failed, BaseException):
                raise failed
        return results

    async def wait_for_event(self, step_id: str, wait: Wait) -> dict[str, Any] | None:
        if step_id in self._done:
            return self.journal.step(self.run_id, step_id)[1]  # type: ignore[no-any-return]
        self.journal.add_wait(self.run_id, step_id, wait)
        self.suspended.append(step_id)
        raise RunSuspended(step_id, wait)

    async def sleep(self, step_id: str, duration: timedelta) -> None:
        if step_id in self._done:
            return
        if duration <= INLINE_SLEEP:
            await asyncio.sleep(duration.total_seconds())
            self._finish(step_id, None, None)
            return
        # A wait for an event that never comes: its timeout is the wake-up time.
        await self.wait_for_event(step_id, Wait(event="netrun/sleep", timeout=duration, if_="false"))

    async def send_event(self, step_id: str, events: list[dict[str, Any]]) -> None:
        async def send() -> None:
            if self.sender is not None:
                await self.sender(events)

        await self.run(step_id, send)

    async def invoke(self, step_id: str, network: str, input: str) -> dict[str, Any]:
        if self.invoker is None:
            raise StepFailed(step_id, f"cannot run network '{network}': no engine to run it on")
        invoker = self.invoker
        child = f"{self.run_id}.{step_id}"
        # A child run's steps take their own slots: waiting for it holds none (as on Inngest).
        return await self._run(step_id, lambda: invoker(network, input, child), slot=False)  # type: ignore[no-any-return]


class _GaveUpError(Exception):
    """A retriable step failure no further attempt is made for; ``message`` is recorded."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _worth_retrying(exc: BaseException) -> bool:
    """Whether a failed attempt may be tried again. A suspension, a journal that cannot be
    written and a step failed for good pass through as they are, and so does anything that
    is not an ``Exception`` (a cancellation, an interrupt)."""
    if not isinstance(exc, Exception) or isinstance(exc, RunSuspended | StorageFault | StepFailed):
        return False
    return retriable(exc)


def _retry_after(state: RetryCallState) -> float | None:
    """The seconds the failure of the attempt ``state`` describes asks to wait (a model's 429)."""
    exc = state.outcome.exception() if state.outcome is not None else None
    asked = getattr(exc, "retry_after", None)
    return float(asked) if isinstance(asked, int | float) and not isinstance(asked, bool) else None


def retriable(exc: Exception) -> bool:
    """Whether trying a failed step again may help: failures that say so (a model error
    marked retriable), and the network's and the OS's transient ones. A bug or a bad
    input fails the same way every time."""
    flag = getattr(exc, "retriable", None)
    if flag is not None:
        return bool(flag)
    return isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError | ConnectionError)


def wait_matches(spec: Mapping[str, Any], trigger: Mapping[str, Any], incoming: Mapping[str, Any]) -> bool:
    """Whether ``incoming`` answers a wait recorded with ``spec`` (its match and if)."""
    if spec.get("match") and path_get(dict(incoming), spec["match"]) != spec.get("match_value"):
        return False
    if spec.get("if"):
        variables = scopes.at_match(spec.get("variables") or {}, trigger, incoming)
        try:
            return bool(evaluate(spec["if"], variables))
        except RenderError:
            return False
    return True


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """Time-ordered and unique: sorts by creation in listings."""
    return f"{int(time.time() * 1000):013x}{uuid.uuid4().hex[:12]}"



__all__ = ["Journal", "LocalSteps", "RunRecord", "RunStopped", "new_run_id", "wait_matches"]
