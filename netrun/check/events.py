"""Check phase, events in and out: the thread and user a trigger takes from its event, the
models a run may pick from event data (``model: {from, allowed, default}``), and the events
a run sends as it ends (``send.completed``, ``send.failed``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import envrefs
from ..diagnostics import YamlPath
from ..spec import scopes
from ..spec.model import ModelChoice
from ..spec.trigger import EventTrigger

if TYPE_CHECKING:
    from .network import NetworkChecker


def check(c: NetworkChecker) -> None:
    """Every events-in-and-out field of the network (the allowed models themselves are
    checked with the other models, :func:`netrun.check.agents.models`)."""
    _threads(c)
    _model_choice(c, ("model",), c.spec.model)
    for name, agent in c.spec.agents.items():
        _model_choice(c, ("agents", name, "model"), agent.model)
    _run_events(c)


def _threads(c: NetworkChecker) -> None:
    trig = c.spec.trigger
    if trig is None:
        return
    items: list[tuple[YamlPath, Any]] = (
        [(("trigger", i), t) for i, t in enumerate(trig)] if isinstance(trig, list) else [(("trigger",), trig)]
    )
    scope = c.scope(scopes.TRIGGER_THREAD)
    for path, t in items:
        if not isinstance(t, EventTrigger):
            continue
        c.template((*path, "thread"), t.thread, scope)
        c.template((*path, "user"), t.user, scope)
        if t.user is not None and t.thread is None:
            c.report(
                (*path, "user"),
                'a user is the user of a thread: set the trigger\'s thread too (e.g. thread: "{{ event.data.threadId }}")',
                "user-without-thread",
                key=True,
            )


def _model_choice(c: NetworkChecker, path: YamlPath, ref: Any) -> None:
    if not isinstance(ref, ModelChoice):
        return
    c.template((*path, "from"), ref.from_, c.scope(scopes.MODEL_FROM))
    ids = ref.ids()
    seen: dict[str, int] = {}
    for i, model_id in enumerate(ids):
        if model_id in seen:
            c.report(
                (*path, "allowed", i),
                f"model '{model_id}' is allowed twice (also at allowed[{seen[model_id]}])",
                "duplicate-model",
            )
        seen.setdefault(model_id, i)
    if ref.default is not None and ref.default not in ids:
        c.report(
            (*path, "default"),
            f"the default model '{ref.default}' is not one of the allowed models: {', '.join(ids)}",
            "default-not-allowed",
        )


def _run_events(c: NetworkChecker) -> None:
    send = c.spec.send
    if send is None:
        return
    scope = c.scope(scopes.RUN_EVENTS)
    for outcome, declared in (("completed", send.completed), ("failed", send.failed)):
        for i, sent in enumerate(declared):
            path: YamlPath = ("send", outcome, i, "data")
            c.walk_templates(path, sent.data, scope)
            if "approval_id" in sent.data:
                c.report(
                    (*path, "approval_id"),
                    "approval_id is reserved for the people who answer approvals: a run's event cannot approve tool calls",
                    "reserved-key",
                    key=True,
                )
            _no_secrets(c, path, sent.data)


def _no_secrets(c: NetworkChecker, path: YamlPath, value: Any) -> None:
    """An event's data is sent as it is rendered: an ``${ENV}`` reference would put a secret in it."""
    if isinstance(value, str):
        if envrefs.names(value):
            c.report(
                path,
                "an event's data cannot use ${ENV} references: events are stored and shown, and a secret must not be in them",
                "secret-in-event",
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_secrets(c, (*path, k), v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_secrets(c, (*path, i), v)
