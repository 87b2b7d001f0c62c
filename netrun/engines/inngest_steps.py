"""The steps interface over Inngest's ``ctx.step``: a run executed by an Inngest server.

Inngest calls the function once per step. Each call replays the handler from the top:
completed steps return their memoized outputs (so the loop rebuilds state and route
without asking the router or running a tool again) and the first new step runs and ends
the call. Errors map onto Inngest's retry model: an exception inside a step is retried
by Inngest, a :class:`StepFailed` raised inside one (a failure no retry can fix) becomes
``NonRetriableError``, and a step whose retries are exhausted comes back as ``StepError``,
which this backend turns into :class:`StepFailed` for the loop. A failure that says how long
to wait (``retry_after``: a model's 429 ``Retry-After``) becomes ``RetryAfterError``, so
Inngest waits that long before the next attempt.

Inngest's run limits fail a run with netrun's reason before Inngest fails it with its own: a
run stops before its step number :data:`MAX_STEPS` + 1, and a step whose output is over
:data:`MAX_STEP_OUTPUT` fails the run, naming the step and what to cap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import inngest

from ..expressions.cel import to_cel
from ..runtime.steps import Json, StepFailed, Wait
from ..runtime.tooling import ToolOutcome
from ..spec.function import MAX_STEP_OUTPUT, MAX_STEPS
from ..spec.network import depth_of
from .triggers import META

Invokable = Callable[[str], "inngest.Function[Any] | None"]
"""The served function of a network, by network name (None when it is not served)."""


def wait_expression(wait: Wait) -> str | None:
    """The wait's ``match`` and ``if`` as one CEL expression, as Inngest evaluates it:
    ``event`` is the run's trigger event, ``async`` the incoming one; the names the
    expression may use besides (args, state, run) are fixed at the moment the wait starts."""
    parts = []
    if wait.match:
        parts.append(f"event.{wait.match} == async.{wait.match}")
    if wait.if_:
        parts.append(to_cel(wait.if_, wait.variables or {}))
    return " && ".join(f"({p})" for p in parts) if len(parts) > 1 else (parts[0] if parts else None)


def event_json(event: Any) -> dict[str, Any]:
    """An SDK event as the plain dict the loop and its templates see."""
    if event is None:
        return {}
    if isinstance(event, Mapping):
        return dict(event)
    return {"name": event.name, "data": dict(event.data or {}), "id": event.id, "ts": event.ts}


class InngestSteps:
    """The steps of one Inngest function call (one request from the executor)."""

    def __init__(self, ctx: inngest.Context, run_id: str, invokable: Invokable, depth: int = 0) -> None:
        self.ctx = ctx
        self.run_id = run_id
        """netrun's id of the run (what events and the REST API name it by)."""
        self.depth = depth
        """The run's depth (limits.depth): the runs its events and invocations start get one more."""
        self.invokable = invokable
        self._memoized = _memo_ids(ctx)
        stack = getattr(
            getattr(getattr(getattr(getattr(ctx.step, "_execution", None), "_request", None), "ctx", None), "stack", None),
            "stack",
            None,
        )
        self._newest = stack[-1] if stack else None
        """The step memoized last: the one the previous call ran."""

    def replaying(self, step_id: str) -> bool:
        # netrun's step ids are unique within a run, so Inngest's hash is the id's sha1.
        return hashlib.sha1(step_id.encode()).hexdigest() in self._memoized

    def fresh(self, step_id: str) -> bool:
        digest = hashlib.sha1(step_id.encode()).hexdigest()
        return digest not in self._memoized or digest == self._newest

    def _within_limits(self, step_id: str) -> None:
        """Stop the run before a step Inngest would refuse for its number (not a replay)."""
        if self.replaying(step_id):
            return
        number = len(self._memoized) + 1
        if number > MAX_STEPS:
            raise inngest.NonRetriableError(
                f"run {self.run_id} stops before step {number} ({step_id}): Inngest runs at most {MAX_STEPS:,} steps per run "
                "(lower max_iter or limits.iterations; `netrun validate` shows how many steps a run can take)"
            )

    async def run(self, step_id: str, fn: Callable[[], Awaitable[Json]]) -> Json:
        self._within_limits(step_id)

        async def guarded() -> Json:
            try:
                output = await fn()
            except StepFailed as exc:  # no retry can fix it: fail the run, do not retry
                raise inngest.NonRetriableError(exc.message) from None
            except Exception as exc:
                if getattr(exc, "retriable", None) is False:  # as the local engine's retriable() decides
                    raise inngest.NonRetriableError(f"{type(exc).__name__}: {exc}") from None
                asked = getattr(exc, "retry_after", None)
                if isinstance(asked, int | float) and not isinstance(asked, bool) and not self._last_attempt():
                    # Inngest waits as long as the provider asked (durably: no cap needed here).
                    # On the last attempt the plain error fails the step, as any other would.
                    raise inngest.RetryAfterError(
                        str(exc), datetime.now(UTC) + timedelta(seconds=max(float(asked), 0.0))
                    ) from None
                raise
            size = len(json.dumps(output, separators=(",", ":"), default=str).encode())
            if size > MAX_STEP_OUTPUT:  # what it did is done; Inngest would fail the run on its output anyway
                raise inngest.NonRetriableError(
                    f"the output of step {step_id} is {size:,} bytes, over Inngest's {MAX_STEP_OUTPUT:,} per step "
                    "(cap tool results with max_bytes, and a thread's history with a token window)"
                )
            return output

        try:
            return await self.ctx.step.run(step_id, guarded)
        except inngest.StepError as exc:
            raise StepFailed(step_id, exc.message) from None

    def _last_attempt(self) -> bool:
        return last_attempt(self.ctx)

    def attempts(self) -> int:
        """How many attempts a step of this run has (``function.retries`` + 1; 1 when unknown)."""
        request = getattr(getattr(getattr(self.ctx.step, "_execution", None), "_request", None), "ctx", None)
        most = getattr(request, "max_attempts", None)
        return most if isinstance(most, int) else 1

    def retrying(self, step_id: str) -> bool:
        """Whether this request retries step ``step_id`` (attempt > 0, and the step is the one
        Inngest targets, when it targets one: in a parallel group a retry of one call must not
        count for its siblings): for a tool call (durability rule 6), the earlier attempt's
        answer was lost."""
        if self.ctx.attempt <= 0:
            return False
        target = getattr(self.ctx.step, "_target_hashed_id", None)
        if target is None:  # no targeting: the request runs the run's first unmemoized step
            return True
        from inngest._internal import transforms

        return bool(target == transforms.hash_step_id(step_id))

    async def parallel(self, thunks: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        if len(thunks) == 1:  # one step runs at once, in this request
            return [await thunks[0]()]
        return list(await self.ctx.group.parallel(tuple(thunks)))

    async def wait_for_event(self, step_id: str, wait: Wait) -> dict[str, Any] | None:
        self._within_limits(step_id)
        received = await self.ctx.step.wait_for_event(
            step_id, event=wait.event, if_exp=wait_expression(wait), timeout=wait.timeout
        )
        return event_json(received) if received is not None else None

    async def sleep(self, step_id: str, duration: timedelta) -> None:
        self._within_limits(step_id)
        await self.ctx.step.sleep(step_id, duration)

    async def send_event(self, step_id: str, events: list[dict[str, Any]]) -> None:
        self._within_limits(step_id)
        # The depth replaces whatever the event's data says under META: a run's event must not
        # set another run's id, input or state, nor make the runs it starts shallower.
        sent = [
            inngest.Event(
                name=e["name"],
                data={**dict(e.get("data") or {}), META: {"depth": self.depth + 1}},
                **({"id": e["id"]} if e.get("id") else {}),
            )
            for e in events
        ]
        await self.ctx.step.send_event(step_id, sent)

    async def invoke(self, step_id: str, network: str, input: str) -> dict[str, Any]:
        self._within_limits(step_id)
        function = self.invokable(network)
        if function is None:
            return ToolOutcome.failure(f"no network named '{network}' is served here").to_json()
        try:
            result = await self.ctx.step.invoke(
                step_id, function=function, data={"input": input, META: {"depth": self.depth + 1}}
            )
        except inngest.StepError as exc:
            raise StepFailed(step_id, exc.message) from None
        if not isinstance(result, Mapping):
            return ToolOutcome.failure(f"network '{network}' returned no result").to_json()
        return ToolOutcome(result={"output": result.get("output"), "state": result.get("state")}).to_json()


def last_attempt(ctx: inngest.Context) -> bool:
    """Whether this call is its step's (or, between steps, the function's) last attempt
    (``function.retries`` + 1; the SDK keeps the count in its request, which it does not
    expose: unknown counts as not). An internal error of the last attempt fails the run
    (and reaches its ``finally:`` steps) rather than going back to Inngest."""
    request = getattr(getattr(getattr(ctx.step, "_execution", None), "_request", None), "ctx", None)
    most = getattr(request, "max_attempts", None)
    return isinstance(most, int) and ctx.attempt + 1 >= most


def event_depth(event: Mapping[str, Any]) -> int:
    """The depth of a run the event starts: what a run that sent (or invoked) it wrote under
    META, else 0 (an event from outside)."""
    data = event.get("data")
    meta = data.get(META) if isinstance(data, Mapping) else None
    return depth_of(meta.get("depth") if isinstance(meta, Mapping) else None)


def _memo_ids(ctx: inngest.Context) -> frozenset[str]:
    """The hashed ids of the steps memoized when this call began.

    The SDK pops a memo when a step reads it, and has no public way to ask "is this step
    recorded" without running it; the loop only uses the answer to tell a replay from new
    work (no streamed text, no MCP connection for a replayed turn), so an SDK that moves
    this attribute costs that optimization, not correctness.
    """
    memos = getattr(getattr(getattr(ctx.step, "_execution", None), "_memos", None), "_memos", None)
    return frozenset(memos) if isinstance(memos, Mapping) else frozenset()
