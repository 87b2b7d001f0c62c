"""The run-event protocol: every event a run reports, by name, with the payload it carries.

A run reports its progress through one callback, ``emit(kind, payload)``: the network loop,
the tools and the engines call it, and its consumers are the terminal
(:mod:`netrun.console`), the Inngest engine (which keeps its journal's status and pending
approvals from them) and the server's streams (:mod:`netrun.serve.run_events`). Both the
terminal and the streams show them as AgentKit's streaming chunks: the mapping is
:mod:`netrun.runtime.agentkit_stream`. This module is the one place that names them; a
test runs real networks and checks that every event emitted is declared here and carries
exactly its payload's fields.

Every payload carries ``run_id`` and ``replayed`` (:class:`RunEvent`); ``replayed`` is true
for what a resumed run, or a later Inngest call, re-reads from its memoized steps instead
of doing again. The kinds, in the order a run reports them, with their other fields and,
for those reported once per run, the field that tells them apart:

- ``run.started``: network, input, definition_hash, thread_id, user (once)
- ``routed``: iteration, agent (None: stop), how (once per iteration)
- ``agent.started``: iteration, agent (once per iteration)
- ``text.delta``: caller, text (repeats)
- ``tool.called``: step, tool, args (once per step)
- ``waiting``: step, tool, event, match, match_value, args (once per step)
- ``approval.requested``: step, approval_id, tool, args, event, timeout (once per step)
- ``approval.resolved``: step, approval_id, tool, resolution, reason, by (once per step)
- ``run.waiting``: event, step_id (each time the local engine parks the run)
- ``tool.result``: step, tool, result, error, state (once per step)
- ``agent.finished``: iteration, agent, text, usage (once per iteration)
- ``run.completed``: result (final)
- ``run.failed``: error (final)
- ``run.cancelled``: error (final)

The once-only events are reported once per run, or once per value of the field named
(:data:`ONCE`, :func:`once_key`): on Inngest several calls of one run may each see the same
outcome, and a stream shows it once. A run's stream ends with one of :data:`FINAL`. ``text.delta`` is
sent only while someone watches the run (streaming costs the model call CPU), and
``agent.finished`` carries the whole text in any case.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict

RUN_STARTED: Final = "run.started"
ROUTED: Final = "routed"
AGENT_STARTED: Final = "agent.started"
TEXT_DELTA: Final = "text.delta"
TOOL_CALLED: Final = "tool.called"
WAITING: Final = "waiting"
APPROVAL_REQUESTED: Final = "approval.requested"
APPROVAL_RESOLVED: Final = "approval.resolved"
RUN_WAITING: Final = "run.waiting"
TOOL_RESULT: Final = "tool.result"
AGENT_FINISHED: Final = "agent.finished"
RUN_COMPLETED: Final = "run.completed"
RUN_FAILED: Final = "run.failed"
RUN_CANCELLED: Final = "run.cancelled"

EventKind = Literal[
    "run.started",
    "routed",
    "agent.started",
    "text.delta",
    "tool.called",
    "waiting",
    "approval.requested",
    "approval.resolved",
    "run.waiting",
    "tool.result",
    "agent.finished",
    "run.completed",
    "run.failed",
    "run.cancelled",
]
"""The name of an event (``kind`` of ``emit(kind, payload)``, ``type`` in a stream)."""


class RunEvent(TypedDict):
    """What every event carries."""

    run_id: str
    """The run that reports it (a child run, a network run as a tool, reports its own)."""
    replayed: bool
    """Re-read from a memoized step rather than done now (a resumed run catching up)."""


class RunStarted(RunEvent):
    """``run.started``: the engine began (or resumed) executing the run. Once per run."""

    network: str | None
    """The network's name (None only for a definition without one, which validate refuses)."""
    input: str
    """The run's input, as the trigger's input template rendered it."""
    definition_hash: str
    """The hash of the network definition the run is pinned to."""
    thread_id: str | None
    """The conversation the run belongs to (None: none); AgentKit's ``threadId``."""
    user: str | None
    """The user the run is for (None: not said); AgentKit's ``userId``."""


class Routed(RunEvent):
    """``routed``: the router chose the next agent, or to stop. Once per iteration."""

    iteration: int
    """The turn, from 0."""
    agent: str | None
    """The agent chosen; None when the router stops the run."""
    how: str
    """How it chose: the rule, the model, the default, or why it stopped."""


class AgentStarted(RunEvent):
    """``agent.started``: an agent's turn began. Once per iteration."""

    iteration: int
    """The turn, from 0."""
    agent: str
    """The agent whose turn it is."""


class TextDelta(RunEvent):
    """``text.delta``: a piece of the model's text as it streams. Repeats; never journaled
    past the run's event budget, nor replayed (``agent.finished`` has the whole text)."""

    caller: str
    """The agent (or the router's model) the text is from."""
    text: str
    """The piece of text, redacted."""


class ToolCalled(RunEvent):
    """``tool.called``: the model called a tool. Once per step."""

    step: str
    """The step id of the call (:mod:`netrun.runtime.step_ids`)."""
    tool: str
    """The tool's name, as the model sees it."""
    args: Any
    """The arguments the model gave (as shown: secrets redacted)."""


class Waiting(RunEvent):
    """``waiting``: a ``wait_for_event`` tool waits for its event. Once per step."""

    step: str
    """The step id of the wait."""
    tool: str
    """The wait tool's name."""
    event: str
    """The event name it waits for."""
    match: str | None
    """The field of that event that must equal ``match_value`` (None: no match)."""
    match_value: Any
    """The value the field must have (from the trigger event), None without ``match``."""
    args: Any
    """The tool call's arguments."""


