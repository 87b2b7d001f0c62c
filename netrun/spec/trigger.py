"""Triggers: the events or schedules that start a network, and the events a run sends when it ends."""

from typing import Annotated, Any

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
    thread: Template | None = None
    """The thread (conversation) the run belongs to, a template over ``event``, e.g.
    ``{{ event.data.threadId }}`` (AgentKit's ``agent/chat.requested``): the run loads its
    messages and appends to it; a thread that does not exist yet is created. Empty: a new
    thread. A thread id given through the REST API wins."""
    user: Template | None = None
    """The thread's user, a template over ``event``, e.g. ``{{ event.data.userId }}``."""


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


class SentEvent(Spec):
    """An event a run sends when it ends."""

    event: EventName
    """The event name, e.g. ``app/ticket.triaged`` (it starts the networks it triggers and
    answers the waits it matches)."""
    data: dict[str, Any] = {}
    """The event's data; string values inside it are templates over ``input``, ``state``,
    ``event``, ``run`` and ``outcome`` (``status``, ``stop``, ``output``, ``error``). A value
    that is exactly one ``{{ ... }}`` keeps its type."""


class RunEvents(Spec):
    """The events a run sends as it ends (AgentKit/Inngest users know ``onFailure``)."""

    completed: list[SentEvent] = []
    """Sent once when the run completes (after its ``finally:`` steps)."""
    failed: list[SentEvent] = []
    """Sent once when the run fails (a failed step, a store that cannot be opened, ...)."""
