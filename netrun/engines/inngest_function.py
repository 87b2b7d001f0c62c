"""A network as an Inngest function: its triggers and every function setting in the YAML.

This module builds the options of ``inngest.Inngest.create_function``; ``netrun serve``
(issue 4) pairs them with a handler that runs the network loop on Inngest's steps.
Expressions (filters, keys, cancel conditions) become CEL, which Inngest evaluates;
durations become ``timedelta`` (Inngest wants whole seconds, which validate checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..check.cel import to_cel
from ..runtime.render import Renderer, evaluate
from ..spec import NetworkSpec
from ..spec.base import parse_duration
from ..spec.trigger import CronTrigger, EventTrigger

DEFAULT_INPUT = "{{ event.data.input }}"
"""The network input when a trigger names none: ``event.data.input``, as AgentKit does."""


def default_event(spec: NetworkSpec) -> str:
    """The event that starts a network with no trigger (what ``POST /networks/NAME/runs`` sends)."""
    return f"netrun/{spec.name}.run"


def triggers(spec: NetworkSpec) -> list[EventTrigger | CronTrigger]:
    if spec.trigger is None:
        return [EventTrigger.model_validate({"event": default_event(spec)})]
    return list(spec.trigger) if isinstance(spec.trigger, list) else [spec.trigger]


def input_template(spec: NetworkSpec, event_name: str) -> str:
    """The template that makes the network input from the event that started the run."""
    for trigger in triggers(spec):
        if isinstance(trigger, EventTrigger) and trigger.event == event_name:
            return trigger.input
        if isinstance(trigger, CronTrigger) and event_name == "inngest/scheduled.timer":
            return trigger.input
    return DEFAULT_INPUT


def network_input(spec: NetworkSpec, event: Mapping[str, Any]) -> str:
    """The network input the trigger's template makes from ``event`` (RenderError if it cannot)."""
    return Renderer().render(input_template(spec, str(event.get("name", ""))), {"event": dict(event)})


def accepts(trigger: EventTrigger, event: Mapping[str, Any]) -> bool:
    """Whether ``event`` passes the trigger's ``if`` (RenderError if it cannot be evaluated)."""
    return trigger.if_ is None or bool(evaluate(trigger.if_, {"event": dict(event)}))


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
        limits = [{"limit": fn.concurrency}] if isinstance(fn.concurrency, int) else [c.model_dump() for c in fn.concurrency]
        options["concurrency"] = [inngest.Concurrency(limit=c["limit"], key=key(c.get("key")), scope=c.get("scope") or "fn") for c in limits]
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
        options["cancel"] = [inngest.Cancel(event=c.event, if_exp=key(c.if_), timeout=seconds(c.timeout)) for c in fn.cancel]
    if fn.timeouts is not None:
        options["timeouts"] = inngest.Timeouts(start=seconds(fn.timeouts.start), finish=seconds(fn.timeouts.finish))
    if fn.singleton is not None:
        options["singleton"] = inngest.Singleton(mode=fn.singleton.mode, key=key(fn.singleton.key))
    return options
