"""A network as an Inngest function: its triggers and every function setting in the YAML.

This module builds the options of ``inngest.Inngest.create_function``; the Inngest engine
(:mod:`netrun.engines.inngest`) pairs them with a handler that runs the network loop on
Inngest's steps. What the triggers mean (default event, input, ``if``) is engine-neutral,
in :mod:`netrun.engines.triggers`.

Expressions (filters, keys, cancel conditions) become CEL, which Inngest evaluates;
durations become ``timedelta`` (Inngest wants whole seconds, which validate checks).
"""

from __future__ import annotations

import json
from typing import Any

from ..expressions.cel import to_cel
from ..spec import NetworkSpec
from ..spec.base import parse_duration
from ..spec.function import ConcurrencySpec
from ..spec.trigger import EventTrigger
from .triggers import META, RUN_CANCEL_EVENT, triggers


def rest_cancel(spec: NetworkSpec) -> Any:
    """The cancel entry of every function, for ``POST /runs/{id}/cancel``: the event names
    the network and either netrun's run id (a run the REST API started: its trigger event
    carries it) or the id of the event that started the run (Inngest's run, started by an
    event). The network keeps a run of another network, started by the same event, out."""
    import inngest

    condition = (
        f"async.data.network == {json.dumps(spec.name)} && "
        f"(async.data.run_id == event.data.{META}.run_id || async.data.event_id == event.id)"
    )
    return inngest.Cancel(event=RUN_CANCEL_EVENT, if_exp=condition)


def function_options(spec: NetworkSpec) -> dict[str, Any]:
    """Keyword arguments for ``create_function`` (the handler is added by the caller)."""
    import inngest

    fn = spec.function
    options: dict[str, Any] = {
        "fn_id": (fn.id if fn and fn.id else None) or spec.name,
        "name": spec.description or spec.name,
        "trigger": [
            inngest.TriggerEvent(event=t.event, expression=to_cel(t.if_) if t.if_ else None)
            if isinstance(t, EventTrigger)
            else inngest.TriggerCron(cron=t.cron)
            for t in triggers(spec)
        ],
        "cancel": [rest_cancel(spec)],
    }
    if fn is None:
        return options

    def key(expression: str | None) -> str | None:
        return to_cel(expression) if expression else None

    def seconds(text: str | None) -> Any:
        return parse_duration(text) if text else None

    if fn.retries is not None:
        options["retries"] = fn.retries
    if fn.concurrency is not None:
        limits = [ConcurrencySpec(limit=fn.concurrency)] if isinstance(fn.concurrency, int) else fn.concurrency
        options["concurrency"] = [inngest.Concurrency(limit=c.limit, key=key(c.key), scope=c.scope) for c in limits]
    if fn.throttle is not None:
        t = fn.throttle
        options["throttle"] = inngest.Throttle(limit=t.limit, period=seconds(t.period), key=key(t.key), burst=t.burst)
    if fn.rate_limit is not None:
        r = fn.rate_limit
        options["rate_limit"] = inngest.RateLimit(limit=r.limit, period=seconds(r.period), key=key(r.key))
    if fn.debounce is not None:
        d = fn.debounce
        options["debounce"] = inngest.Debounce(period=seconds(d.period), key=key(d.key), timeout=seconds(d.timeout))
    if fn.priority is not None:
        options["priority"] = inngest.Priority(run=to_cel(fn.priority.run))
    if fn.idempotency is not None:
        options["idempotency"] = to_cel(fn.idempotency)
    if fn.cancel:
        options["cancel"] = [
            *(inngest.Cancel(event=c.event, if_exp=key(c.if_), timeout=seconds(c.timeout)) for c in fn.cancel),
            rest_cancel(spec),
        ]
    if fn.timeouts is not None:
        options["timeouts"] = inngest.Timeouts(start=seconds(fn.timeouts.start), finish=seconds(fn.timeouts.finish))
    if fn.singleton is not None:
        options["singleton"] = inngest.Singleton(mode=fn.singleton.mode, key=key(fn.singleton.key))
    return options
