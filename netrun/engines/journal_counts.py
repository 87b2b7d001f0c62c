"""What the run journal counts, for the server's metrics (:mod:`netrun.serve.metrics`): the
unfinished runs by network and status, the approvals waiting for a human by network, and
whether a run's start was reported already (by this process before a restart, or another).

Read-only queries on the journal's connection; they are asked at scrape time (every 15 s
or so), not per step, so they may count rather than keep counters that could drift from
what the journal says after a crash.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .journal import Journal

UNFINISHED = ("queued", "running", "waiting")
"""The statuses of a run that has not ended (``journal_schema.STATUSES`` less the final ones)."""


# The runs' networks, one index seek each (a loose index scan of ``runs_by_network``): the
# unfinished runs are then found by (network, status) seeks, never by reading every run.
_UNFINISHED_RUNS = """
WITH RECURSIVE nets(n) AS (
    SELECT min(network) FROM runs
    UNION ALL SELECT (SELECT min(network) FROM runs WHERE network > n) FROM nets WHERE n IS NOT NULL
)
SELECT r.id, r.network, r.status FROM nets JOIN runs r ON r.network = nets.n AND r.status IN ('queued', 'running', 'waiting')
"""


def unfinished_runs(journal: Journal) -> dict[tuple[str, str], int]:
    """``(network, status)`` -> how many runs are in that status now (the unfinished ones)."""
    rows = journal.db.execute(f"SELECT network, status, count(*) FROM ({_UNFINISHED_RUNS}) GROUP BY network, status")
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


def approvals_waiting(journal: Journal) -> dict[str, int]:
    """network -> the tool calls of unfinished runs waiting for a human's approval now, not
    past their expiry: the approval waits of runs this engine executes, and the approvals
    tracked for runs Inngest executes (the two places :meth:`Journal.approvals` reads)."""
    now = time.time()
    counts: dict[str, int] = {}
    for query in (
        f"SELECT u.network, count(*) FROM ({_UNFINISHED_RUNS}) u JOIN waits w ON w.run_id = u.id "
        "WHERE json_extract(w.spec, '$.variables.approval.id') IS NOT NULL AND w.deadline > ? GROUP BY u.network",
        f"SELECT u.network, count(*) FROM ({_UNFINISHED_RUNS}) u JOIN approvals a ON a.run_id = u.id "
        "WHERE a.status = 'pending' AND a.expires > ? GROUP BY u.network",
    ):
        for network, count in journal.db.execute(query, (now,)):
            counts[str(network)] = counts.get(str(network), 0) + int(count)
    return counts


def start_reported(journal: Journal, run_id: str) -> bool:
    """Whether the run's ``run.started`` is journaled already (its stream has it): a start
    reported again (each Inngest call of a run reports it) is not a new run."""
    row = journal.db.execute("SELECT 1 FROM run_events WHERE run_id = ? AND kind = 'run.started' LIMIT 1", (run_id,))
    return row.fetchone() is not None


__all__ = ["UNFINISHED", "approvals_waiting", "start_reported", "unfinished_runs"]