class ApprovalRequested(RunEvent):
    """``approval.requested``: a tool with ``approval`` waits for a human. Once per step."""

    step: str
    """The step id of the tool call."""
    approval_id: str
    """The approval's id (``data.approval_id`` of the deciding event)."""
    tool: str
    """The tool that needs approval."""
    args: Any
    """The arguments the tool would run with."""
    event: str
    """The event that carries the decision (default ``netrun/approval``)."""
    timeout: str
    """How long the decision may take (a duration such as ``24h``)."""


class ApprovalResolved(RunEvent):
    """``approval.resolved``: the decision arrived, or the time ran out. Once per step."""

    step: str
    """The step id of the tool call."""
    approval_id: str
    """The approval's id."""
    tool: str
    """The tool that needed approval."""
    resolution: Literal["approved", "denied", "expired"]
    """What was decided (``expired``: no decision in time, which counts as a rejection)."""
    reason: Any
    """``data.reason`` of the deciding event, if it gave one."""
    by: Any
    """``data.by`` of the deciding event, if it gave one."""


class RunWaiting(RunEvent):
    """``run.waiting``: the local engine parked the run until an event answers its wait.
    Reported each time the run stops to wait (Inngest keeps waiting runs itself)."""

    event: str
    """The event it waits for."""
    step_id: str
    """The step id of the wait."""


class ToolResult(RunEvent):
    """``tool.result``: a tool call's outcome. Once per step."""

    step: str
    """The step id of the call."""
    tool: str
    """The tool's name."""
    result: Any
    """What the tool returned (None when it failed)."""
    error: str | None
    """Why it failed, as the model is told (None when it did not)."""
    state: dict[str, Any] | None
    """The run's state once the call's ``save:``/``state:`` writes were applied (None: the
    tool writes no state), so a stream shows state as it changes."""


class AgentFinished(RunEvent):
    """``agent.finished``: an agent's turn ended. Once per iteration."""

    iteration: int
    """The turn, from 0."""
    agent: str
    """The agent whose turn ended."""
    text: str
    """The whole text of the agent's last reply in the turn."""
    usage: dict[str, Any]
    """The turn's tokens: ``prompt_tokens``, ``completion_tokens``."""


class RunCompleted(RunEvent):
    """``run.completed``: the run ended with a result. Final."""

    result: dict[str, Any]
    """The run's result: output, state, route, iterations, usage, stop_reason, results."""


class RunFailed(RunEvent):
    """``run.failed``: the run ended with an error. Final."""

    error: str
    """Why, redacted."""


class RunCancelled(RunEvent):
    """``run.cancelled``: the run was cancelled before it ended. Final."""

    error: str
    """The reason given for cancelling."""


PAYLOADS: Mapping[str, type[RunEvent]] = {
    RUN_STARTED: RunStarted,
    ROUTED: Routed,
    AGENT_STARTED: AgentStarted,
    TEXT_DELTA: TextDelta,
    TOOL_CALLED: ToolCalled,
    WAITING: Waiting,
    APPROVAL_REQUESTED: ApprovalRequested,
    APPROVAL_RESOLVED: ApprovalResolved,
    RUN_WAITING: RunWaiting,
    TOOL_RESULT: ToolResult,
    AGENT_FINISHED: AgentFinished,
    RUN_COMPLETED: RunCompleted,
    RUN_FAILED: RunFailed,
    RUN_CANCELLED: RunCancelled,
}
"""Each kind's payload."""

FINAL: Final = (RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED)
"""The kinds that end a run's stream."""

WAITS: Final = (WAITING, APPROVAL_REQUESTED)
"""The kinds that mean the run now waits for an event (a wait tool's, or a decision)."""

ONCE: Mapping[str, str | None] = {
    RUN_STARTED: None,
    ROUTED: "iteration",
    AGENT_STARTED: "iteration",
    AGENT_FINISHED: "iteration",
    TOOL_CALLED: "step",
    TOOL_RESULT: "step",
    WAITING: "step",
    APPROVAL_REQUESTED: "step",
    APPROVAL_RESOLVED: "step",
}
"""The events reported once per run, told apart by this field (None: once per run)."""


def once_key(kind: str, data: Mapping[str, Any]) -> tuple[str, str] | None:
    """What tells this once-only event apart from the run's others (None: not once-only).

    The key is what the journal stores beside the event, so a process that reports more of
    a run's events (after a restart, on another replica) knows which it reported already."""
    if kind not in ONCE:
        return None
    field_name = ONCE[kind]
    return kind, json.dumps(data.get(field_name) if field_name else None, default=str)


__all__ = [
    "AGENT_FINISHED",
    "AGENT_STARTED",
    "APPROVAL_REQUESTED",
    "APPROVAL_RESOLVED",
    "FINAL",
    "ONCE",
    "PAYLOADS",
    "ROUTED",
    "RUN_CANCELLED",
    "RUN_COMPLETED",
    "RUN_FAILED",
    "RUN_STARTED",
    "RUN_WAITING",
    "TEXT_DELTA",
    "TOOL_CALLED",
    "TOOL_RESULT",
    "WAITING",
    "WAITS",
    "AgentFinished",
    "AgentStarted",
    "ApprovalRequested",
    "ApprovalResolved",
    "EventKind",
    "Routed",
    "RunCancelled",
    "RunCompleted",
    "RunEvent",
    "RunFailed",
    "RunStarted",
    "RunWaiting",
    "TextDelta",
    "ToolCalled",
    "ToolResult",
    "Waiting",
    "once_key",
]
