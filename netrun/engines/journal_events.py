"""The run journal's streams: the AgentKit chunks of every run (table ``run_events``, one row a
chunk, written and read by :mod:`netrun.serve.run_events`) and whose stream each run is (table
``run_streams``: its network, thread and user).

A mixin of :class:`netrun.engines.journal.Journal` (which holds the connection and the runs).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .journal_schema import RunRecord


class RunEventsJournal:
    """The journal's run-event part (``db``, ``run`` are the journal's)."""

    db: sqlite3.Connection

    def run(self, run_id: str, *, approvals: bool = False) -> RunRecord | None:
        raise NotImplementedError

    # A row is one AgentKit chunk (netrun/runtime/agentkit_stream.py); ``kind`` is the netrun
    # event it came from and ``key`` (on its first chunk) what tells a once-only event apart.
    def add_events(self, rows: Sequence[tuple[str, int, str, str | None, str, int]]) -> dict[tuple[str, int], int]:
        """Write chunks ``(run_id, seq, kind, key, data JSON, bytes)`` in one transaction; a
        number already written (another process reported it) keeps its first chunk. Returns
        the rowid of each ``(run_id, seq)`` written (the cursor of the thread and user streams)."""
        with self.db:
            self.db.execute("BEGIN")
            written: dict[tuple[str, int], int] = {}
            for row in rows:
                cursor = self.db.execute("INSERT OR IGNORE INTO run_events VALUES (?,?,?,?,?,?)", row)
                if cursor.rowcount:
                    written[(row[0], row[1])] = int(cursor.lastrowid or 0)
        return written

    def events(self, run_id: str, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """The run's chunks numbered above ``after``, in order: ``(seq, chunk)`` each."""
        rows = self.db.execute("SELECT seq, data FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after))
        return [(r[0], json.loads(r[1])) for r in rows]

    def add_stream(self, run_id: str, network: str, thread_id: str | None, user: str | None) -> None:
        """Record whose stream a run's chunks belong to (its thread and user)."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO run_streams VALUES (?,?,?,?)", (run_id, network, thread_id, user))

    def stream_of(self, run_id: str) -> tuple[str, str | None, str | None] | None:
        """The run's network, thread id and user: from its stream's record, else from its run
        record's options (None for a run this journal does not know)."""
        row = self.db.execute("SELECT network, thread_id, user FROM run_streams WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None:
            return str(row[0]), row[1], row[2]
        record = self.run(run_id)
        if record is None:
            return None
        return record.network, record.options.get("thread_id"), record.options.get("user")

    def stream_marks(self, run_id: str) -> list[dict[str, Any]]:
        """The run's chunks the stream mapping rebuilds its memory of the run from (runs
        started, parts created and completed, usage), in order."""
        rows = self.db.execute(
            "SELECT data FROM run_events WHERE run_id = ? AND kind IN ('run.started', 'agent.started', 'text.delta', "
            "'agent.finished') AND json_extract(data, '$.event') IN ('run.started', 'part.created', 'part.completed', "
            "'usage.updated') ORDER BY seq",
            (run_id,),
        )
        return [json.loads(r[0]) for r in rows]

    def scope_events(self, column: str, value: str, after: int = 0, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        """The chunks of every run of a thread (``column`` ``thread_id``) or a user (``user``)
        written after the rowid ``after``, in the order written: ``(rowid, chunk)`` each."""
        if column not in ("thread_id", "user"):
            raise ValueError(f"no stream by {column!r}; by thread_id or user")
        rows = self.db.execute(
            "SELECT rowid, data FROM run_events WHERE run_id IN "
            f"(SELECT run_id FROM run_streams WHERE {column} = ?) AND rowid > ? ORDER BY rowid LIMIT ?",
            (value, after, limit),
        )
        return [(int(r[0]), json.loads(r[1])) for r in rows]

    def event_cursor(self) -> int:
        """The rowid of the last chunk written (0: none): where a thread or user stream that
        starts now would resume from."""
        return int(self.db.execute("SELECT coalesce(max(rowid), 0) FROM run_events").fetchone()[0])

    def event_marks(self, run_id: str) -> tuple[int, int, set[tuple[str, str]]]:
        """The run's last event number, its events' bytes and the ``(kind, key)`` of its
        once-only events, for a process that reports more of its events."""
        last, size = self.db.execute(
            "SELECT coalesce(max(seq), 0), coalesce(sum(bytes), 0) FROM run_events WHERE run_id = ?", (run_id,)
        ).fetchone()
        keys = {
            (r[0], r[1])
            for r in self.db.execute("SELECT kind, key FROM run_events WHERE run_id = ? AND key IS NOT NULL", (run_id,))
        }
        return int(last), int(size), keys

    def last_event(self, run_id: str, kinds: Sequence[str]) -> int | None:
        """The number of the run's last event of one of ``kinds``, None when it has none."""
        row = self.db.execute(
            f"SELECT max(seq) FROM run_events WHERE run_id = ? AND kind IN ({','.join('?' * len(kinds))})", (run_id, *kinds)
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def events_bytes(self, run_id: str | None = None) -> int:
        """The bytes of the journaled events (of one run, or of all)."""
        query = "SELECT coalesce(sum(bytes), 0) FROM run_events" + (" WHERE run_id = ?" if run_id is not None else "")
        return int(self.db.execute(query, (run_id,) if run_id is not None else ()).fetchone()[0])
