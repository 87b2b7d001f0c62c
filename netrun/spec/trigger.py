"""Triggers: the events or schedules that start a network."""


from pydantic import Field

from .base import EventName, Expression, Spec, Template, by_key, keyed_union


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


TriggerSpec = keyed_union(
    ("event", EventTrigger),
    ("cron", CronTrigger),
    error="a trigger needs exactly one of 'event' or 'cron'",
    pick=by_key("event", "cron"),
)
