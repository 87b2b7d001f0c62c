"""Conversations: where a thread's messages are kept, and how much of them agents see."""

from typing import Any, Literal

from pydantic import Field

from .base import Duration, Spec, Template


class Window(Spec):
    """How much of a thread's earlier messages an agent is shown (the most recent ones)."""

    messages: int | None = Field(default=None, gt=0)
    """At most this many messages (a tool result counts with the assistant message that called the tool)."""
    tokens: int | None = Field(default=None, gt=0)
    """At most this many tokens (estimated at 4 characters a token)."""


class HttpEndpoint(Spec):
    """One call to the user's own history service."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """The HTTP method."""
    url: Template
    """The URL, a template over ``thread_id`` and ``user``; may use ``${ENV}`` references."""
    headers: dict[str, Template] = {}
    """Request headers (templates; put secrets in ``${ENV}`` references)."""
    body: Any = None
    """A JSON body; string values are templates over ``thread_id``, ``user`` and, for
    ``append``, ``messages`` (a value that is exactly ``{{ messages }}`` stays a list)."""


class HttpHistory(Spec):
    """The declarative twin of AgentKit's history adapter: your endpoints keep the threads."""

    create: HttpEndpoint | None = None
    """Creates a thread (called before its first run; it must accept a thread that exists)."""
    get: HttpEndpoint
    """Returns the thread's messages: a JSON list, or an object with ``messages``. Each
    message has ``role`` (user, assistant or tool) and ``content``, with the keys append
    sent (an assistant's ``tool_calls``, a tool message's ``tool_call_id``)."""
    append: HttpEndpoint
    """Appends ``messages``. Each carries an ``id`` (the same on every retry): the service
    must ignore an id it has already stored."""
    timeout: Duration = "10s"
    """How long one call may take."""


class HistorySpec(Spec):
    """Where the network's threads are kept."""

    store: Literal["sqlite", "postgres", "http"] = "sqlite"
    """``sqlite`` (the default: a file in the data directory), ``postgres`` (one database
    for several servers) or ``http`` (your own service)."""
    path: str | None = None
    """SQLite: the database file, relative to the data directory (default ``threads.db``)."""
    url: str | None = None
    """PostgreSQL: the connection URL, as an ``${ENV}`` reference (it holds a password)."""
    http: HttpHistory | None = None
    """HTTP: the endpoints that create, get and append to threads."""
    window: Window | None = None
    """How much of a thread every agent is shown (an agent's own ``history`` overrides it)."""
