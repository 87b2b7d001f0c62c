"""One log line when a run starts, waits, resumes and ends (with its id, network, status,
duration and tokens), for the people and machines watching ``netrun serve``'s log.

It reads the same run events the streams do (:mod:`netrun.runtime.events`), for runs of
both engines, and logs on ``netrun.runs`` with the fields as ``extra`` (the JSON log format,
:mod:`netrun.cli.logs`, writes them as keys; the text format appends them as ``key=value``).
Replayed events (a resumed run catching up) log nothing; what a run's events quote is
redacted already.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ..runtime import events

log = logging.getLogger("netrun.runs")

KEEP = 10_000
"""Runs whose start this process remembers (an older one's duration comes from the journal)."""

ENDS = {events.RUN_COMPLETED: "completed", events.RUN_FAILED: "failed", events.RUN_CANCELLED: "cancelled"}


class RunLog:
    """Turns run events into log lines; ``started_at(run_id)`` gives the start time (Unix
    seconds) of a run this process did not see start, or None."""

    def __init__(self, started_at: Callable[[str], float | None] = lambda _: None) -> None:
        self.started_at = started_at
        self._runs: OrderedDict[str, tuple[float, str | None, bool]] = OrderedDict()
        """Per run: when it started, its network, whether it waits now."""

    def observe(self, kind: str, data: Mapping[str, Any]) -> None:
        if data.get("replayed") or not log.isEnabledFor(logging.INFO):
            return
        run_id = str(data.get("run_id", ""))
        if kind == events.RUN_STARTED:
            if run_id in self._runs:  # on Inngest, each call of a run reports its start again
                return
            self._remember(run_id, time.time(), data.get("network"), False)
            fields = {"run_id": run_id, "network": data.get("network"), "event": "run.started"}
            if data.get("thread_id"):
                fields["thread_id"] = data["thread_id"]
            log.info("run %s of %s started", run_id, data.get("network"), extra={"netrun": fields})
            return
        known = self._runs.get(run_id)
        network = known[1] if known else None
        if kind in (events.RUN_WAITING, events.APPROVAL_REQUESTED, events.WAITING):
            if known is None or not known[2]:
                self._remember(run_id, known[0] if known else self._start(run_id), network, True)
                what = data.get("event") or data.get("tool")
                fields = {"run_id": run_id, "network": network, "event": "run.waiting", "waits_for": what}
                log.info("run %s waits for %s", run_id, what, extra={"netrun": fields})
            return
        if kind in ENDS:
            self._runs.pop(run_id, None)
            status = ENDS[kind]
            start = known[0] if known else self._start(run_id)
            fields = {"run_id": run_id, "network": network, "event": "run.ended", "status": status}
            if start is not None:
                fields["duration_ms"] = round((time.time() - start) * 1000)
            usage = (data.get("result") or {}).get("usage") if isinstance(data.get("result"), dict) else None
            if isinstance(usage, dict):
                fields["tokens"] = usage.get("tokens")
            error = data.get("error")
            text = f"run {run_id} {status}" + (f": {error}" if error and status != "completed" else "")
            if error and status != "completed":
                fields["error"] = error
            log.log(logging.WARNING if status == "failed" else logging.INFO, text, extra={"netrun": fields})
            return
        if known is not None and known[2]:  # the first event after a wait: it runs again
            self._remember(run_id, known[0], network, False)
            log.info("run %s resumed", run_id, extra={"netrun": {"run_id": run_id, "network": network, "event": "run.resumed"}})

    def _start(self, run_id: str) -> float | None:
        try:
            return self.started_at(run_id)
        except Exception:  # a log line never fails a run (a journal fault is reported where it matters)
            return None

    def _remember(self, run_id: str, start: float | None, network: Any, waiting: bool) -> None:
        self._runs[run_id] = (start if start is not None else time.time(), network, waiting)
        self._runs.move_to_end(run_id)
        while len(self._runs) > KEEP:
            self._runs.popitem(last=False)


__all__ = ["RunLog"]
