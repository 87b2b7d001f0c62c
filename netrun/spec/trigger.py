"""Triggers: the events or schedules that start a network."""

from typing import Annotated

from pydantic import Field, Tag

from .base import EventName, Expression, Spec, Template, by_key, one_of


class EventTrigger(Spec):
    """Start a run when an event arrives."""

    event: EventName
    """The event name, e.g. ``app/support.ticket.created``."""
    if_: Expression | None = Field(default=None, alias="if")
    """Only events for which this expression over ``event`` holds start a run."""
    input: Template = "{{ event.data.input }}"
    """The network input, a template over ``event``."""


class CronTrigger(Spec):
    """Start a run on a schedule."""

    cron: str
    """A cron schedule (5 fields), optionally prefixed with ``TZ=Area/City``."""
    input: Template = ""
    """The network input for scheduled runs."""


TriggerSpec = Annotated[
    Annotated[EventTrigger, Tag("event")] | Annotated[CronTrigger, Tag("cron")],
    one_of("a trigger needs exactly one of 'event' or 'cron'", by_key("event", "cron")),
]
