"""Starting, resuming and waking runs on the local engine."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ..compile import ModelFactory, Program
from ..errors import NetrunError
from ..redact import Secrets
from ..runtime import step_ids
from ..runtime.events import RUN_CANCELLED, RUN_STARTED, RUN_WAITING
from ..runtime.network import Emit, RunError
from ..runtime.steps import RunSuspended
from ..runtime.tooling import ToolOutcome
from ..spec import NetworkSpec
from ..spec.network import depth_of
from ..sqlite_file import StorageFault
from .approvals import ApprovalError, resolve_approval
from .concurrency import ConcurrencyGate, Slot, slots
from .execution import (
    THREAD_OPTIONS,
    Ended,
    Errors,
    Failed,
    Outcomes,
    RunStart,
    compile_definition,
    execute,
    model_factory,
    step_retries,
)
from .local import FINAL_STATUSES, Journal, JournalError, LocalSteps, RunRecord, RunStopped, new_run_id, wait_matches

NetworkFinder = Callable[[Path, str], NetworkSpec | None]
"""Finds a network used as a tool, by the folder of the run that calls it and its name."""


class EngineError(NetrunError, phase="engine"):
    """A request the engine cannot honour (an unknown run, a run that cannot resume)."""


class RunBusyError(EngineError):
    """The run is being executed by another process right now."""


class LocalEngine:
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
        self.gate = gate
        """Holds the networks' concurrency limits (``netrun serve``); None: no limits."""
        self._recordings: dict[str, dict[str, list[dict[str, Any]]]] = {}
        """Replies being recorded, per file: a run and its child runs write one file."""

    # -- programs ----------------------------------------------------------------------
    def program(self, record: RunRecord) -> Program:
        base_dir = Path(record.base_dir)
        models = self.models or model_factory(base_dir, record.options, self.environ, record.definition, self._recordings)
        program = compile_definition(record.definition, base_dir, models)
        if record.options.get("stubs"):  # `netrun test`: tools that answer a fixed result
            from ..compile import with_stubs

            program = with_stubs(program, record.options["stubs"])
        return program

    # -- runs --------------------------------------------------------------------------
    async def start(self, spec: NetworkSpec, base_dir: Path, **details: Any) -> RunRecord:
        """:meth:`create` a run (``details``: its input, state, event, options, ...) and execute it."""
        return await self._execute(self.create(spec, base_dir, **details))

    def create(
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
    ) -> RunRecord:
        """Record a new run without executing it: ``running`` (it executes now) or ``queued``
        (it waits for a slot under its network's concurrency limits)."""
        from ..compile import definition_hash

        record = RunRecord(
            id=run_id or new_run_id(),
            network=spec.name,
            definition_hash=definition_hash(spec),
            definition=spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True),
            base_dir=str(base_dir.resolve()),
            input=input,
            state=dict(state or {}),
            event=dict(event or {}),
            options=dict(options or {}),
            status=status,
            result=None,
            error=None,
        )
        self.journal.create_run(record)
        if self.emit:
            self.emit(
                RUN_STARTED,
                {
                    "run_id": record.id,
                    "network": spec.name,
                    "input": input,
                    "definition_hash": record.definition_hash,
                    "replayed": False,
                },
            )
        return record

    async def execute(self, record: RunRecord) -> RunRecord:
        """Execute a run created with :meth:`create` (or resume it: the same thing)."""
        return await self._execute(record)

    async def resume(self, run_id: str) -> RunRecord:
        record = self.journal.run(run_id, approvals=True)  # returned as it is while it still waits
        if record is None:
            raise EngineError(f"no run {run_id} in {self.journal.path}")
        if record.status in FINAL_STATUSES:
            return record
        if record.options.get("engine") == "inngest":
            raise EngineError(
                f"run {run_id} executes on Inngest (it was started by `netrun serve` in Inngest mode); Inngest resumes it"
            )
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

    async def retry(self, run_id: str) -> RunRecord:
        """Run a failed run again once its cause is fixed (a key set, a server back, a
        replies file completed): see :meth:`reopen`; then it executes from there."""
        return await self._execute(self.reopen(run_id))

    def reopen(self, run_id: str) -> RunRecord:
        """Make a failed run ``running`` again without executing it: its completed steps stay
        memoized and are not repeated, the step that failed will run again, and the run keeps
        the definition it started with. Raises :class:`EngineError` for a run that did not fail."""
        record = self.journal.run(run_id)
        if record is None:
            raise EngineError(f"no run {run_id} in {self.journal.path}")
        if record.options.get("engine") == "inngest":
            raise EngineError(
                f"run {run_id} executes on Inngest (it was started by `netrun serve` in Inngest mode); retry it from Inngest"
            )
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
        Inngest). Raises :class:`EngineError` for a run that ended or does not exist."""
        record = self.journal.run(run_id)
        if record is None:
            raise EngineError(f"no run {run_id} in {self.journal.path}")
        if record.options.get("engine") == "inngest":
            raise EngineError(
                f"run {run_id} executes on Inngest (it was started by `netrun serve` in Inngest mode); cancel it from Inngest"
            )
        for member in reversed(self.journal.family(run_id)):  # children first: their parent's call then ends
            if self.journal.cancel(member, reason):
                if member in self._active:
                    self._cancelled.add(member)
                if self.emit:
                    self.emit(RUN_CANCELLED, {"run_id": member, "error": reason, "replayed": False})
            elif member == run_id:
                ended = self.journal.run(run_id)
                raise EngineError(
                    f"run {run_id} is {ended.status if ended else 'gone'}: only a run that has not ended can be cancelled"
                )
        cancelled = self.journal.run(run_id)
        assert cancelled is not None
        return cancelled

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

    async def _execute(self, record: RunRecord) -> RunRecord:
        """Execute (or replay) a run while owning it; another process's run is left to it."""
        # The lease keeps other processes out; this set keeps a second task of this process
        # out (an event delivered while the run's turn is still executing: the executing
        # task finds the answer in the journal and goes on, see below).
        if record.id in self._active:
            raise RunBusyError(f"run {record.id} is executing in this process; it goes on there")
        if not self.journal.claim(record.id):
            raise RunBusyError(f"run {record.id} is being executed by another process; it goes on there")
        self._active.add(record.id)
        try:  # from here on, whatever stops the run (a full disk too) gives the run back
            stored = self.journal.run(record.id)
            if stored is not None and stored.status in FINAL_STATUSES:  # finished meanwhile (another task, another process)
                return stored
            # A queued run under concurrency limits stays queued until its first step has its
            # slots (LocalSteps.on_start); any other run is running from here.
            if record.status == "waiting" or (record.status == "queued" and not self._slots(record)):
                self._running(record)
            while True:
                outcome = await self._execute_owned(record)
                if not isinstance(outcome, RunSuspended):
                    return outcome
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
            self._active.discard(record.id)
            self._cancelled.discard(record.id)
            self.journal.release(record.id)

    def _slots(self, record: RunRecord) -> list[tuple[Slot, int]]:
        return slots(record.network, record.definition, record.event) if self.gate is not None else []

    def _running(self, record: RunRecord) -> None:
        if record.status in ("queued", "waiting"):
            self.journal.set_status(record.id, "running")
            record.status = "running"

    async def _execute_owned(self, record: RunRecord) -> RunRecord | RunSuspended:
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
                    stopping=lambda: self.stopping or record.id in self._cancelled,
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
                Outcomes(self.journal, self.environ, self.emit),
                environ=self.environ,
                emit=self.emit,
                stream=self.stream if isinstance(self.stream, bool) else functools.partial(self.stream, record.id),
                data_dir=self.journal.path.parent,
                # A wait and a graceful shutdown leave the run to resume; a journal that cannot be
                # written stops it where it is, and it resumes once the journal takes writes again.
                errors=Errors(passed=(RunSuspended, RunStopped, JournalError, StorageFault)),
            )
        except RunSuspended as suspended:
            suspended.waits = (*made[-1].suspended, suspended.step_id)
            return suspended
        except RunStopped:  # a graceful shutdown: the run stays `running` and resumes at start-up
            return record
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
    if isinstance(outcome, Failed):
        record.status, record.error = "failed", outcome.message
    else:
        record.status, record.result = "completed", outcome.result
    return record


def run_depth(options: Mapping[str, Any]) -> int:
    """A run's depth, stored in its options (see limits.depth); 0 for runs started from
    outside, and for runs recorded before depths were."""
    return depth_of(options.get("depth"))


__all__ = ["ApprovalError", "EngineError", "LocalEngine", "NetworkFinder", "RunBusyError", "RunError"]
