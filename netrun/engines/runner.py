"""Starting, resuming and waking runs on the local engine."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from .. import observe
from ..compile import ModelFactory, Program
from ..redact import Secrets
from ..runtime import step_ids
from ..runtime.events import RUN_CANCELLED, RUN_STARTED, RUN_WAITING
from ..runtime.network import Emit, RunError
from ..runtime.steps import RunSuspended
from ..runtime.tooling import ToolOutcome
from ..spec import NetworkSpec
from ..spec.network import depth_of
from ..sqlite_file import StorageFault
from .approvals import ApprovalError
from .concurrency import ConcurrencyGate, Slot, slots
from .execution import (
    THREAD_OPTIONS,
    Errors,
    RunStart,
    compile_definition,
    execute,
    model_factory,
    step_retries,
)
from .local import FINAL_STATUSES, Journal, JournalError, LocalSteps, RunRecord, RunStopped, new_run_id
from .outcomes import Cancelled, Ended, Failed, Outcomes
from .run_control import EngineError, RunBusyError, RunControl
from .triggers import run_thread

NetworkFinder = Callable[[Path, str], NetworkSpec | None]
"""Finds a network used as a tool, by the folder of the run that calls it and its name."""


class LocalEngine(RunControl):
    def __init__(
        self,
        journal: Journal,
        environ: Mapping[str, str],
        emit: Emit | None = None,
        *,
        step_retries: int | None = None,
        backoff: float = 0.5,
        retry_after_cap: float = 60.0,
        models: ModelFactory | None = None,
        stream: bool | Callable[[str], bool] = True,
        gate: ConcurrencyGate | None = None,
        networks: NetworkFinder | None = None,
    ) -> None:
        self.journal = journal
        self.environ = environ
        self.emit = emit
        self.step_retries = step_retries
        """Retries of a failed step for every run, overriding the networks' ``function.retries``
        (``netrun test`` uses 0); ``None``: each network's, else :data:`DEFAULT_RETRIES`."""
        self.backoff = backoff
        """Seconds before a step's first retry, doubling with each further one."""
        self.retry_after_cap = retry_after_cap
        """The longest ``Retry-After`` (a model's 429) a step waits; a longer one fails it."""
        self.models = models
        """Makes the model clients instead of litellm/scripted files (to embed netrun)."""
        self.stream = stream
        """Stream model text to ``emit`` as it arrives (the terminal); off for scripts."""
        self.on_event: Callable[..., Any] | None = None
        """Takes the events runs send, instead of answering waits in line (``netrun serve``):
        called with the event's name, its data, ``depth=`` (of the runs it starts),
        ``from_run=True`` and ``event_id=`` (the same when a crash makes the run send it again)."""
        self.networks = networks
        """Finds a network used as a tool, by folder and name (the CLI: the valid file of that
        name in the folder; `netrun serve`: what it serves). None: no network is found."""
        self.stopping = False
        """Set when the server shuts down: runs finish the step in flight and stop there."""
        self._answered: dict[str, set[str]] = {}
        """Per run, the waits answered since it last executed (their outcomes are news)."""
        self._active: set[str] = set()
        """Runs executing in this process now."""
        self._cancelled: set[str] = set()
        """Runs cancelled while they may be executing here: they start no further step."""
        self._ending: set[str] = set()
        """Runs executing here whose loop has ended: their outcome is settled, a cancel is refused."""
        self.gate = gate
        """Holds the networks' concurrency limits (``netrun serve``); None: no limits."""
        self._recordings: dict[str, dict[str, list[dict[str, Any]]]] = {}
        """Replies being recorded, per file: a run and its child runs write one file."""
        self._finishing: set[Any] = set()
        """Tasks running the ``finally:`` steps of runs cancelled while not executing (RunControl)."""

    # -- programs ----------------------------------------------------------------------
    def program(self, record: RunRecord) -> Program:
        base_dir = Path(record.base_dir)
        models = self.models or model_factory(base_dir, record.options, self.environ, record.definition, self._recordings)
        program = compile_definition(record.definition, base_dir, models, record.definition_hash)
        if record.options.get("stubs"):  # `netrun test`: tools that answer a fixed result
            from ..compile import with_stubs

            program = with_stubs(program, record.options["stubs"])
        return program

    # -- runs --------------------------------------------------------------------------
    async def start(self, spec: NetworkSpec, base_dir: Path, **details: Any) -> RunRecord:
        """:meth:`create` a run (``details``: its input, state, event, options, ...) and execute it."""
        record, definition = self._new(spec, base_dir, **details)
        await self.journal.start_run(record, definition)  # owned from the start, in the group commit
        self._started(spec, record)
        return await self._execute(record, claimed=True)

    def create(self, spec: NetworkSpec, base_dir: Path, **details: Any) -> RunRecord:
        """Record a new run without executing it (``details``: as :meth:`_new` takes them):
        ``running`` (it executes now) or ``queued`` (it waits for a slot under its network's
        concurrency limits)."""
        record, definition = self._new(spec, base_dir, **details)
        self.journal.create_run(record, definition)
        self._started(spec, record)
        return record

    def _new(
        self,
        spec: NetworkSpec,
        base_dir: Path,
        *,
        input: str,
        state: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        status: str = "running",
    ) -> tuple[RunRecord, str]:
        """A new run's record, and its definition's JSON."""
        from ..compile import definition_hash, run_definition

        definition, definition_json = run_definition(spec)
        record = RunRecord(
            id=run_id or new_run_id(),
            network=spec.name,
            definition_hash=definition_hash(spec),
            definition=definition,
            base_dir=str(base_dir.resolve()),
            input=input,
            state=dict(state or {}),
            event=dict(event or {}),
            options=dict(options or {}),
            status=status,
            result=None,
            error=None,
        )
        return record, definition_json

    def _started(self, spec: NetworkSpec, record: RunRecord) -> None:
        if self.emit:
            self.emit(
                RUN_STARTED,
                {
                    "run_id": record.id,
                    "network": spec.name,
                    "input": record.input,
                    "definition_hash": record.definition_hash,
                    **dict(zip(("thread_id", "user"), run_thread(spec, record.event, record.options, record.id), strict=True)),
                    "replayed": False,
                },
            )

    async def execute(self, record: RunRecord) -> RunRecord:
        """Execute a run created with :meth:`create` (or resume it: the same thing)."""
        return await self._execute(record)

    async def resume(self, run_id: str) -> RunRecord:
        record = self.local_run(
            run_id, "Inngest resumes it", approvals=True, ended_ok=True
        )  # returned as it is while it still waits
        if record.status == "cancelled":  # its finally: steps, if they have not run yet
            return await self.finish_cancelled(run_id)
        if record.status in FINAL_STATUSES:
            return record
        self._expire_waits(run_id)
        # Still waiting for its event, unless one of its waits was just answered: the tool
        # calls of a turn wait in parallel (one approval each), and an answered call goes on
        # (and the run waits again for the others) without waiting for all of them.
        news = self.journal.news(run_id)  # answered before a crash left them unseen
        if self.journal.waits(run_id=run_id) and not self._answered.get(run_id) and not news:
            return record
        self._answered.setdefault(run_id, set()).update(news)
        record.options = {**record.options, "resumed": True}
        return await self._execute(record)

    async def _execute(self, record: RunRecord, finishing: bool = False, claimed: bool = False) -> RunRecord:
        """Execute (or replay) a run while owning it; another process's run is left to it.
        ``finishing``: a cancelled run, replayed into its ``finally:`` steps only;
        ``claimed``: a run this process has just created and claimed (:meth:`start`)."""
        # The lease keeps other processes out; this set keeps a second task of this process
        # out (an event delivered while the run's turn is still executing: the executing
        # task finds the answer in the journal and goes on, see below).
        if record.id in self._active:
            raise RunBusyError(f"run {record.id} is executing in this process; it goes on there")
        if not claimed and not self.journal.claim(record.id):
            raise RunBusyError(f"run {record.id} is being executed by another process; it goes on there")
        self._active.add(record.id)
        if finishing:
            self._cancelled.add(record.id)
        ended = False
        try:  # from here on, whatever stops the run (a full disk too) gives the run back
            stored = None if claimed else self.journal.run(record.id)  # a run just created has not ended
            if (
                stored is not None and stored.status in FINAL_STATUSES and not (finishing and stored.status == "cancelled")
            ):  # finished meanwhile (another task, another process)
                return stored
            # A queued run under concurrency limits stays queued until its first step has its
            # slots (LocalSteps.on_start); any other run is running from here.
            if record.status == "waiting" or (record.status == "queued" and not self._slots(record)):
                self._running(record)
            while True:
                outcome = await self._execute_owned(record)
                if outcome is None:  # a graceful shutdown: the run stays `running` and resumes at start-up
                    return record
                if not isinstance(outcome, RunSuspended):
                    ended = True
                    return outcome
                if record.id in self._cancelled:  # cancelled while the turn that suspended was in flight
                    return self.journal.run(record.id) or record
                # An answer may have arrived while this process was still finishing the turn
                # (another process resolves the wait, but leaves the run to its owner; this
                # one's resume found the run busy): then the run goes on at once.
                if not any(self.journal.step(record.id, step)[0] for step in outcome.waits):
                    self.journal.set_status(record.id, "waiting")
                    record.status = "waiting"
                    record.approvals = self.journal.approvals(record.id)  # what `netrun run --json` shows
                    if self.emit:
                        self.emit(
                            RUN_WAITING,
                            {"run_id": record.id, "event": outcome.wait.event, "step_id": outcome.step_id, "replayed": False},
                        )
                    return record
        finally:
            # Cancelled, but stopped before its finally: steps were done (a shutdown, a suspension,
            # a journal fault): a task runs them, once nothing executes the run (not when this was
            # that task: then the next resume or start-up does, LocalRuns.open).
            unfinished = record.id in self._cancelled and not ended and not finishing
            self._active.discard(record.id)
            self._cancelled.discard(record.id)
            self._ending.discard(record.id)
            self.journal.release(record.id)
            if unfinished:
                self._finish_soon(record.id)

    def _slots(self, record: RunRecord) -> list[tuple[Slot, int]]:
        return slots(record.network, record.definition, record.event) if self.gate is not None else []

    def _running(self, record: RunRecord) -> None:
        if record.status in ("queued", "waiting"):
            self.journal.set_status(record.id, "running")
            record.status = "running"

    async def _execute_owned(self, record: RunRecord) -> RunRecord | RunSuspended | None:
        """The run executed once: how it ended, the wait that suspended it, or None when a
        graceful shutdown stopped it."""
        made: list[LocalSteps] = []

        def steps(program: Program) -> LocalSteps:
            made.append(
                LocalSteps(
                    self.journal,
                    record.id,
                    retries=step_retries(program.spec) if self.step_retries is None else self.step_retries,
                    backoff=self.backoff,
                    retry_after_cap=self.retry_after_cap,
                    # The child's outcome is this run's step output: redacted against this run's secrets
                    # (the child does not know them, and its output may quote one) before it is recorded.
                    invoker=lambda name, text, child: _redacted(
                        self._invoke(record, name, text, child), record.definition, self.environ
                    ),
                    # The runs its events start are one deeper than it (see NetworkSpec limits.depth).
                    sender=functools.partial(self.send, depth=run_depth(record.options) + 1),
                    answered=self._answered.pop(record.id, set()),
                    stopping=lambda: self.stopping,
                    hold=functools.partial(self.gate.hold, wanted)
                    if self.gate is not None and (wanted := self._slots(record))
                    else None,
                    on_start=lambda: self._running(record),
                )
            )
            return made[-1]

        start = RunStart(
            id=record.id,
            input=record.input,
            event=record.event,
            state=record.state,
            options=record.options,
            depth=run_depth(record.options),
            definition=record.definition,
        )
        try:
            outcome = await execute(
                start,
                lambda: self.program(record),
                steps,
                Outcomes(self.journal, self.environ, self.emit, leased=True),
                environ=self.environ,
                emit=self.emit,
                stream=self.stream if isinstance(self.stream, bool) else functools.partial(self.stream, record.id),
                data_dir=self.journal.path.parent,
                # A wait and a graceful shutdown leave the run to resume; a journal that cannot be
                # written stops it where it is, and it resumes once the journal takes writes again.
                errors=Errors(passed=(RunSuspended, RunStopped, JournalError, StorageFault)),
                cancelled=functools.partial(self.cancel_reason, record.id),
                ending=functools.partial(self._ending.add, record.id),
            )
        except RunSuspended as suspended:
            suspended.waits = (*made[-1].suspended, suspended.step_id)
            return suspended
        except RunStopped:
            return None
        if isinstance(outcome, Cancelled) and self.emit and (record.definition or {}).get("finally"):
            # The run has ended now, its finally: steps done: its end goes out (RunControl.cancel
            # sent it at once only for a run with none).
            self.emit(RUN_CANCELLED, {"run_id": record.id, "error": outcome.message, "replayed": False})
        return _ended(record, outcome)

    async def send(self, events: list[dict[str, Any]], depth: int = 1) -> None:
        """Events sent by a run: they answer the waits they match, and with ``on_event`` (set
        by `netrun serve`, which knows every network's trigger) start the networks they
        trigger too, at ``depth`` (the sender's depth + 1; kept beside the event, not in its
        data, so that no event data can set it)."""
        for event in events:
            name, data = str(event.get("name", "")), dict(event.get("data") or {})
            if self.on_event is not None:
                self.on_event(name, data, depth=depth, from_run=True, event_id=event.get("id"))
            else:
                await self.deliver(name, data, from_run=True)

    async def _invoke(self, parent: RunRecord, network: str, text: str, child_id: str) -> dict[str, Any]:
        """Run ``network`` (a file beside the parent's) as a child run; resume it if it exists."""
        record = self.journal.run(child_id)
        if record is None:
            spec = self.networks(Path(parent.base_dir), network) if self.networks is not None else None
            if spec is None:
                return ToolOutcome.failure(f"no valid network named '{network}' in {parent.base_dir}").to_json()
            # The child's model calls are kept apart in replies files by its place in the parent.
            prefix = f"{parent.options.get('prefix', '')}{step_ids.child_step(parent.id, child_id)}/"
            # A child run answers its parent; it is not part of the parent's conversation.
            options = {
                **{k: v for k, v in parent.options.items() if k not in THREAD_OPTIONS},
                "prefix": prefix,
                "parent": parent.id,
                "depth": run_depth(parent.options) + 1,
            }
            if trace := observe.carrier():  # its executions join the parent's trace, under this call
                options["trace"] = trace
            # Its steps take its own network's slots; the parent's call of it holds none.
            record = self.create(spec, Path(parent.base_dir), input=text, event=parent.event, options=options, run_id=child_id)
            record = await self._execute(record)
        elif record.status not in FINAL_STATUSES:
            record = await self.resume(child_id)
        if record.status == "completed" and record.result is not None:
            return ToolOutcome(result={"output": record.result["output"], "state": record.result["state"]}).to_json()
        if record.status == "waiting":
            # The parent goes on with a failed call: the child ends here, so that no approval
            # or event resumes it later to run calls whose results nobody would see.
            message = f"network '{network}' is waiting for an event; a network used as a tool must finish on its own"
            _ended(
                record,
                Outcomes(self.journal, self.environ, self.emit).fail(record.id, f"{message} (its parent run went on without it)"),
            )
            return ToolOutcome.failure(message).to_json()
        return ToolOutcome.failure(f"network '{network}' failed: {record.error}").to_json()


async def _redacted(outcome: Awaitable[dict[str, Any]], definition: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    return Secrets.for_definition(definition, environ).redact_value(await outcome)  # type: ignore[no-any-return]


def _ended(record: RunRecord, outcome: Ended) -> RunRecord:
    """``record`` as its recorded ``outcome`` left it (what the engine's callers are given)."""
    if isinstance(outcome, Cancelled):
        record.status, record.error = "cancelled", outcome.message
    elif isinstance(outcome, Failed):
        record.status, record.error = "failed", outcome.message
    else:
        record.status, record.result = "completed", outcome.result
    return record


def run_depth(options: Mapping[str, Any]) -> int:
    """A run's depth, stored in its options (see limits.depth); 0 for runs started from
    outside, and for runs recorded before depths were."""
    return depth_of(options.get("depth"))


__all__ = ["ApprovalError", "EngineError", "LocalEngine", "NetworkFinder", "RunBusyError", "RunError"]
