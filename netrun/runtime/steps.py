"""The steps interface: every side effect of a run goes through one of these calls.

A backend memoizes each step's output under its id. The network loop is written so that,
given the same step outputs, it takes the same path; replaying a run therefore rebuilds
its state from the journal and runs again only what never completed (durability rules 1
and 2 in the design). Two backends: :mod:`netrun.engines.local` (a SQLite journal) and,
with ``netrun serve``, Inngest's ``ctx.step``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from ..errors import NetrunError

Json = Any
"""A value that survives ``json.dumps``: what a step may return."""


@dataclass(frozen=True)
class Wait:
    """What a run waits for: an event, matched to the run by ``match`` or ``if``."""

    event: str
    """The awaited event name."""
    timeout: timedelta
    match: str | None = None
    """A dotted path (``data.ticketId``) whose value must be equal in both events."""
    if_: str | None = None
    """An expression over ``event`` (the trigger) and ``async`` (the awaited event)."""
    match_value: Any = None
    """The trigger event's value at ``match``, taken when the wait starts."""
    variables: dict[str, Any] | None = None
    """Values the ``if`` expression may use besides ``event`` and ``async`` (args, state, run)."""


class StepFailed(NetrunError, phase="run"):  # noqa: N818 - mirrors inngest.StepError; reads as an event
    """A step that failed for good (its retries exhausted); memoized like an output."""

    def __init__(self, step_id: str, message: str) -> None:
        super().__init__(f"step {step_id} failed: {message}")
        self.step_id = step_id
        self.message = message


class RunSuspended(Exception):  # noqa: N818 - control flow, not an error
    """Raised by a backend to stop the run until an event (or a timeout) resumes it."""

    def __init__(self, step_id: str, wait: Wait) -> None:
        super().__init__(f"waiting for {wait.event} at step {step_id}")
        self.step_id = step_id
        self.wait = wait
        self.waits: tuple[str, ...] = (step_id,)
        """Every wait the run stopped at (set by its engine: parallel calls wait side by side)."""


class Steps(Protocol):
    """The durable operations a run may perform."""

    run_id: str

    async def run(self, step_id: str, fn: Callable[[], Awaitable[Json]]) -> Json:
        """Run ``fn`` once; on replay return its recorded output (or raise its StepFailed)."""
        ...

    async def parallel(self, thunks: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        """Run ``thunks`` (each one or more steps) concurrently; their results in order.

        Any exception (a suspension, a failure) propagates once all have settled. On
        Inngest this is ``ctx.group.parallel``: the steps are planned and run one request
        each, so no step runs twice because another one interrupted the call."""
        ...

    async def wait_for_event(self, step_id: str, wait: Wait) -> dict[str, Any] | None:
        """The awaited event, or None on timeout; suspends the run until then."""
        ...

    async def sleep(self, step_id: str, duration: timedelta) -> None:
        """Pause the run; a long sleep suspends it (it costs nothing while it sleeps)."""
        ...

    async def send_event(self, step_id: str, events: list[dict[str, Any]]) -> None:
        """Send events (``{name, data}``) once: they start networks and answer waits."""
        ...

    async def invoke(self, step_id: str, network: str, input: str) -> dict[str, Any]:
        """Run another network to its end as a child run; its result (output, state...)."""
        ...

    def replaying(self, step_id: str) -> bool:
        """Whether ``step_id`` already has a recorded outcome (no side effect will run)."""
        ...

    def fresh(self, step_id: str) -> bool:
        """Whether this execution is the first to see the step's outcome: the step ran here,
        its wait was answered since the run last executed, or (on Inngest) it ran in the
        call just before this one. Progress about outcomes is reported once, by it."""
        ...


def path_get(data: Any, dotted: str) -> Any:
    """``data.ticketId`` of an event dict; None when a part is missing."""
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data
