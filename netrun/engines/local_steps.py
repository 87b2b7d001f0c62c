"""The steps interface of the local engine: each step's outcome journaled, failed attempts retried.

A step whose outcome the journal holds returns it without running (a replay repeats no
model or tool call); a new step runs, is retried by tenacity while its failure says a retry
may help (:func:`retriable`; a model's 429 waits what its ``Retry-After`` asks, up to a
cap), and its outcome or its final error is recorded before the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from ..runtime import step_ids
from ..runtime.steps import Json, RunSuspended, StepFailed, Wait
from ..sqlite_file import StorageFault
from .journal import Journal

if TYPE_CHECKING:  # tenacity loads on a step's first failure: most runs never need it
    from tenacity import RetryCallState


class RunStopped(Exception):  # noqa: N818 - control flow, not an error
    """The engine is shutting down: the run stops before a step and resumes at the next start."""

    def __init__(self, step_id: str) -> None:
        super().__init__(f"stopped before step {step_id}: the server is shutting down")


Invoker = Callable[[str, str, str], Awaitable[dict[str, Any]]]
"""(network, input, child run id) -> the child run's result; provided by the engine."""
Sender = Callable[[list[dict[str, Any]]], Awaitable[None]]
"""Delivers sent events (starting networks, answering waits); provided by the engine."""

INLINE_SLEEP = timedelta(seconds=30)
"""Shorter sleeps happen in the process; longer ones suspend the run until it is resumed."""


