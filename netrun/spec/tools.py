"""Tools declared in the network file: one kind key per tool (state, http, ...).

Tools from MCP servers are not declared here: agents name them as ``server.tool``.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, WithJsonSchema

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


# -- writing state (issue 15: owned by the results-into-state work) -------------------------

SAVE_OPS = ("set", "append", "merge")
"""The operations a write into a state field may name (:data:`Saves`)."""


class SaveSet(Spec):
    """Replace the field's value."""

    set: Any
    """The new value (its strings are rendered as templates, as in the whole mapping)."""


class SaveAppend(Spec):
    """Add to the end of an array field."""

    append: Any
    """What to add: one item, or a list whose items are added (to add a list as one item,
    write it inside a list). Its strings are rendered as templates."""


class SaveMerge(Spec):
    """Merge into an object field (shallow: the value's keys replace the field's)."""

    merge: Any
    """An object (or a template that yields one) whose keys are set in the field."""


SaveOp = Annotated[
    Annotated[SaveSet, Tag("set")] | Annotated[SaveAppend, Tag("append")] | Annotated[SaveMerge, Tag("merge")],
    one_of("a state write names exactly one operation: set, append or merge", by_key(*SAVE_OPS)),
]


def _save_shape(value: Any) -> str:
    """``op`` for a mapping naming an operation (or a parsed one), else ``value``."""
    if isinstance(value, BaseModel) or (isinstance(value, dict) and any(k in value for k in SAVE_OPS)):
        return "op"
    return "value"


SaveValue = Annotated[
    Annotated[SaveOp, Tag("op")] | Annotated[Any, Tag("value")],
    Discriminator(_save_shape),
    WithJsonSchema(
        {
            "description": "A value (string values are templates) to set, or a mapping with exactly one of "
            "'set', 'append' (array fields) or 'merge' (object fields).",
            "anyOf": [
                *({"type": "object", "required": [op], "properties": {op: {}}, "additionalProperties": False} for op in SAVE_OPS),
                {"not": {"type": "object", "anyOf": [{"required": [op]} for op in SAVE_OPS]}},
            ],
        }
    ),
]
"""One write into a state field: a value to set (string values inside it are templates), or a
mapping with exactly one of ``set``, ``append`` (an array field) or ``merge`` (an object field).
A mapping naming any of those keys is an operation: to set a literal object with a ``set`` key,
write ``{set: {set: ...}}``."""

Saves = dict[Name, SaveValue]
"""State field -> its write (:data:`SaveValue`), applied in the order written. The type of a
tool's ``save:`` and of the state tool's ``state:``; rendered and applied by
:mod:`netrun.runtime.saving`."""


class ToolBase(Spec):
    description: str | None = None
    """What the tool does; the model reads this to decide when to call it."""
    parameters: Parameters | None = None
    """The arguments the model passes, as JSON Schema; available to templates as ``args``."""
    approval: Approval | None = None
    """``required``: a human approves each call before it runs (a rejection is returned to the model)."""
    save: Saves = {}
    """State field -> the value to write; string values are templates over the call's ``result``
    (and ``args``, ``state``...). Or a mapping with ``set``, ``append`` (array fields) or
    ``merge`` (object fields). Written once the call succeeds (an error result saves nothing),
    in the order the model asked for the turn's calls."""


class StateTool(ToolBase):
    """Writes values into the network state."""

    state: Annotated[Saves, Field(min_length=1)]
    """State field -> value; string values are templates (``{{ args.category }}``), rendered on
    the state the turn's earlier calls left. A mapping with ``set``, ``append`` (array fields)
    or ``merge`` (object fields) updates the field instead of replacing it."""


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


# -- python tools (issue 15: owned by the python-tools work) -------------------------------


class PythonCall(Spec):
    """A Python function, called with the model's arguments."""

    function: str
    """``package.module:function``, imported from the network's folder or the installed environment."""
    timeout: Duration = "60s"
    """How long one call may take; past it the model gets an error result."""
    idempotent: bool = False
    """``true``: calling it twice does no harm, so a call cut off by a crash runs again when the
    run resumes; ``false`` (the default): the model is told that call may or may not have run."""


class PythonTool(ToolBase):
    """Calls a Python function (sync or async); its JSON return value is the result. Without
    ``parameters``, the model is shown a schema derived from the function's type hints."""

    python: Annotated[
        Annotated[str, Tag("text")] | Annotated[PythonCall, Tag("map")],
        one_of("python is 'package.module:function' or a mapping with 'function'", by_shape),
    ]
    """The function: ``package.module:function``, or a mapping with ``function``, ``timeout``
    and ``idempotent``."""


# -- command tools (issue 15: owned by the command-tools work) -----------------------------


def _bool_or_shape(value: Any) -> str | None:
    return "bool" if isinstance(value, bool) else by_shape(value)


