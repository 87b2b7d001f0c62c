"""Check phase, what Inngest is told: the triggers, and the function's settings (flow
control keys and their durations, cancellation, timeouts) within the ranges Inngest accepts."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..diagnostics import YamlPath
from ..spec import scopes
from ..spec.base import parse_duration
from ..spec.trigger import CronTrigger, EventTrigger
from .cron import cron_problem

if TYPE_CHECKING:
    from .network import NetworkChecker


def triggers(c: NetworkChecker) -> None:
    """Each trigger's input template, event ``if`` expression and cron string."""
    trig = c.spec.trigger
    if trig is None:
        return
    items: list[tuple[YamlPath, Any]] = (
        [(("trigger", i), t) for i, t in enumerate(trig)] if isinstance(trig, list) else [(("trigger",), trig)]
    )
    for path, t in items:
        c.template((*path, "input"), t.input, c.scope(scopes.TRIGGER_INPUT))
        if isinstance(t, EventTrigger):
            c.inngest_expression((*path, "if"), t.if_, c.scope(scopes.TRIGGER_IF))
        elif isinstance(t, CronTrigger):
            problem = cron_problem(t.cron)
            if problem:
                c.report((*path, "cron"), problem, "bad-cron")


def settings(c: NetworkChecker) -> None:
    """The function's keys and expressions (as Inngest evaluates them) and durations."""
    fn = c.spec.function
    if fn is None:
        return
    scope = c.scope(scopes.FUNCTION_KEY)
    second, day, week = timedelta(seconds=1), timedelta(days=1), timedelta(days=7)
    if isinstance(fn.concurrency, list):
        for i, limit in enumerate(fn.concurrency):
            c.inngest_expression(("function", "concurrency", i, "key"), limit.key, scope)
    for section, high in (("throttle", week), ("rate_limit", day), ("debounce", week)):
        cfg = getattr(fn, section)
        if cfg is not None:
            _duration(c, ("function", section, "period"), cfg.period, second, high)
            c.inngest_expression(("function", section, "key"), cfg.key, scope)
    if fn.debounce is not None:
        _duration(c, ("function", "debounce", "timeout"), fn.debounce.timeout, second, None)
    if fn.priority is not None:
        c.inngest_expression(("function", "priority", "run"), fn.priority.run, scope)
    c.inngest_expression(("function", "idempotency"), fn.idempotency, scope)
    for i, cancel in enumerate(fn.cancel):
        c.inngest_expression(("function", "cancel", i, "if"), cancel.if_, c.scope(scopes.CANCEL_IF))
        _duration(c, ("function", "cancel", i, "timeout"), cancel.timeout, second, None)
    if fn.timeouts is not None:
        _duration(c, ("function", "timeouts", "start"), fn.timeouts.start, second, None)
        _duration(c, ("function", "timeouts", "finish"), fn.timeouts.finish, second, None)
    if fn.singleton is not None:
        c.inngest_expression(("function", "singleton", "key"), fn.singleton.key, scope)


def _duration(c: NetworkChecker, path: YamlPath, value: str | None, low: timedelta, high: timedelta | None) -> None:
    if value is None:
        return
    d = parse_duration(value)
    if d < low or (high is not None and d > high):
        span = f"between {_human(low)} and {_human(high)}" if high else f"at least {_human(low)}"
        c.report(path, f"{value} is out of range: must be {span}", "out-of-range")
    elif d.total_seconds() != int(d.total_seconds()):
        c.report(path, f"{value} is not a whole number of seconds, as Inngest requires", "out-of-range")


def _human(d: timedelta | None) -> str:
    if d is None:
        return "forever"
    s = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0 and s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
