"""The journal's approvals: the approval waits of its runs, and the approvals it tracks for
runs Inngest executes (the REST API lists and answers both).

A mixin of :class:`netrun.engines.journal.Journal` (which holds the connection, the steps and
the waits).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..runtime import step_ids
from ..runtime.approvals import approval_id as make_approval_id
from ..runtime.steps import Json


class ApprovalsJournal:
    """The journal's approvals part (``db``, ``step``, ``step_ids``, ``waits`` are the journal's)."""

    db: sqlite3.Connection

    def step(self, run_id: str, step_id: str) -> tuple[bool, Json, str | None]:
        raise NotImplementedError

    def step_ids(self, run_id: str) -> set[str]:
        raise NotImplementedError

    def waits(self, event: str | None = None, *, run_id: str | None = None) -> list[tuple[str, str, str, dict[str, Any], float]]:
        raise NotImplementedError

    def approvals(self, run_id: str) -> list[dict[str, Any]]:
        """The run's pending approvals, oldest first: its approval waits (a run of this
        engine) and the approvals tracked for a run Inngest executes; none past its expiry."""
        now = time.time()
        found = []
        for _, _, event, spec, deadline in self.waits(run_id=run_id):
            detail = (spec.get("variables") or {}).get("approval")
            if isinstance(detail, dict) and detail.get("id") and deadline > now:
                found.append((deadline, {**detail, "event": event, "expires_at": _iso(deadline)}))
        rows = self.db.execute(
            "SELECT event, detail, expires FROM approvals WHERE run_id = ? AND status = 'pending' AND expires > ?", (run_id, now)
        )
        found += [(r[2], {**json.loads(r[1]), "event": r[0], "expires_at": _iso(r[2])}) for r in rows]
        return [a for _, a in sorted(found, key=lambda pair: pair[0])]

    def awaits_approval(self, event: str) -> bool:
        """Whether any run waits for an approval answered by ``event`` (now, pending)."""
        now = time.time()
        if any(
            isinstance((spec.get("variables") or {}).get("approval"), dict) and deadline > now
            for *_, spec, deadline in self.waits(event)
        ):
            return True
        return (
            self.db.execute(
                "SELECT 1 FROM approvals WHERE event = ? AND status = 'pending' AND expires > ? LIMIT 1", (event, now)
            ).fetchone()
            is not None
        )

    def approval_outcome(self, run_id: str, approval_id: str) -> str | None:
        """What became of an approval that is not pending: ``answered``, ``expired`` (its
        timeout passed), or None when the run never had it."""
        row = self.db.execute(
            "SELECT status, expires FROM approvals WHERE run_id = ? AND id = ?", (run_id, approval_id)
        ).fetchone()
        if row is not None:
            return "expired" if row[0] == "expired" or (row[0] == "pending" and row[1] <= time.time()) else "answered"
        for *_, spec, deadline in self.waits(run_id=run_id):
            detail = (spec.get("variables") or {}).get("approval")
            if isinstance(detail, dict) and detail.get("id") == approval_id:
                return "expired" if deadline <= time.time() else None
        for step_id in self.step_ids(run_id):
            call = step_ids.approved_call(step_id)
            if call is not None and make_approval_id(run_id, call) == approval_id:
                return "answered" if self.step(run_id, step_id)[1] is not None else "expired"
        return None

    def track_approval(self, run_id: str, detail: Mapping[str, Any], expires: float) -> None:
        """Record an approval a run executed by Inngest waits for (the journal tracks those
        runs for the REST API); a repeated report of the same approval changes nothing."""
        body = {k: detail.get(k) for k in ("id", "tool", "args", "step")}
        self.db.execute(
            "INSERT OR IGNORE INTO approvals VALUES (?,?,?,?,?,?)",
            (run_id, str(detail["id"]), str(detail.get("event")), json.dumps(body, default=str), expires, "pending"),
        )

    def settle_approval(self, run_id: str, approval_id: str, status: str = "answered", *, was: str = "pending") -> bool:
        """Move a tracked approval from ``was`` to ``status``; False when it was not ``was``
        (another request answered it first: only one answer is sent on)."""
        return (
            self.db.execute(
                "UPDATE approvals SET status = ? WHERE run_id = ? AND id = ? AND status = ?", (status, run_id, approval_id, was)
            ).rowcount
            == 1
        )


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


__all__ = ["ApprovalsJournal"]
