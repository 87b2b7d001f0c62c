"""What changes a local run from outside its loop: events that answer its waits, a retry of
a failed run, a cancel. :class:`LocalEngine` (engines/runner.py) inherits these; they
live apart from starting and executing runs so that each module holds one concern."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..errors import NetrunError
from ..runtime.events import RUN_CANCELLED
from ..runtime.lifecycle import CANCEL_FINISHED
from ..runtime.network import Emit
from .approvals import resolve_approval
from .local import FINAL_STATUSES, Journal, RunRecord, wait_matches

log = logging.getLogger("netrun.engine")


class EngineError(NetrunError, phase="engine"):
    """A request the engine cannot honour (an unknown run, a run that cannot resume)."""


class RunBusyError(EngineError):
    """The run is being executed by another process right now."""


class RunControl:
    """Answers, retries and cancels; the engine supplies the journal and executes runs."""

    journal: Journal
    emit: Emit | None
    _answered: dict[str, set[str]]
    _active: set[str]
    _cancelled: set[str]
    _ending: set[str]
    _finishing: set[Any]

    async def resume(self, run_id: str) -> RunRecord:
        raise NotImplementedError  # LocalEngine's

    async def _execute(self, record: RunRecord, finishing: bool = False) -> RunRecord:
        raise NotImplementedError  # LocalEngine's

    def local_run(self, run_id: str, on_inngest: str, *, approvals: bool = False, ended_ok: bool = False) -> RunRecord:
        """The journaled run ``run_id``, one this engine executes (with ``ended_ok``, an ended
        run whichever engine ran it); :class:`EngineError` for no such run, or a run Inngest
        executes (``on_inngest`` says what to do instead)."""
        record = self.journal.run(run_id, approvals=approvals)
        if record is None:
            raise EngineError(f"no run {run_id} in {self.journal.path}")
        if record.options.get("engine") == "inngest" and not (ended_ok and record.status in FINAL_STATUSES):
            raise EngineError(
                f"run {run_id} executes on Inngest (it was started by `netrun serve` in Inngest mode); {on_inngest}"
            )
        return record

    async def retry(self, run_id: str) -> RunRecord:
        """Run a failed run again once its cause is fixed (a key set, a server back, a
        replies file completed): see :meth:`reopen`; then it executes from there."""
        return await self._execute(self.reopen(run_id))

    def reopen(self, run_id: str) -> RunRecord:
        """Make a failed run ``running`` again without executing it: its completed steps stay
        memoized and are not repeated, the step that failed will run again, and the run keeps
        the definition it started with. Raises :class:`EngineError` for a run that did not fail."""
        record = self.local_run(run_id, "retry it from Inngest")
        if record.status != "failed":
            raise EngineError(
                f"run {run_id} is {record.status}, not failed: only a failed run can be retried"
                + ("" if record.status == "completed" else f" (resume it with: netrun run --resume {run_id})")
            )
        if run_id in self._active or not self.journal.claim(run_id):
            raise RunBusyError(f"run {run_id} is being retried already")
        try:
            self.journal.reopen(run_id)
        finally:
            self.journal.release(run_id)
        reopened = self.journal.run(run_id)
        assert reopened is not None
        reopened.options = {**reopened.options, "resumed": True}
        return reopened

    def cancel(self, run_id: str, reason: str) -> RunRecord:
        """End an unfinished run as ``cancelled`` (and its child runs): no event resumes it,
        and if it executes now, the step in flight finishes and no further one starts (as on
        Inngest). Either way its ``finally:`` steps then run, once, with the outcome
        ``cancelled``: in the executing task, else in a task started here (with no event loop
        running, the next :meth:`resume` of the run runs them). The journal says
        ``cancelled`` at once; ``run.cancelled`` (a stream's end) goes out once the run has
        ended: at once for a run with no ``finally:`` steps, else after them.

        A run whose loop has ended is ending with the outcome it settled (its ``send:``
        events, its ``finally:`` steps run for it): it can no longer be cancelled. Raises
        :class:`EngineError` for that, and for a run that ended or does not exist."""
        self.local_run(run_id, "cancel it from Inngest")
        if run_id in self._ending:
            raise EngineError(
                f"run {run_id} is ending (its outcome is settled and its send: events and finally: steps run for it):"
                " it can no longer be cancelled"
            )
        for member in reversed(self.journal.family(run_id)):  # children first: their parent's call then ends
            if member in self._ending:
                continue
            if self.journal.cancel(member, reason):
                record = self.journal.run(member)
                has_finally = record is not None and bool((record.definition or {}).get("finally"))
                if member in self._active:
                    self._cancelled.add(member)
                else:
                    self._finish_soon(member)
                if self.emit and not has_finally:  # else the run's finally: ends it (RUN_CANCELLED then)
                    self.emit(RUN_CANCELLED, {"run_id": member, "error": reason, "replayed": False})
            elif member == run_id:
                ended = self.journal.run(run_id)
                raise EngineError(
                    f"run {run_id} is {ended.status if ended else 'gone'}: only a run that has not ended can be cancelled"
                )
        cancelled = self.journal.run(run_id)
        assert cancelled is not None
        return cancelled

    def cancel_reason(self, run_id: str) -> str | None:
        """Why the run was cancelled, once it has been while it executes here; else None."""
        if run_id not in self._cancelled:
            return None
        record = self.journal.run(run_id)
        return (record.error if record is not None else None) or "cancelled"

    def _finish_soon(self, run_id: str) -> None:
        record = self.journal.run(run_id)
        if record is None or not (record.definition or {}).get("finally"):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a caller without an event loop: resume() runs them
            return
        task = loop.create_task(self._finish_logged(run_id))
        self._finishing.add(task)  # a task nobody holds may be collected before it ends
        task.add_done_callback(self._finishing.discard)

    async def _finish_logged(self, run_id: str) -> None:
        # A task nobody awaits: what stops it is logged; the run stays cancelled with its
        # finally: steps to run, and the next resume (or start-up, unfinished_cancels) runs them.
        try:
            await self.finish_cancelled(run_id)
        except Exception as exc:
            log.warning("run %s: its finally: steps stopped (%s); they run at its next resume", run_id, exc)

    def unfinished_cancels(self) -> list[str]:
        """The cancelled runs this engine executes whose ``finally:`` steps have not all run
        (a shutdown, a full disk or a crash stopped them): start-up finishes them."""
        found = []
        for run_id in self.journal.runs("cancelled"):
            if self.journal.step(run_id, CANCEL_FINISHED)[0]:
                continue
            record = self.journal.run(run_id)
            if record is not None and record.options.get("engine") != "inngest" and (record.definition or {}).get("finally"):
                found.append(run_id)
        return found

    async def finish_cancelled(self, run_id: str) -> RunRecord:
        """Run the ``finally:`` steps of a run cancelled while it was not executing (waiting,
        queued, interrupted): it replays its recorded steps to rebuild its state, stops at the
        first new one and runs them, once. A run executing elsewhere runs them itself."""
        record = self.journal.run(run_id)
        if record is None or record.status != "cancelled":
            raise EngineError(f"run {run_id} is {record.status if record else 'gone'}, not cancelled")
        if not (record.definition or {}).get("finally") or self.journal.step(run_id, CANCEL_FINISHED)[0]:
            return record
        try:
            return await self._execute(record, finishing=True)
        except RunBusyError:  # executing (here or in another process): it runs them as it stops
            return record

    async def deliver(
        self, name: str, data: Mapping[str, Any], run_id: str | None = None, *, from_run: bool = False
    ) -> list[RunRecord]:
        """Deliver an event: resolve the waits it answers, then resume those runs."""
        woken = self.answer(name, data, run_id, from_run=from_run)
        resumed = []
        for run_id_ in woken:
            try:
                resumed.append(await self.resume(run_id_))
            except RunBusyError:  # its owner finds the answer in the journal and goes on
                record = self.journal.run(run_id_, approvals=True)
                if record is not None:
                    resumed.append(record)
        return resumed

    def answer(self, name: str, data: Mapping[str, Any], run_id: str | None = None, *, from_run: bool = False) -> list[str]:
        """Record an event as the outcome of the waits it answers; the runs to resume.

        An approval answers one call by its id: one without an id is given the id of the
        single approval its run waits for; raises :class:`ApprovalError` when it can answer
        none (no such run or approval, several pending, answered already, ...).

        ``from_run``: the event was sent by a run (an event tool). It answers no approval: a
        model must not approve its own calls, or another run's."""
        if not from_run:
            approval = resolve_approval(self.journal, name, data, run_id)
            if approval is not None:
                data, run_id = approval, str(approval["run_id"])
        incoming = {"name": name, "data": dict(data), "ts": int(time.time() * 1000)}
        woken: list[str] = []
        for wait_run, step_id, _, spec, deadline in self.journal.waits(name):
            if run_id is not None and wait_run != run_id:
                continue
            record = self.journal.run(wait_run)
            if record is None or time.time() >= deadline or (from_run and "approval" in (spec.get("variables") or {})):
                continue
            if wait_matches(spec, record.event, incoming) and self.journal.resolve_wait(wait_run, step_id, incoming):
                woken.append(wait_run)
                self._answered.setdefault(wait_run, set()).add(step_id)
        return list(dict.fromkeys(woken))

    def _expire_waits(self, run_id: str) -> None:
        now = time.time()
        for _, step_id, *_, deadline in self.journal.waits(run_id=run_id):
            if now >= deadline and self.journal.resolve_wait(run_id, step_id, None):
                self._answered.setdefault(run_id, set()).add(step_id)