class LocalSteps:
    """The steps interface over a :class:`Journal`, for one run."""

    journals_starts = True
    """A step recorded by an earlier execution is told from this one's (:meth:`fresh`), so a
    tool call's start can be journaled and an interrupted call found (durability rule 6)."""

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        retries: int = 4,
        backoff: float = 0.5,
        invoker: Invoker | None = None,
        sender: Sender | None = None,
        answered: set[str] | frozenset[str] = frozenset(),
        stopping: Callable[[], bool] = lambda: False,
        retry_after_cap: float = 60.0,
        hold: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
        on_start: Callable[[], None] = lambda: None,
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.retries = retries
        """Retries of a failed step: it runs at most ``retries + 1`` times (Inngest's meaning
        of ``function.retries``; the engine passes the network's, default 4 as on Inngest)."""
        self.backoff = backoff
        """Seconds before the first retry, doubling with each further one."""
        self.retry_after_cap = retry_after_cap
        """The longest wait a failure's ``retry_after`` (a model's 429 ``Retry-After``) gets;
        a provider asking for more fails the step at once, saying so."""
        self.invoker = invoker
        self.sender = sender
        self._done = journal.step_ids(run_id)
        self.stopping = stopping
        self.hold = hold
        """The run's concurrency slots (``netrun serve``), held while each step executes:
        the YAML's limit is on steps at once, as on Inngest."""
        self.on_start = on_start
        """Called once, when the first step of this execution starts (its slots taken)."""
        self._started = False
        """The engine is shutting down: start no new step (the run resumes at the next start)."""
        self._seen = self._done - set(answered)
        """Outcomes an earlier execution saw (``answered``: waits resolved since then)."""
        self.suspended: list[str] = []
        """The waits this execution stopped at (the tool calls of a turn wait side by side)."""

    def replaying(self, step_id: str) -> bool:
        return step_id in self._done

    def fresh(self, step_id: str) -> bool:
        return step_id not in self._seen

    async def run(self, step_id: str, fn: Callable[[], Awaitable[Json]]) -> Json:
        return await self._run(step_id, fn, slot=True)

    async def _run(self, step_id: str, fn: Callable[[], Awaitable[Json]], *, slot: bool) -> Json:
        if step_id in self._done:
            found, output, error = self.journal.step(self.run_id, step_id)
            if found:
                if error is not None:
                    raise StepFailed(step_id, error)
                return output
        if self.stopping():
            raise RunStopped(step_id)
        try:
            output = await self._attempts(fn, slot)
        except (RunSuspended, StorageFault):  # a store that cannot write: not the step's failure
            raise
        except (StepFailed, _GaveUpError) as exc:
            return await self._settle(step_id, None, exc.message)
        except Exception as exc:  # not worth another attempt: a bug or a bad input fails the same way every time
            return await self._settle(step_id, None, f"{type(exc).__name__}: {exc}")
        try:
            encoded = json.dumps(output)  # a step's output must survive the journal (as on Inngest)
        except (TypeError, ValueError) as exc:
            # The side effect happened; running it again would not make its output savable.
            return await self._settle(step_id, None, f"the step's output cannot be saved as JSON: {exc}")
        return await self._settle(step_id, output, None, encoded)

    async def _settle(self, step_id: str, output: Json, error: str | None, encoded: str | None = None) -> Json:
        """:meth:`_finish` through the journal's group commit: the run goes on once the
        transaction holding the outcome has committed, shared with the steps of other runs
        that ended in the same pass of the event loop."""
        output, error = await self.journal.batch.record(self.run_id, step_id, output, error, encoded)
        self._done.add(step_id)
        if error is not None:
            raise StepFailed(step_id, error)
        return output

    async def _attempts(self, fn: Callable[[], Awaitable[Json]], slot: bool) -> Json:
        """The step's attempts, retried by tenacity (:meth:`_spent`, :meth:`_delay`, :meth:`_give_up`).

        The first attempt runs outside tenacity: most steps succeed at once, and tenacity's
        loop would double the engine's cost of a step. When it fails, tenacity's first
        attempt re-raises that failure, so tenacity counts, waits and gives up as if it had
        made the attempt itself."""
        try:
            return await self._attempt(fn, slot)
        except Exception as failed:
            first: list[Exception] = [failed]

        async def attempt() -> Json:
            if first:
                raise first.pop()
            return await self._attempt(fn, slot)

        from tenacity import AsyncRetrying, retry_if_exception

        retrying = AsyncRetrying(
            stop=self._spent, wait=self._delay, retry=retry_if_exception(_worth_retrying), retry_error_callback=self._give_up
        )
        return await retrying(attempt)

    async def _attempt(self, fn: Callable[[], Awaitable[Json]], slot: bool) -> Json:
        """One attempt of a step: each takes the run's slots anew, as a retry on Inngest does."""
        async with self.hold() if slot and self.hold is not None else contextlib.nullcontext():
            if not self._started:
                self._started = True
                self.on_start()
            return await fn()

    def _spent(self, state: RetryCallState) -> bool:
        """Whether a failed attempt is the step's last: its retries are used up, or the provider
        asks to wait longer than :attr:`retry_after_cap` (waiting would only hold the run)."""
        asked = _retry_after(state)
        return state.attempt_number > self.retries or (asked is not None and asked > self.retry_after_cap)

    def _delay(self, state: RetryCallState) -> float:
        """The wait before the next attempt: what the provider asked for (a 429's
        ``Retry-After``), else ``backoff`` doubling with each attempt."""
        asked = _retry_after(state)
        from tenacity import wait_exponential

        return wait_exponential(multiplier=self.backoff)(state) if asked is None else max(asked, 0.0)

    def _give_up(self, state: RetryCallState) -> NoReturn:
        """The step's failure once :meth:`_spent` says no further attempt is made (the spent
        retries first: that is the reason when both hold)."""
        attempts, asked = state.attempt_number, _retry_after(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        if attempts > self.retries or asked is None:
            raise _GaveUpError(f"{exc} (after {attempts} attempt{'s' if attempts > 1 else ''})")
        raise _GaveUpError(
            f"{exc} (the provider asks to wait {asked:g} s before retrying, longer than netrun waits: {self.retry_after_cap:g} s)"
        )

    def _finish(self, step_id: str, output: Json, error: str | None, encoded: str | None = None) -> Json:
        """Record the outcome (``encoded``: its JSON, when made already); go on with what the
        journal holds (it may be another process's, recorded first), raising StepFailed for an error."""
        output, error = self.journal.record(self.run_id, step_id, output, error, encoded=encoded)
        self._done.add(step_id)
        if error is not None:
            raise StepFailed(step_id, error)
        return output

    async def parallel(self, thunks: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        results = await asyncio.gather(*(t() for t in thunks), return_exceptions=True)
        for failed in results:  # a suspension (a wait) or a failure ends the caller here
            if isinstance(failed, BaseException):
                raise failed
        return results

    async def wait_for_event(self, step_id: str, wait: Wait) -> dict[str, Any] | None:
        if step_id in self._done:
            return self.journal.step(self.run_id, step_id)[1]  # type: ignore[no-any-return]
        self.journal.add_wait(self.run_id, step_id, wait)
        self.suspended.append(step_id)
        raise RunSuspended(step_id, wait)

    async def sleep(self, step_id: str, duration: timedelta) -> None:
        if step_id in self._done:
            return
        if duration <= INLINE_SLEEP:
            await asyncio.sleep(duration.total_seconds())
            self._finish(step_id, None, None)
            return
        # A wait for an event that never comes: its timeout is the wake-up time.
        await self.wait_for_event(step_id, Wait(event="netrun/sleep", timeout=duration, if_="false"))

    async def send_event(self, step_id: str, events: list[dict[str, Any]]) -> None:
        async def send() -> None:
            if self.sender is not None:
                await self.sender(events)

        await self.run(step_id, send)

    async def invoke(self, step_id: str, network: str, input: str) -> dict[str, Any]:
        if self.invoker is None:
            raise StepFailed(step_id, f"cannot run network '{network}': no engine to run it on")
        invoker = self.invoker
        child = step_ids.child_run(self.run_id, step_id)
        # A child run's steps take their own slots: waiting for it holds none (as on Inngest).
        return await self._run(step_id, lambda: invoker(network, input, child), slot=False)  # type: ignore[no-any-return]


class _GaveUpError(Exception):
    """A retriable step failure no further attempt is made for; ``message`` is recorded."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _worth_retrying(exc: BaseException) -> bool:
    """Whether a failed attempt may be tried again. A suspension, a journal that cannot be
    written and a step failed for good pass through as they are, and so does anything that
    is not an ``Exception`` (a cancellation, an interrupt)."""
    if not isinstance(exc, Exception) or isinstance(exc, RunSuspended | StorageFault | StepFailed):
        return False
    return retriable(exc)


def _retry_after(state: RetryCallState) -> float | None:
    """The seconds the failure of the attempt ``state`` describes asks to wait (a model's 429)."""
    exc = state.outcome.exception() if state.outcome is not None else None
    asked = getattr(exc, "retry_after", None)
    return float(asked) if isinstance(asked, int | float) and not isinstance(asked, bool) else None


def retriable(exc: Exception) -> bool:
    """Whether trying a failed step again may help: failures that say so (a model error
    marked retriable), and the network's and the OS's transient ones. A bug or a bad
    input fails the same way every time."""
    flag = getattr(exc, "retriable", None)
    if flag is not None:
        return bool(flag)
    return isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError | ConnectionError)


__all__ = ["INLINE_SLEEP", "Invoker", "LocalSteps", "RunStopped", "Sender", "retriable"]
