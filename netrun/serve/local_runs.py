"""Runs on the embedded local engine while ``netrun serve`` is up.

Runs execute as background tasks; every step is journaled, so a server restart loses
nothing: at start-up, runs that were executing resume from the journal (no completed
inference or tool call runs again), runs waiting for an event keep waiting, and waits
whose timeout passed while the server was down time out. Events start the networks whose
triggers they match and answer the waits they match.

A run whose journal cannot be written (a full disk) stops where it is, as at a shutdown,
and is tried again every tick until the journal takes its writes; it then resumes (or
fails with its reason) without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from .. import observe
from ..engines.concurrency import key_value
from ..engines.local import RunRecord
from ..engines.runner import EngineError, LocalEngine, RunBusyError
from ..engines.triggers import accepts, network_input, triggers
from ..runtime.render import RenderError, evaluate
from ..spec import scopes
from ..spec.base import parse_duration
from ..spec.trigger import EventTrigger
from ..sqlite_file import StorageFault
from .catalog import Catalog, Version

log = logging.getLogger("netrun.serve")

TICK_SECONDS = 1.0
"""How often timed-out waits are looked for, and runs stopped by a full disk tried again."""

DRAIN_SECONDS = 20.0
"""At shutdown, how long runs may take to finish the step in flight."""


class SingletonSkipped(Exception):  # noqa: N818 - an outcome the caller reports, like Inngest's "skipped"
    """``function.singleton`` with ``mode: skip``: a run with the same key has not ended, so
    this one does not start."""

    def __init__(self, network: str, running: str) -> None:
        super().__init__(
            f"network '{network}' runs one run at a time (function.singleton, mode skip) and run {running} "
            "has not ended: this run was skipped"
        )
        self.network, self.running = network, running


class LocalRuns:
    def __init__(self, engine: LocalEngine, catalog: Catalog) -> None:
        self.engine = engine
        self.catalog = catalog
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.stalled: dict[str, str] = {}
        """Runs stopped because the journal could not be written, with the reason: tried
        again every tick (``/healthz`` shows them)."""
        self._stalled_before: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------
    def open(self) -> list[str]:
        """Resume the runs a previous server left executing, finish the cancelled ones whose
        ``finally:`` steps it left undone; start the wait timer."""
        journal = self.engine.journal
        still_waiting = {w[0] for w in journal.waits()}
        recovered = [
            run_id
            for status in ("running", "queued", "waiting")  # a waiting run whose answer came as the server stopped
            for run_id in journal.runs(status)
            # A run still waiting for one call goes on with another one answered meanwhile.
            if (run_id not in still_waiting or journal.news(run_id)) and _resumable_alone(journal.run(run_id))
        ]
        for run_id in recovered:
            self._spawn(self.engine.resume(run_id), run_id)
        # A cancelled run stopped before its finally: steps were done (a shutdown, a full disk,
        # a crash): nothing else runs them. Child runs too: a cancelled parent replays no call.
        for run_id in self.engine.unfinished_cancels():
            self._spawn(self.engine.finish_cancelled(run_id), run_id)
            recovered.append(run_id)
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        return recovered

    async def close(self, drain: float = DRAIN_SECONDS) -> None:
        """Stop: runs finish the step in flight (an inference or a tool call paid for is not
        thrown away) and stop before their next one; after ``drain`` seconds the rest are
        cancelled. Either way they resume at the next start."""
        self.engine.stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
        running = [t for t in self._tasks if not t.done()]
        if running:
            log.info("waiting up to %.0f s for %d run(s) to finish their step in flight", drain, len(running))
            await asyncio.wait(running, timeout=drain)
        tasks = [*self._tasks, *([self._ticker] if self._ticker else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, RunRecord], run_id: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except StorageFault as exc:
                if run_id not in self._stalled_before:
                    log.warning("run %s stopped: %s; it goes on from its last recorded step once it can", run_id, exc)
                self.stalled[run_id] = str(exc)
                self._stalled_before.add(run_id)
                return
            except RunBusyError:
                pass  # another process executes it; it goes on there
            except EngineError as exc:
                log.error("run %s: %s", run_id, exc)
            except Exception:  # a bug: log it, keep the server (the run stays resumable)
                log.exception("run %s stopped on an internal error", run_id)
            if run_id in self._stalled_before:
                self._stalled_before.discard(run_id)
                log.info("run %s goes on: the journal takes writes again", run_id)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            for run_id in list(self.stalled):
                del self.stalled[run_id]
                self._spawn(self.engine.resume(run_id), run_id)
            try:
                due = self.engine.journal.due_waits(time.time())
            except Exception:  # a locked or busy journal: try again at the next tick
                log.exception("cannot read the waits that timed out; trying again")
                continue
            for run_id in due:
                self._spawn(self.engine.resume(run_id), run_id)

    # -- runs and events -----------------------------------------------------------------
    def start(
        self,
        version: Version,
        *,
        input: str,
        state: Mapping[str, Any] | None,
        event: Mapping[str, Any],
        options: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> RunRecord:
        """Create a run and execute it in the background. With ``function.singleton``, a run
        whose key another unfinished run has is skipped (:class:`SingletonSkipped`) or
        cancels that run first (``mode: cancel``), as on Inngest."""
        fn = version.spec.function
        if fn is not None and fn.singleton is not None:
            key = key_value(fn.singleton.key, event)
            holders = [r.id for r in self.engine.journal.unfinished(version.name) if r.options.get("singleton") == key]
            if holders and fn.singleton.mode == "skip":
                raise SingletonSkipped(version.name, holders[0])
            for holder in holders:
                with contextlib.suppress(EngineError):  # ending already (its finally: steps run)
                    self.engine.cancel(holder, f"cancelled by a newer run of '{version.name}' (function.singleton, mode cancel)")
            options = {**(options or {}), "singleton": key}
        record = self.engine.create(
            version.spec, version.base_dir, input=input, state=state, event=event, options=options, status="queued", run_id=run_id
        )
        self._spawn(self.engine.execute(record), record.id)
        return record

    def retry(self, run_id: str) -> RunRecord:
        """Reopen a failed run (EngineError if it did not fail) and execute it in the background."""
        record = self.engine.reopen(run_id)
        self._spawn(self.engine.execute(record), run_id)
        return record

    def deliver(
        self,
        name: str,
        data: Mapping[str, Any],
        run_id: str | None = None,
        *,
        depth: int = 0,
        from_run: bool = False,
        event_id: str | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """An event: start the networks it triggers, resume the runs whose waits it answers.

        ``depth``: of the runs it starts (0 for an event from outside; a run's events pass
        its depth + 1, and the sender refused those past its limit already). ``from_run``: a
        run sent it; it answers no approval. ``event_id``: the event's id (a run's events have
        one made from the run and the step): the same event delivered again, when a crash
        came between sending it and recording the step, starts no run twice. ``trace``: the
        W3C trace context of the request that sent it, which the runs it starts continue; an
        event a run sent continues the sending tool call's (the current context)."""
        if trace is None and from_run:
            trace = observe.carrier() or None
        event = {"name": name, "data": dict(data), "ts": int(time.time() * 1000)}
        started, problems, skipped = [], [], []
        cancelled = self._cancel_on(event)
        if run_id is None:
            for version in self.catalog.current.values():
                try:
                    if triggered(version, event):
                        run = _run_of(event_id, version.name)
                        if run is not None and self.engine.journal.run(run) is not None:
                            continue  # started by an earlier delivery of this event
                        started.append(
                            self.start(
                                version,
                                input=network_input(version.spec, event),
                                state=None,
                                event=event,
                                options=({"depth": depth} if depth else {}) | ({"trace": dict(trace)} if trace else {}) or None,
                                run_id=run,
                            ).id
                        )
                except RenderError as exc:
                    problems.append(f"network {version.name}: {exc}")
                except SingletonSkipped as exc:
                    skipped.append({"network": exc.network, "running": exc.running})
        resumed = self.engine.answer(name, data, run_id, from_run=from_run)
        for woken in resumed:
            self._spawn(self.engine.resume(woken), woken)
        return {
            "started": started,
            "resumed": resumed,
            "problems": problems,
            **({"skipped": skipped} if skipped else {}),
            **({"cancelled": cancelled} if cancelled else {}),
        }

    def _cancel_on(self, event: Mapping[str, Any]) -> list[str]:
        """Cancel the unfinished runs that ``event`` cancels (``function.cancel``: its name, its
        ``if`` over ``event``, the run's trigger, and ``async``, this one; within ``timeout``
        of the run's start), as Inngest does; the ids of the runs cancelled."""
        cancelled = []
        for version in self.catalog.current.values():
            entries = [c for c in (version.spec.function.cancel if version.spec.function else []) if c.event == event["name"]]
            if not entries:
                continue
            for record in self.engine.journal.unfinished(version.name):
                if record.options.get("engine") == "inngest" or record.options.get("parent"):
                    continue  # Inngest cancels its own; a child ends with its parent
                for entry in entries:
                    if entry.timeout is not None and time.time() - record.created > parse_duration(entry.timeout).total_seconds():
                        continue
                    if entry.if_:
                        try:
                            if not evaluate(
                                entry.if_, scopes.variables(scopes.CANCEL_IF, {"event": record.event, "async": dict(event)})
                            ):
                                continue
                        except RenderError:
                            continue  # a field the events lack: no match (Inngest's rule too)
                    with contextlib.suppress(EngineError):  # ended meanwhile
                        self.engine.cancel(record.id, f"cancelled by the event {event['name']} (function.cancel)")
                        cancelled.append(record.id)
                    break
        return cancelled


def _run_of(event_id: str | None, network: str) -> str | None:
    """The id of the run an event with an id starts of a network: the same on every delivery."""
    if not event_id:
        return None
    return "e" + hashlib.sha256(f"{event_id}\n{network}".encode()).hexdigest()[:24]


def _resumable_alone(record: RunRecord | None) -> bool:
    """Whether start-up should resume this run itself. Not a run executed by Inngest (the
    journal tracks those for the REST API; Inngest carries them on), nor a child run (a
    network used as a tool: its parent resumes it when it replays the call)."""
    return record is not None and record.options.get("engine") != "inngest" and not record.options.get("parent")


def triggered(version: Version, event: Mapping[str, Any]) -> bool:
    """Whether ``event`` starts a run of ``version`` (an event trigger with its ``if``)."""
    for trigger in triggers(version.spec):
        if isinstance(trigger, EventTrigger) and trigger.event == event["name"] and accepts(trigger, event):
            return True
    return False
