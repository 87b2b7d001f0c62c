"""The test file format: deterministic, offline test cases of a network (``*.test.yaml``).

A test file sits beside its network (``support.yaml`` -> ``support.test.yaml``) and
holds named cases. Each case gives the input, the model's replies (inline, or a replies
file), stubs for tools that must not run for real, the events that answer waits and
approvals, and what must come out: the route, the tool calls, the state, the output, the
stop reason, the iterations. ``netrun test`` runs them on the local engine.
"""

from typing import Annotated, Any, Literal

from pydantic import Field

from .base import EventName, Name, Spec


class ReplyToolCall(Spec):
    """A tool call the scripted model makes."""

    name: str
    """The tool's name as the model sees it (``server__tool`` for MCP tools)."""
    args: dict[str, Any] = {}
    """The arguments."""


class Reply(Spec):
    """One scripted model reply."""

    text: str | None = None
    """What the model says."""
    tool_calls: list[ReplyToolCall] = []
    """The tools it calls, in order."""


class Stub(Spec):
    """What a stubbed tool returns instead of running (an MCP or HTTP tool, a wait, ...)."""

    result: Any = None
    """The tool's result, as the model sees it."""
    error: str | None = None
    """An error message instead of a result (the model sees the tool fail)."""
    read_only: bool = False
    """For a stubbed MCP tool: its server annotates it ``readOnlyHint``. A server whose
    ``approval`` has ``destructive: true`` gates every stub without it, as a live run gates a
    tool the server does not annotate (a stub has no annotations of its own)."""


class TestEvent(Spec):
    """An event: the one that starts the run, or one that answers a wait or an approval."""

    __test__ = False  # not a pytest test class

    name: EventName
    """The event name."""
    data: dict[str, Any] = {}
    """The event data. For ``netrun/approval`` (and a tool's approval event) ``run_id`` is
    filled in with the case's run, and ``step`` (the gated call's step id, such as
    ``turn.0.ops.tool.1.shell``) names the call it answers when several wait at once."""


class ExpectedCall(Spec):
    """A tool call the run must make."""

    name: str
    """The tool's name (``server__tool`` for MCP tools)."""
    args: dict[str, Any] | None = None
    """Its arguments: the listed keys must match (others may be there), unless the list is
    ``tool_calls_exact``."""
    error: str | bool | None = None
    """The call failed: ``true``, or with an error containing this text (a rejected approval,
    a stub's error...). Without it, the call must have succeeded."""


class ExpectedOutput(Spec):
    """Conditions on the run's output text (the last agent's text)."""

    equals: str | None = None
    """The whole output."""
    contains: str | list[str] | None = None
    """Text (or texts) the output contains."""
    regex: str | None = None
    """A regular expression the output matches (anywhere, Python syntax)."""


class Expectations(Spec):
    """What must hold once the run has ended. Every field is optional."""

    route: list[Name] | None = None
    """The agents that ran, in order, exactly."""
    tool_calls: list[ExpectedCall] | None = None
    """Calls that must be made in this order (other calls may come between them); the
    listed arguments must match."""
    tool_calls_exact: list[ExpectedCall] | None = None
    """Exactly these calls, in this order, with exactly these arguments (where given)."""
    state: dict[str, Any] | None = None
    """State fields that must have these values (other fields may be there too)."""
    state_exact: dict[str, Any] | None = None
    """The whole final state."""
    output: str | ExpectedOutput | None = None
    """A text the output contains, or conditions on it."""
    stop_reason: str | None = None
    """Why the run stopped: ``router``, ``max_iter``, ``tokens``, ``cost``, ``time``,
    ``agent_calls:NAME``, ..."""
    iterations: int | None = Field(default=None, ge=0)
    """How many agent turns ran."""
    status: Literal["completed", "failed"] = "completed"
    """How the run ends: ``completed`` (default) or ``failed``."""
    error: str | None = None
    """For a failing run: a text its error contains."""


class TestCase(Spec):
    """One run of the network, and what must come out of it."""

    __test__ = False  # not a pytest test class

    description: str | None = None
    """What the case checks."""
    input: str = ""
    """The network input."""
    state: dict[str, Any] = {}
    """Initial state."""
    event: TestEvent | None = None
    """The event that starts the run (templates see it as ``event``)."""
    replies: dict[str, list[Reply]] | None = None
    """The model's replies per caller (an agent name, or ``router`` for the routing agent), in
    the order of its calls: the format of a replies file."""
    replay: str | None = None
    """A replies file to answer the model's calls from (relative to this file), instead of
    ``replies``."""
    tools: dict[str, Stub] = {}
    """Tools that return these results instead of running, by name (``server.tool`` or
    ``server__tool`` for MCP tools)."""
    events: list[TestEvent] = []
    """Events delivered, in order, each time the run waits (for a human, an approval)."""
    expect: Expectations = Expectations()
    """What must hold at the end."""


class TestFileSpec(Spec):
    """A network's test cases."""

    __test__ = False  # not a pytest test class

    network: str | None = None
    """The network file, relative to this file (default: this file's name without
    ``.test``: ``support.test.yaml`` tests ``support.yaml``)."""
    cases: Annotated[dict[str, TestCase], Field(min_length=1)]
    """Test cases by name."""
