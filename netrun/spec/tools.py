"""Tools declared in the network file: one kind key per tool (state, http, ...).

Tools from MCP servers are not declared here: agents name them as ``server.tool``.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, Tag

from .base import Duration, EventName, Expression, Name, Spec, Template, by_key, by_shape, one_of
from .params import Parameters


class ApprovalSpec(Spec):
    """A human approves (or rejects) each call before the tool runs."""

    timeout: Duration = "24h"
    """How long to wait for a decision; no decision counts as a rejection."""
    event: EventName | None = None
    """The event that carries the decision (default ``netrun/approval``), with
    ``data.approved`` (true or false) and optional ``data.reason``."""


Approval = Annotated[
    Annotated[Literal["required", "none"], Tag("text")] | Annotated[ApprovalSpec, Tag("map")],
    one_of("approval is 'required', 'none' or a mapping with 'timeout' and 'event'", by_shape),
]


class ToolBase(Spec):
    description: str | None = None
    """What the tool does; the model reads this to decide when to call it."""
    parameters: Parameters | None = None
    """The arguments the model passes, as JSON Schema; available to templates as ``args``."""
    approval: Approval | None = None
    """``required``: a human approves each call before it runs (a rejection is returned to the model)."""


class StateTool(ToolBase):
    """Writes values into the network state."""

    state: Annotated[dict[Name, Any], Field(min_length=1)]
    """State field -> value; string values are templates (``{{ args.category }}``)."""


class HttpCall(Spec):
    """One HTTP request."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    """The HTTP method."""
    url: Template
    """The URL; a template, and may use ``${ENV}`` references. Values a template inserts are
    percent-encoded for the part of the URL they land in, and may not change its origin."""
    allowed_origins: list[str] = []
    """More origins (``https://api.example.com``, ``http://127.0.0.1:8080``) the request may go
    to besides the one ``url`` is written with; with them a template may write the origin
    (``url: "{{ state.base }}/v1/items"``). May use ``${ENV}`` references."""
    query: dict[str, Template] = {}
    """Query parameters (templates)."""
    headers: dict[str, Template] = {}
    """Request headers (templates); put secrets in ``${ENV}`` references."""
    body: Any = None
    """A JSON body; string values inside it are templates."""
    timeout: Duration = "30s"
    """How long one attempt may take."""
    retries: int = Field(default=2, ge=0, le=10)
    """Retries on 429, 5xx and transport errors, with backoff (Retry-After is honoured)."""
    max_bytes: int = Field(default=1_000_000, gt=0)
    """The largest response accepted; a larger one is an error for the model."""


class HttpTool(ToolBase):
    """Calls an HTTP endpoint; the response (JSON or text) is the result."""

    http: HttpCall
    """The request to make."""


class WaitCall(Spec):
    """Waiting for an event: human input, or any outside signal."""

    event: EventName
    """The event name to wait for."""
    match: str | None = None
    """A dotted field (``data.ticketId``) that must be equal in the triggering and the awaited event."""
    if_: Expression | None = Field(default=None, alias="if")
    """An expression over ``event`` (the trigger), ``async`` (the awaited event), ``args`` and ``state``."""
    timeout: Duration = "24h"
    """How long to wait; on timeout the model is told that no answer came."""


class WaitTool(ToolBase):
    """Pauses the run until an event arrives; the event's data is the result."""

    wait_for_event: WaitCall
    """The event to wait for."""


class NetworkCall(Spec):
    """Another network, run as a tool."""

    name: Name
    """The name of the network to run."""
    input: Template = "{{ args.input }}"
    """The input given to that network."""


class NetworkTool(ToolBase):
    """Runs another network and returns its output."""

    network: Annotated[
        Annotated[Name, Tag("text")] | Annotated[NetworkCall, Tag("map")],
        one_of("network is a network name or a mapping with 'name'", by_shape),
    ]
    """The network to run: its name, or a mapping with ``name`` and ``input``."""


class EventCall(Spec):
    """An event to send."""

    name: Template
    """The event name, a template (``app/memory.write``, ``app/{{ args.kind }}.requested``)."""
    data: Any = None
    """The event data; string values inside it are templates."""


class EventTool(ToolBase):
    """Sends an event: it starts the networks it triggers (background work) and answers the
    waits it matches. The result is the sent event's name and id."""

    event: EventCall
    """The event to send."""


def kind_key(spec_type: type[ToolBase]) -> str:
    """The key that selects a kind in the file (``http`` for :class:`HttpTool`): the one
    field a kind adds to what every tool has."""
    (key,) = (f.alias or name for name, f in spec_type.model_fields.items() if name not in ToolBase.model_fields)
    return key


TOOL_KINDS = ("state", "http", "wait_for_event", "network", "event")

ToolSpec = Annotated[
    Annotated[StateTool, Tag("state")]
    | Annotated[HttpTool, Tag("http")]
    | Annotated[WaitTool, Tag("wait_for_event")]
    | Annotated[NetworkTool, Tag("network")]
    | Annotated[EventTool, Tag("event")],
    one_of("a tool needs exactly one kind key: state, http, wait_for_event, network or event", by_key(*TOOL_KINDS)),
]
"""A declared tool: exactly one of ``state``, ``http``, ``wait_for_event``, ``network``, ``event``."""
