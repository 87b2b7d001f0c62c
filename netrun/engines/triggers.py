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

from ..runtime.render import Renderer, evaluate
from ..spec import NetworkSpec, scopes
from ..spec.trigger import CronTrigger, EventTrigger

DEFAULT_INPUT = "{{ event.data.input }}"
"""The network input when a trigger names none: ``event.data.input``, as AgentKit does."""

META = "_netrun"
"""The key of netrun's own metadata in an event's data (the run it starts, its depth). Here,
not in :mod:`.inngest_steps`, so the REST API can refuse it without importing the Inngest SDK."""

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
