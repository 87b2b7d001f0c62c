"""What the run journal holds: its tables, a run's record, and the ids and statuses of runs.

The tables are created by :class:`netrun.engines.journal.Journal` when it opens the file;
a :class:`RunRecord` is a row of ``runs`` as the engine, the REST API and ``netrun run
--json`` read it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..data_dir import data_dir

SCHEMA = """
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
-- GET /runs, newest first, by network, thread or user. IF NOT EXISTS: a journal written
-- before them gains them when it is next opened (the journal's only migration so far).
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created, id);
CREATE INDEX IF NOT EXISTS runs_by_network_created ON runs (network, created, id);
CREATE INDEX IF NOT EXISTS runs_by_thread ON runs (json_extract(options, '$.thread_id'), created, id);
CREATE INDEX IF NOT EXISTS runs_by_user ON runs (json_extract(options, '$.user'), created, id);
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
-- (run_id, rowid): a thread's or user's stream reads only the chunks after its cursor.
CREATE INDEX IF NOT EXISTS run_events_by_run ON run_events (run_id);
-- Who a run's stream is for (its thread and user, for GET /threads|users/{id}/events, and
-- its network's name): written with its run.started chunk, read back after a restart.
CREATE TABLE IF NOT EXISTS run_streams (
    run_id TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    thread_id TEXT,
    user TEXT
);
CREATE INDEX IF NOT EXISTS run_streams_by_thread ON run_streams (thread_id);
CREATE INDEX IF NOT EXISTS run_streams_by_user ON run_streams (user);
"""


STATUSES = ("queued", "running", "waiting", "completed", "failed", "cancelled")
"""Every status a run may have."""
FINAL_STATUSES = ("completed", "failed", "cancelled")
"""A run in one of these has ended for good: nothing changes its status again."""
NOT_FINAL_SQL = "status NOT IN (" + ", ".join(f"'{status}'" for status in FINAL_STATUSES) + ")"
"""The same, as a SQL condition on the ``runs`` table."""


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
    """The tool calls waiting for a human's approval: ``{id, tool, args, step, event,
    expires_at}`` each (filled by :meth:`Journal.run`)."""
    created: float = 0.0
    """When the run was recorded (seconds since the epoch; 0 for a record not read back)."""

    def summary(self) -> dict[str, Any]:
        """The run as ``netrun run --json`` prints it and ``GET /runs/{id}`` returns it."""
        return {
            "run_id": self.id,
            "status": self.status,
            "network": self.network,
            "definition_hash": self.definition_hash,
            "input": self.input,
            "result": self.result,
            "error": self.error,
            "approvals": list(self.approvals),
        }


def new_run_id() -> str:
    """Time-ordered and unique: sorts by creation in listings."""
    return f"{int(time.time() * 1000):013x}{uuid.uuid4().hex[:12]}"


__all__ = ["FINAL_STATUSES", "NOT_FINAL_SQL", "SCHEMA", "STATUSES", "RunRecord", "data_dir", "new_run_id"]
