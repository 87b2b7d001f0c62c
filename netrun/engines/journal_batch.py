"""Group commit of step outcomes: the steps of concurrent runs that end together share one commit.

Why: a commit per step was the largest single cost of 200 concurrent runs in one process
(an SQLite commit is ~50 µs of the event loop's time even with WAL and synchronous=NORMAL,
and nothing else runs meanwhile). Durability is unchanged: a step's caller waits until the
transaction holding its outcome has committed before its run goes on, so a crash at any
point leaves either the outcome in the journal (the step is replayed from it) or nothing
(the step runs again, as a crash between a step and its commit always did). Outcomes
recorded in the same pass of the event loop (the replies that one poll delivered) are
written by one transaction, scheduled with ``call_soon`` after them.

The local engine's runs start and end through it too (:meth:`StepBatch.write`): a new run
and its lease, a run's end and its lease's release, each ~200 µs as a commit of its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ..runtime.steps import Json
from ..sqlite_file import StorageFault

if TYPE_CHECKING:
    from .journal import Journal

Outcome = tuple[Json, str | None]
"""A step's output and its error (None when it succeeded), as the journal holds them."""

_Pending = tuple[Callable[[float], Any], "asyncio.Future[Any]"]
"""A write (given the batch's time) and who waits for what it returns."""


class StepBatch:
    """Collects step outcomes and commits each pass's in one transaction."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._pending: list[_Pending] = []

    def record(
        self, run_id: str, step_id: str, output: Json, error: str | None, encoded: str | None = None
    ) -> asyncio.Future[Outcome]:
        """The outcome the journal holds once committed: this one, or the one another
        process recorded first (the first one recorded wins, as in :meth:`Journal.record`)."""
        text = None if error is not None else encoded if encoded is not None else json.dumps(output)
        return self.write(partial(self._insert, run_id, step_id, output, text, storable(error)))

    def write(self, write: Callable[[float], Any]) -> asyncio.Future[Any]:
        """What ``write(now)`` returns, once the transaction it wrote in has committed: its
        statements join this pass's transaction (a failure of its own fails only it)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((write, done))
        return done

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        outcomes: list[Any]
        try:
            try:
                outcomes = self._commit(batch, isolated=False)
            except StorageFault:
                raise
            except Exception:
                # A record the store refused (a corrupt held row, a value too big) rolled the
                # whole pass back: again, each record in a savepoint of its own, so that it
                # fails its own step only, not the steps of the other runs that ended in the
                # same pass, whose effects are done. Savepoints cost three statements a
                # record: only this rare pass pays for them.
                outcomes = self._commit(batch, isolated=True)
        except Exception as exc:  # the store failed (a full disk, a closed journal): each waiting step sees it
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if done.done():  # its step was cancelled meanwhile: the outcome is recorded all the same
                continue
            if isinstance(outcome, Exception):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)

    def _commit(self, batch: list[_Pending], *, isolated: bool) -> list[Any]:
        """Write ``batch`` in one transaction, committed here; rolled back when a write
        raises (with ``isolated``, only a failure of the store itself)."""
        db = self.journal.db
        outcomes: list[Any] = []
        with db:
            db.execute("BEGIN IMMEDIATE")
            now = time.time()
            for write, _ in batch:
                if not isolated:
                    outcomes.append(write(now))
                    continue
                db.execute("SAVEPOINT step")
                try:
                    outcomes.append(write(now))
                    db.execute("RELEASE step")
                except StorageFault:
                    raise
                except Exception as exc:
                    db.execute("ROLLBACK TO step")
                    db.execute("RELEASE step")
                    outcomes.append(exc)
        return outcomes

    def _insert(self, run_id: str, step_id: str, output: Json, text: str | None, error: str | None, now: float) -> Outcome:
        inserted = self.journal.db.execute(
            "INSERT OR IGNORE INTO steps VALUES (?,?,?,?,?)", (run_id, step_id, text, error, now)
        ).rowcount
        self.journal.renew(run_id)
        if inserted:
            return (None if error is not None else output, error)
        _, held, held_error = self.journal.step(run_id, step_id)  # recorded first by another execution
        return held, held_error


def storable(text: str | None) -> str | None:
    """``text`` as SQLite can store it: a lone surrogate (a file name that is not UTF-8,
    quoted in an error) is written as its escape, not refused with the whole record."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


__all__ = ["Outcome", "StepBatch", "storable"]
