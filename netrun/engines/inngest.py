"""The Inngest engine: each served network as an Inngest function whose handler runs the loop.

The first step of every run (``netrun.definition``) pins the definition the run starts on:
later calls, after a hot reload or on another replica, compile that memoized definition,
not the file as it is now. The run then executes as on every engine
(:func:`netrun.engines.execution.execute`), on :class:`InngestSteps`.

What the engine needs from the server that serves it comes in through its constructor:
the networks it serves (:class:`ServedNetworks`), the journal it tracks runs in for the
REST API, the callback that takes the runs' progress, and the key that tells once-only
progress events apart.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, Protocol

import inngest

from ..compile import ModelFactory, Program
from ..runtime import events, step_ids
from ..runtime.network import Emit
from ..runtime.render import RenderError
from ..spec import NetworkSpec
from ..spec.base import parse_duration
from .execution import Errors, RunStart, compile_definition, execute, model_factory
from .inngest_function import function_options
from .inngest_steps import InngestSteps, event_depth, event_json, last_attempt
from .local import FINAL_STATUSES, Journal, RunRecord
from .outcomes import Completed, Outcomes
from .triggers import META, network_input, run_thread

log = logging.getLogger("netrun.serve")

_PROGRAMS_KEPT = 64

_REPORTED_RUNS = 10_000
"""Runs whose reported once-only events stay in memory (others reload them from the journal)."""

OnceKey = Callable[[str, Mapping[str, Any]], "tuple[str, str] | None"]
"""What tells a once-only progress event apart from its run's others (None: not once-only):
:func:`netrun.runtime.events.once_key`, passed in by the server that journals the events."""


class ServedVersion(Protocol):
    """One served version of a network, as the engine reads it."""

    @property
    def spec(self) -> NetworkSpec: ...

    @property
    def hash(self) -> str: ...

    @property
    def base_dir(self) -> Path: ...

    def definition(self) -> dict[str, Any]: ...


class ServedNetworks(Protocol):
    """The networks served now, by name (a reload replaces them)."""

    @property
    def current(self) -> Mapping[str, ServedVersion]: ...

    def get(self, name: str) -> ServedVersion | None: ...


class InngestEngine:
    """The functions of the served networks, rebuilt after every reload that changes them."""

    def __init__(
        self,
        client: inngest.Inngest,
        networks: ServedNetworks,
        journal: Journal,
        environ: Mapping[str, str],
        emit: Emit,
        once_key: OnceKey,
        models: ModelFactory | None = None,
        data_dir: Path = Path(".netrun"),
    ) -> None:
        self.client = client
        self.data_dir = data_dir
        """Where the default thread store (SQLite) lives."""
        self.networks = networks
        self.journal = journal
        self.environ = environ
        self.emit = emit
        self.once_key = once_key
        self.watched: Callable[[str], bool] = lambda run_id: False
        """Whether a client streams the run now (then the model's text streams too)."""
        self.models = models
        self.functions: dict[str, inngest.Function[Any]] = {}
        """The served networks' functions, by network name."""
        self._retired: dict[str, inngest.Function[Any]] = {}
        """Functions of networks no longer served (removed, renamed, a new function id), by
        function id: Inngest still calls them for runs in flight, which go on from their
        pinned definition. They answer no event any more."""
        self._programs: dict[tuple[str, str], Program] = {}
        self._reported: OrderedDict[str, set[tuple[str, str]]] = OrderedDict()
        """Run id -> the (kind, key) of the once-only events it reported (see ``_emit_for``)."""

    @property
    def outcomes(self) -> Outcomes:
        return Outcomes(self.journal, self.environ, self.emit)

    def build(self) -> list[inngest.Function[Any]]:
        previous = self.functions
        self.functions = {
            name: self.client.create_function(**function_options(version.spec))(self._handler(name))
            for name, version in self.networks.current.items()
        }
        live = {fn.local_id for fn in self.functions.values()}
        for name, fn in previous.items():
            if fn.local_id not in live and fn.local_id not in self._retired:
                log.info("function %s (network %s) is no longer served; its runs in flight go on", fn.local_id, name)
                self._retired[fn.local_id] = self.client.create_function(
                    fn_id=fn.local_id,
                    name=f"{name} (retired)",
                    trigger=inngest.TriggerEvent(event=f"netrun/retired.{fn.local_id}"),
                )(self._handler(name))
        for fn_id in live:
            self._retired.pop(fn_id, None)  # served again
        return [*self.functions.values(), *self._retired.values(), self._run_ended()]

    def _run_ended(self) -> inngest.Function[Any]:
        """Marks runs Inngest ended without their handler (cancelled by ``cancel`` or a
        timeout, failed outside a step) in this server's journal, and tells their streams."""
        prefix = f"{self.client.app_id}-"

        async def ended(ctx: inngest.Context) -> None:
            data: dict[str, Any] = dict(ctx.event.data or {})
            original = data["event"] if isinstance(data.get("event"), dict) else {}
            meta = (original.get("data") or {}).get(META) if isinstance(original.get("data"), dict) else None
            run_id = str((meta or {}).get("run_id") or data.get("run_id") or "")
            record = self.journal.run(run_id) if run_id else None
            if record is None or record.status in FINAL_STATUSES:
                return
            error = data["error"] if isinstance(data.get("error"), dict) else {}
            how = "cancelled" if ctx.event.name == "inngest/function.cancelled" else "failed"
            reason = f"{how} by Inngest: {error.get('message') or how}"
            if how == "cancelled":  # a cancel entry, a timeout: the run is cancelled, as on the local engine
                if self.journal.cancel(run_id, reason):
                    self.emit(events.RUN_CANCELLED, {"run_id": run_id, "error": reason, "replayed": False})
                return
            self.outcomes.fail(run_id, reason, record.definition)

        condition = f'event.data.function_id.startsWith("{prefix}")'
        return self.client.create_function(
            fn_id="netrun-run-ended",
            name="netrun: runs Inngest ended",
            trigger=[
                inngest.TriggerEvent(event=e, expression=condition)
                for e in ("inngest/function.cancelled", "inngest/function.failed")
            ],
        )(ended)

    def _program(self, pinned: Mapping[str, Any]) -> Program:
        # Every call of a run replays it from the top: compile its definition once per process.
        key = (str(pinned["hash"]), str(pinned["base_dir"]))
        program = self._programs.get(key)
        if program is None:
            base_dir = Path(pinned["base_dir"])
            program = compile_definition(pinned["definition"], base_dir, self.models or model_factory(base_dir, {}, self.environ))
            if len(self._programs) >= _PROGRAMS_KEPT:
                self._programs.pop(next(iter(self._programs)))
            self._programs[key] = program
        return program

    def _handler(self, name: str) -> Callable[[inngest.Context], Any]:
        async def handler(ctx: inngest.Context) -> Any:
            event = event_json(ctx.event)
            data: dict[str, Any] = event["data"] if isinstance(event.get("data"), dict) else {}
            meta: dict[str, Any] = data[META] if isinstance(data.get(META), dict) else {}
            depth = event_depth(event)  # read before the check below: it holds for every network the event starts
            if meta.get("network") != name:  # the run id is for the network it was started for
                meta = {}
            run_id = str(meta.get("run_id") or ctx.run_id)

            async def pin() -> dict[str, Any]:
                """The definition and the input the run starts on, memoized as its first step."""
                version = self.networks.get(name)
                if version is None:
                    raise inngest.NonRetriableError(f"network '{name}' is no longer served here")
                definition = version.definition()
                given = meta.get("input")
                problem: str | None
                try:
                    text = given if isinstance(given, str) else network_input(version.spec, event)
                except RenderError as exc:
                    text, problem = "", f"the trigger's input template: {exc}"
                else:
                    problem = None
                thread = run_thread(version.spec, event, meta, run_id)
                self._record_start(run_id, version.hash, definition, str(version.base_dir), event, meta, text, thread)
                if problem is not None:
                    self._fail(run_id, problem)
                return {"hash": version.hash, "definition": definition, "base_dir": str(version.base_dir), "input": text}

            pinned = await ctx.step.run(step_ids.DEFINITION, pin)
            start = RunStart(
                id=run_id,
                input=str(pinned.get("input", "")),
                event=event,
                state=meta.get("state") or None,
                options={**meta, "inngest_run_id": ctx.run_id},  # for the traces: the run as Inngest names it
                depth=depth,
                definition=pinned.get("definition"),
            )
            outcome = await execute(
                start,
                lambda: self._program(pinned),
                lambda program: InngestSteps(ctx, run_id, self.functions.get, depth),
                self.outcomes,
                environ=self.environ,
                emit=self._emit_for(run_id),
                stream=functools.partial(self.watched, run_id),
                data_dir=self.data_dir,
                # A step no retry can fix fails the run; anything else is the SDK's (its control
                # flow, and the retries of what fails) until its last attempt, which fails the run.
                errors=Errors(fatal=(inngest.NonRetriableError,), internal=functools.partial(last_attempt, ctx)),
                cancelled=functools.partial(self._cancel_reason, run_id),
            )
            self._reported.pop(run_id, None)
            if not isinstance(outcome, Completed):  # failed (Inngest cancels a run without its handler)
                raise inngest.NonRetriableError(outcome.message)
            return outcome.result

        return handler

    def _cancel_reason(self, run_id: str) -> str | None:
        """Why this server's journal says the run was cancelled (``POST /runs/{id}/cancel``),
        else None: until Inngest acts on the cancelling event (it may come after the run's
        next calls, or match no cancel entry: a retired function has none) the run starts no
        further step, as on the local engine, and ends failed on Inngest with that reason."""
        known = self.journal.status(run_id)
        return (known[1] or "cancelled") if known is not None and known[0] == "cancelled" else None

    def _record_start(
        self,
        run_id: str,
        digest: str,
        definition: dict[str, Any],
        base_dir: str,
        event: dict[str, Any],
        meta: Mapping[str, Any],
        text: str,
        thread: tuple[str | None, str | None] = (None, None),
    ) -> None:
        """Track the run in this server's journal, for ``GET /runs/{id}`` and its events."""
        if self.journal.run(run_id) is None:
            self.journal.create_run(
                RunRecord(
                    id=run_id,
                    network=str(definition.get("name")),
                    definition_hash=digest,
                    definition=definition,
                    base_dir=base_dir,
                    input=text,
                    state=dict(meta.get("state") or {}),
                    event=event,
                    options={"engine": "inngest"},
                    status="running",
                    result=None,
                    error=None,
                )
            )
        else:
            self.journal.set_status(run_id, "running")
        self.emit(
            events.RUN_STARTED,
            {
                "run_id": run_id,
                "network": definition.get("name"),
                "input": text,
                "definition_hash": digest,
                **dict(zip(("thread_id", "user"), thread, strict=True)),
                "replayed": False,
            },
        )

    def _emit_for(self, run_id: str) -> Emit:
        """The loop's ``emit`` for one Inngest call.

        Which call first sees an outcome depends on Inngest's order and concurrency (planned
        steps run as separate, concurrent calls; the discovery call after them sees them all;
        a thread step runs between a turn's steps and its end), so the loop's guess
        (``replayed``) is not used for the once-only events: every call reports what it knows,
        and each (kind, iteration or step) goes out once, the first time, keyed as the
        journal keys them. The journal's keys also seed a run this process has not seen yet
        (after a restart, on another replica)."""

        def emit(kind: str, data: dict[str, Any]) -> None:
            key = self.once_key(kind, data)
            if key is not None:
                if not self._first_report(run_id, key):
                    return
                data = {**data, "replayed": False}
            elif data.get("replayed"):
                self.emit(kind, data)
                return
            if kind in events.WAITS:
                self.journal.set_status(run_id, "waiting")
            elif kind == events.AGENT_STARTED:
                self.journal.set_status(run_id, "running")
            self._track_approval(run_id, kind, data)
            self.emit(kind, data)

        return emit

    def _first_report(self, run_id: str, key: tuple[str, str]) -> bool:
        """Whether this once-only event of the run has not been reported yet (and note it)."""
        seen = self._reported.get(run_id)
        if seen is None:
            try:
                seen = set(self.journal.event_marks(run_id)[2])
            except sqlite3.Error:
                seen = set()
            self._reported[run_id] = seen
            while len(self._reported) > _REPORTED_RUNS:
                self._reported.popitem(last=False)
        else:
            self._reported.move_to_end(run_id)
        if key in seen:
            return False
        seen.add(key)
        return True

    def _track_approval(self, run_id: str, kind: str, data: Mapping[str, Any]) -> None:
        """Keep the journal's list of the run's pending approvals, so that ``POST /events``
        can give an id-less approval its id and refuse one that answers nothing before it
        is sent (Inngest matches the wait, and says nothing about an event that misses)."""
        ident = data.get("approval_id")
        if not isinstance(ident, str):
            return
        if kind == events.APPROVAL_REQUESTED:
            try:
                seconds = parse_duration(str(data.get("timeout") or "24h")).total_seconds()
            except ValueError:
                seconds = 24 * 3600.0
            # Inngest starts the wait's timeout in this call; a repeated report keeps the first.
            self.journal.track_approval(run_id, {**data, "id": ident}, time.time() + seconds)
        elif kind == events.APPROVAL_RESOLVED:
            status = "expired" if data.get("resolution") == "expired" else "answered"
            # POST /events marks an approval answered when it sends it; one that came too late
            # for Inngest's timeout is expired all the same.
            if not self.journal.settle_approval(run_id, ident, status) and status == "expired":
                self.journal.settle_approval(run_id, ident, status, was="answered")

    def _fail(self, run_id: str, message: str) -> NoReturn:
        """Fail the run (recorded as on every engine) and end the Inngest function so."""
        failed = self.outcomes.fail(run_id, message)
        self._reported.pop(run_id, None)
        raise inngest.NonRetriableError(failed.message)


__all__ = ["InngestEngine", "OnceKey", "ServedNetworks", "ServedVersion"]
