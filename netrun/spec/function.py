"""Inngest function settings: retries, flow control, cancellation, timeouts.

Keys and conditions are expressions over ``event`` (``event.data.user_id``); netrun
translates them for Inngest, which evaluates them on its side.
"""

from typing import Annotated, Literal

from pydantic import Field, Tag

from .base import Duration, EventName, Expression, Spec, by_shape, one_of


class ConcurrencySpec(Spec):
    """At most ``limit`` steps run at once, per ``key`` value if one is given."""

    limit: int = Field(gt=0)
    """How many may run at once."""
    key: Expression | None = None
    """Limit per value of this expression, e.g. ``event.data.user_id`` (one queue per tenant)."""
    scope: Literal["fn", "env", "account"] = "fn"
    """Count within this function (``fn``), the environment (``env``) or the account."""


class ThrottleSpec(Spec):
    """At most ``limit`` runs start per ``period``; the rest are queued."""

    limit: int = Field(gt=0)
    """Runs started per period."""
    period: Duration
    """The window, 1s to 7d."""
    key: Expression | None = None
    """Throttle per value of this expression."""
    burst: int | None = Field(default=None, gt=0)
    """Extra runs allowed in a burst."""


class RateLimitSpec(Spec):
    """At most ``limit`` runs per ``period``; the rest are dropped."""

    limit: int = Field(gt=0)
    """Runs allowed per period."""
    period: Duration
    """The window, 1s to 24h."""
    key: Expression | None = None
    """Rate-limit per value of this expression."""


class DebounceSpec(Spec):
    """Wait until events stop arriving for ``period``, then run once with the last one."""

    period: Duration
    """Quiet time before the run starts, 1s to 7d."""
    key: Expression | None = None
    """Debounce per value of this expression."""
    timeout: Duration | None = None
    """Start the run after this long even if events keep arriving."""


class PrioritySpec(Spec):
    """Run some events ahead of others."""

    run: Expression
    """An expression giving seconds (-600 to 600) by which to move the run ahead in the queue."""


class CancelSpec(Spec):
    """Cancel a run when a matching event arrives."""

    event: EventName
    """The event that cancels."""
    if_: Expression | None = Field(default=None, alias="if")
    """Only cancel when this holds, over ``event`` (the trigger) and ``async`` (the cancelling event)."""
    timeout: Duration | None = None
    """Only listen for the cancelling event this long."""


class TimeoutsSpec(Spec):
    """Cancel runs that take too long to start or to finish."""

    start: Duration | None = None
    """Cancel a run that has not started within this time."""
    finish: Duration | None = None
    """Cancel a run that has not finished within this time of starting."""


class SingletonSpec(Spec):
    """At most one run at a time (per key)."""

    mode: Literal["skip", "cancel"]
    """``skip`` new runs while one is running, or ``cancel`` the running one."""
    key: Expression | None = None
    """One run at a time per value of this expression."""


Concurrency = Annotated[
    Annotated[Annotated[int, Field(gt=0)], Tag("int")]
    | Annotated[Annotated[list[ConcurrencySpec], Field(min_length=1, max_length=2)], Tag("list")],
    one_of(
        "concurrency is a number (a limit) or a list of at most 2 mappings with 'limit', 'key' and 'scope'",
        lambda v: "int" if isinstance(v, int) and not isinstance(v, bool) else by_shape(v),
    ),
]


class FunctionSpec(Spec):
    """How the network runs as an Inngest function."""

    id: str | None = None
    """The function id (default: the network name)."""
    retries: int | None = Field(default=None, ge=0, le=20)
    """Retries of a failed step (Inngest's default is 4)."""
    concurrency: Concurrency | None = None
    """A limit, or up to two limits with ``key`` and ``scope`` (per-tenant concurrency)."""
    throttle: ThrottleSpec | None = None
    """Throttling of run starts."""
    rate_limit: RateLimitSpec | None = None
    """Rate limiting of run starts (excess events are dropped)."""
    debounce: DebounceSpec | None = None
    """Debouncing of events."""
    priority: PrioritySpec | None = None
    """Queue priority."""
    idempotency: Expression | None = None
    """An expression over ``event``: one run per value within 24 hours."""
    cancel: list[CancelSpec] = []
    """Events that cancel a run."""
    timeouts: TimeoutsSpec | None = None
    """Start and finish timeouts."""
    singleton: SingletonSpec | None = None
    """One run at a time."""


MAX_STEPS = 1_000
"""Inngest fails a run past this many steps (pkg/consts/consts.go ``DefaultMaxStepLimit``):
``netrun validate`` warns of a network that can reach it; on Inngest a run stops before it."""
MAX_STEP_OUTPUT = 4 * 1024 * 1024
"""Inngest fails a step whose output is over 4 MB (pkg/consts/consts.go ``MaxStepOutputSize``)."""
