"""What starts a network, the same on every engine: its triggers, their ``if`` and input.

A network with no ``trigger`` is started by its default event (``netrun/NAME.run``, what
``POST /networks/NAME/runs`` sends). The trigger an event matched makes the network input
from it with its ``input`` template (default ``event.data.input``, as AgentKit does). The
local engine evaluates a trigger's ``if`` itself; on Inngest the same condition travels as
CEL in the function's options (:mod:`netrun.engines.inngest_function`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..runtime.render import Renderer, RenderError, evaluate
from ..spec import NetworkSpec, scopes
from ..spec.trigger import CronTrigger, EventTrigger

DEFAULT_INPUT = "{{ event.data.input }}"
"""The network input when a trigger names none: ``event.data.input``, as AgentKit does."""

META = "_netrun"
"""The key of netrun's own metadata in an event's data (the run it starts, its depth). Here,
not in :mod:`.inngest_steps`, so the REST API can refuse it without importing the Inngest SDK."""

RUN_CANCEL_EVENT = "netrun/run.cancel"
"""The event ``POST /runs/{id}/cancel`` sends on Inngest: every function cancels on it
(:func:`netrun.engines.inngest_function.rest_cancel`) when it names the run."""

MAX_THREAD_ID = 200
"""The longest thread id a trigger's ``thread`` template may make (as the REST API allows)."""

CRON_EVENT = "inngest/scheduled.timer"
"""The event a cron trigger's runs start with (Inngest's name for it)."""


def default_event(spec: NetworkSpec) -> str:
    """The event that starts a network with no trigger (what ``POST /networks/NAME/runs`` sends)."""
    return f"netrun/{spec.name}.run"


def triggers(spec: NetworkSpec) -> list[EventTrigger | CronTrigger]:
    """The network's triggers as a list; one on its default event when it declares none."""
    if spec.trigger is None:
        return [EventTrigger.model_validate({"event": default_event(spec)})]
    return list(spec.trigger) if isinstance(spec.trigger, list) else [spec.trigger]


def input_template(spec: NetworkSpec, event_name: str) -> str:
    """The template that makes the network input from the event that started the run."""
    for trigger in triggers(spec):
        if isinstance(trigger, EventTrigger) and trigger.event == event_name:
            return trigger.input
        if isinstance(trigger, CronTrigger) and event_name == CRON_EVENT:
            return trigger.input
    return DEFAULT_INPUT


def network_input(spec: NetworkSpec, event: Mapping[str, Any]) -> str:
    """The network input the trigger's template makes from ``event`` (RenderError if it cannot)."""
    variables = scopes.variables(scopes.TRIGGER_INPUT, {"event": dict(event)})
    return Renderer().render(input_template(spec, str(event.get("name", ""))), variables)


def accepts(trigger: EventTrigger, event: Mapping[str, Any]) -> bool:
    """Whether ``event`` passes the trigger's ``if`` (RenderError if it cannot be evaluated)."""
    return trigger.if_ is None or bool(evaluate(trigger.if_, scopes.variables(scopes.TRIGGER_IF, {"event": dict(event)})))


def trigger_of(spec: NetworkSpec, event_name: str) -> EventTrigger | None:
    """The event trigger of ``spec`` that ``event_name`` matches, or None."""
    for trigger in triggers(spec):
        if isinstance(trigger, EventTrigger) and trigger.event == event_name:
            return trigger
    return None


def thread_options(spec: NetworkSpec, event: Mapping[str, Any], options: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The run's options with the thread and user its trigger's ``thread``/``user`` templates
    make from ``event`` (AgentKit's ``agent/chat.requested`` carries ``data.threadId``).

    A thread id in ``options`` (the REST API's, ``netrun run --thread``) wins. A ``thread``
    template that renders empty names a new thread, whose id is made from the run's (the
    same on every replay). Rendered on every execution of the run from its pinned event, so
    it is the same each time on both engines (RenderError if a template cannot render)."""
    trigger = trigger_of(spec, str(event.get("name", "")))
    # A child run (a network tool's) carries its parent's event but not its conversation.
    if trigger is None or trigger.thread is None or options.get("thread_id") or options.get("parent"):
        return dict(options)
    variables = scopes.variables(scopes.TRIGGER_THREAD, {"event": dict(event)})
    renderer = Renderer()
    thread_id = renderer.render(trigger.thread, variables, ("trigger", "thread")).strip() or f"thread-{run_id}"
    if len(thread_id) > MAX_THREAD_ID:
        raise RenderError(f"trigger.thread: the thread id is {len(thread_id)} characters long; at most {MAX_THREAD_ID}")
    chosen: dict[str, Any] = {**options, "thread_id": thread_id}
    if trigger.user is not None and not options.get("user"):
        user = renderer.render(trigger.user, variables, ("trigger", "user")).strip()
        if user:
            chosen["user"] = user
    return chosen


def run_thread(
    spec: NetworkSpec, event: Mapping[str, Any], options: Mapping[str, Any], run_id: str
) -> tuple[str | None, str | None]:
    """The run's thread id and user, as :func:`thread_options` chooses them, for its
    ``run.started`` event (None, None when a template cannot render: the run fails on it)."""
    try:
        chosen = thread_options(spec, event, options, run_id)
    except RenderError:
        chosen = dict(options)
    thread_id, user = chosen.get("thread_id"), chosen.get("user")
    return (str(thread_id) if thread_id else None, str(user) if user else None)
