"""The shapes of the REST API's requests and answers (the OpenAPI document shows them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: str | None = None
    """The network input; default: the trigger's input template over the event data."""
    data: dict[str, Any] = Field(default_factory=dict)
    """The trigger event's data."""
    state: dict[str, Any] = Field(default_factory=dict)
    """Initial state."""
    thread_id: str | None = Field(default=None, min_length=1, max_length=200)
    """The conversation the run continues (a new one when not given; returned)."""
    user: str | None = None
    """A user key the thread is filed under (``GET /threads?user=``)."""
    history: list[dict[str, Any]] | None = None
    """Client-authoritative history, as ``GET /threads/{id}`` returns it (``role`` user,
    assistant or tool; ``content``; an assistant's ``tool_calls``, a tool message's
    ``tool_call_id``): used instead of the stored thread, which is not read (this run's
    messages are still appended)."""


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None
    """Deliver only to this run's waits (approvals match on ``data.run_id`` anyway)."""


class RunSummary(BaseModel):
    """A run as ``GET /runs/{id}`` answers it (and ``netrun run --json`` prints it)."""

    run_id: str
    status: str
    """queued, running, waiting, completed, failed or cancelled."""
    network: str
    definition_hash: str
    input: str
    result: dict[str, Any] | None
    """output, state, route, usage, stop_reason, iterations, results (a completed run)."""
    error: str | None
    approvals: list[dict[str, Any]]
    """The calls waiting for a human: id, tool, args, step, event, expires_at."""


class RunAction(BaseModel):
    """The answer to a retry or a cancel."""

    run_id: str
    status: str
    network: str


class NetworkList(BaseModel):
    networks: list[dict[str, Any]]
    """name, description, file, definition_hash, triggers of each served network."""
    reloads: int


class ThreadPage(BaseModel):
    threads: list[dict[str, Any]]
    next: dict[str, float] | None
    """``{before}`` for the next page, or None on the last."""


class ThreadMessages(BaseModel):
    thread_id: str
    messages: list[dict[str, Any]]


class ThreadDeleted(BaseModel):
    thread_id: str
    deleted: bool


class StreamTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Literal["run", "thread", "user"]
    """The kind of stream the token opens: a run's, a thread's or a user's events."""
    key: str = Field(min_length=1, max_length=200)
    """The run id, thread id or user the token opens the stream of (that one only)."""
    ttl: float | None = Field(default=None, gt=0)
    """Seconds the token lives: default 600, at most 3600 (a longer ttl is cut to 3600)."""


class StreamToken(BaseModel):
    """A stream token (``?token=`` of a stream route) and when it expires."""

    token: str
    expires: str
    """ISO 8601, UTC."""
    scope: str
    key: str


class RunPage(BaseModel):
    """A page of ``GET /runs``, newest first."""

    runs: list[dict[str, Any]]
    """run_id, network, status, definition_hash, input, error, thread_id, user, parent (a
    child run's parent run), created and updated (ISO 8601, UTC) of each run."""
    next: str | None
    """The ``cursor`` of the next page, or None on the last."""