class SandboxSpec(Spec):
    """Running the command under bubblewrap (``bwrap``, Debian's ``bubblewrap`` package)."""

    network: bool = False
    """``true``: the command may use the network; ``false`` (the default): it has none at all
    (not even the host's 127.0.0.1)."""
    work: Literal["run", "call"] = "run"
    """The writable folder mounted at ``/work`` (the command's working directory): ``run``, one
    folder per run, shared by every call of the run and found again when the run resumes;
    ``call``, a fresh empty folder for each call, deleted after it."""
    read_only: list[str] = []
    """More host folders the command may read (relative to the network file, or absolute),
    mounted at the same absolute path; the system folders (``/usr``, ``/bin``, ``/lib``...,
    ``/etc``) always are."""


SANDBOX_WORK = "/work"
"""Where a sandboxed command's writable work folder is mounted (its working directory)."""


def sandbox_mount_clash(folder: str) -> str | None:
    """Why the sandbox cannot mount ``folder`` (an absolute path) read-only: it would hide
    the sandbox's own ``/work``, ``/tmp``, ``/dev`` or ``/proc``, or sits in the last two;
    None when it can. The one rule ``netrun validate`` and the sandbox both apply."""
    for mount in (SANDBOX_WORK, "/tmp", "/dev", "/proc"):
        if folder == mount or mount.startswith(folder.rstrip("/") + "/"):
            return f"would hide the sandbox's own {mount}"
    if folder.startswith(("/dev/", "/proc/")):
        return "is inside the sandbox's own /dev or /proc"
    return None


class CommandCall(Spec):
    """A program to run, its argv built from templates."""

    argv: Annotated[
        Annotated[Annotated[list[Template], Field(min_length=1)], Tag("list")] | Annotated[Template, Tag("text")],
        one_of("argv is a list of arguments (or, with shell: true, one string)", by_shape),
    ]
    """The program and its arguments, a list with each item a template that renders to exactly
    one argument (never split, never seen by a shell). With ``shell: true``, one string: the
    script ``/bin/sh -c`` runs, where every value a ``{{ }}`` inserts is shell-quoted."""
    shell: bool = False
    """``true``: ``argv`` is one string run by ``/bin/sh -c`` (values it inserts are quoted
    with ``shlex.quote``, so model text stays one word)."""
    stdin: Template | None = None
    """What the command reads on its standard input (a template); none: it reads nothing."""
    cwd: str | None = None
    """The working directory, relative to the network file (default: the network's folder).
    Not with ``sandbox``: a sandboxed command runs in its work folder, ``/work``."""
    env: dict[str, Template] = {}
    """Environment variables set for the command (templates; may use ``${ENV}`` references,
    whose values are redacted from the output)."""
    env_pass: list[str] = ["PATH"]
    """The names of netrun's own environment variables passed through (when set); no other
    variable of netrun's environment reaches the command."""
    timeout: Duration = "60s"
    """How long the command may run; past it its whole process group is killed and the model
    gets an error result."""
    max_bytes: int = Field(default=1_000_000, gt=0)
    """The most of stdout and of stderr kept (each); the rest is read and dropped, and the
    result says how much was cut."""
    ok_codes: Annotated[list[int], Field(min_length=1)] = [0]
    """The exit codes that are a result; any other is an error result (with the output)."""
    idempotent: bool = False
    """``true``: running it twice does no harm, so a call cut off by a crash runs again when the
    run resumes; ``false`` (the default): the model is told that call may or may not have run."""
    sandbox: Annotated[
        Annotated[bool, Tag("bool")] | Annotated[SandboxSpec, Tag("map")],
        one_of("sandbox is true, false or a mapping with 'network', 'work' and 'read_only'", _bool_or_shape),
    ] = False
    """``true`` or a mapping: run under bubblewrap with a read-only system, one writable work
    folder at ``/work``, a private ``/tmp`` and no network (unless ``network: true``)."""


class CommandTool(ToolBase):
    """Runs a command; its exit code, stdout and stderr are the result. Commands change things
    outside netrun: consider ``approval: required``."""

    command: CommandCall
    """The command to run."""


# -- the registry of kinds ------------------------------------------------------------------


def kind_key(spec_type: type[ToolBase]) -> str:
    """The key that selects a kind in the file (``http`` for :class:`HttpTool`): the one
    field a kind adds to what every tool has."""
    (key,) = (f.alias or name for name, f in spec_type.model_fields.items() if name not in ToolBase.model_fields)
    return key


TOOL_KINDS = ("state", "http", "wait_for_event", "network", "event", "python", "command")

ToolSpec = Annotated[
    Annotated[StateTool, Tag("state")]
    | Annotated[HttpTool, Tag("http")]
    | Annotated[WaitTool, Tag("wait_for_event")]
    | Annotated[NetworkTool, Tag("network")]
    | Annotated[EventTool, Tag("event")]
    | Annotated[PythonTool, Tag("python")]
    | Annotated[CommandTool, Tag("command")],
    one_of(
        "a tool needs exactly one kind key: state, http, wait_for_event, network, event, python or command",
        by_key(*TOOL_KINDS),
    ),
]
"""A declared tool: exactly one of ``state``, ``http``, ``wait_for_event``, ``network``, ``event``,
``python``, ``command``."""
