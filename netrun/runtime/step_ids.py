"""Step ids: every id a run's steps are recorded under, built and read back here only.

A step's id is its identity in the journal (and, hashed, on Inngest): a replay finds a
step's recorded outcome by building the same id again, so the ids must not change between
executions, and code that reads them (which model calls a run made, which call an approval
answers, where a child run sits in its parent) must agree with the code that builds them.
Both live in this module.

The ids of one run::

    netrun.definition                 Inngest only: the definition the run is pinned to
    thread.load, thread.input         with history: the thread's messages, this run's input
    setup.I.TOOL                      the I-th step of ``setup:`` (before the router first runs)
    route.N[.K]                       LLM routing before turn N (K: the K-th retry, K >= 1)
    turn.N.AGENT.infer                turn N's inference
    turn.N.AGENT.tool.I.TOOL          the I-th tool call the inference asked for
    turn.N.AGENT.tool.I.TOOL.approval the human's decision on that call
    turn.N.AGENT.tool.I.TOOL.started  that call began (local engine; tools run at most once: durability rule 6)
    turn.N.AGENT.before.I.TOOL        the I-th step of the agent's ``before:`` in turn N
    turn.N.AGENT.thread               with history: the turn's reply appended to the thread
    turn.N.AGENT.after.I.TOOL         the I-th step of the agent's ``after:`` in turn N
    finally.I.TOOL                    the I-th step of ``finally:`` (once the run has ended)

Ids derived from them: a network used as a tool runs as the child run ``RUN.STEP`` (its
call's step id under the parent's run id); an event a run sends has the id ``RUN:STEP``;
the messages a run appends to its thread have the ids ``RUN:input``, ``RUN:turn.N.AGENT``
(a reply) and ``RUN:turn.N.AGENT.tool.I`` (the result of its I-th tool call).
Agent and tool names hold no dots (spec/base.py NAME_RE, tools/naming.py), which is what
lets the parsers below split on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFINITION = "netrun.definition"
"""The first step of a run on Inngest: the definition and input it starts on."""
THREAD_LOAD = "thread.load"
"""The thread's earlier messages (those some agent's window shows)."""
THREAD_INPUT = "thread.input"
"""This run's input appended to the thread."""

_APPROVAL = ".approval"
_INFER = re.compile(r"^turn\.\d+\.(.+)\.infer$")
_ROUTE = re.compile(r"^route\.\d+(\.\d+)?$")
_TOOL = ".tool."


def route(n: int, attempt: int = 0) -> str:
    """The router's inference before turn ``n``; ``attempt`` counts its retries (a model
    that named no agent of the network is asked again)."""
    return f"route.{n}" + (f".{attempt}" if attempt else "")


@dataclass(frozen=True)
class Turn:
    """The steps of turn ``n``, taken by ``agent``."""

    n: int
    agent: str

    @property
    def prefix(self) -> str:
        return f"turn.{self.n}.{self.agent}"

    @property
    def infer(self) -> str:
        return f"{self.prefix}.infer"

    def tool(self, index: int, name: str) -> str:
        """The ``index``-th tool call of the turn, to the tool ``name`` (as the model named it)."""
        return f"{self.prefix}{_TOOL}{index}.{name}"

    @property
    def thread(self) -> str:
        return f"{self.prefix}.thread"

    def before(self, index: int, tool: str) -> str:
        """The ``index``-th step of the agent's ``before:``, calling ``tool``."""
        return f"{self.prefix}.before.{index}.{tool}"

    def after(self, index: int, tool: str) -> str:
        """The ``index``-th step of the agent's ``after:``, calling ``tool``."""
        return f"{self.prefix}.after.{index}.{tool}"


def setup(index: int, tool: str) -> str:
    """The ``index``-th step of the network's ``setup:``, calling ``tool``."""
    return f"setup.{index}.{tool}"


def finally_(index: int, tool: str) -> str:
    """The ``index``-th step of the network's ``finally:``, calling ``tool``."""
    return f"finally.{index}.{tool}"


_LIFECYCLE = re.compile(r"^(?:(setup|finally)\.\d+\.[^.]+|turn\.\d+\.[^.]+\.(before|after)\.\d+\.[^.]+)$")


def lifecycle_of(step_id: str) -> str | None:
    """``setup``, ``before``, ``after`` or ``finally`` for a lifecycle step's id; None for
    any other step (a model's tool call, an inference)."""
    found = _LIFECYCLE.match(step_id)
    return (found.group(1) or found.group(2)) if found else None


def inference_of(tool_step: str) -> str:
    """``turn.3.a.tool.0.x`` -> ``turn.3.a.infer``: the inference that asked for the call."""
    return tool_step.split(_TOOL, 1)[0] + ".infer"


def model_caller(step_id: str) -> str | None:
    """Who made the model call recorded as ``step_id``: the agent, ``router``, or None for
    a step that is no model call."""
    found = _INFER.match(step_id)
    if found:
        return found.group(1)
    return "router" if _ROUTE.match(step_id) else None


def approval(call_step: str) -> str:
    """The step that records the decision on the tool call ``call_step``."""
    return call_step + _APPROVAL


def approved_call(step_id: str) -> str | None:
    """The tool call whose decision ``step_id`` records; None if it records no decision."""
    return step_id.removesuffix(_APPROVAL) if step_id.endswith(_APPROVAL) else None


def started(call_step: str) -> str:
    """The step that records that the tool call ``call_step`` began (durability rule 6)."""
    return call_step + ".started"


def child_run(run_id: str, step_id: str) -> str:
    """The id of the child run the call ``step_id`` of run ``run_id`` starts."""
    return f"{run_id}.{step_id}"


def child_runs_prefix(run_id: str) -> str:
    """What the ids of ``run_id``'s child runs (and theirs) start with."""
    return f"{run_id}."


def child_step(parent_id: str, child_id: str) -> str:
    """The parent's step a child run was started by (the inverse of :func:`child_run`)."""
    prefix = child_runs_prefix(parent_id)
    if not child_id.startswith(prefix):
        raise ValueError(f"run {child_id} is not a child run of {parent_id}")
    return child_id[len(prefix) :]


def sent_event(run_id: str, step_id: str) -> str:
    """The id of the event the step sends: the same on every replay, so the event goes out once."""
    return f"{run_id}:{step_id}"


def input_message(run_id: str) -> str:
    """The id of the run's input in its thread (stored once, whatever replays)."""
    return f"{run_id}:input"


def tool_message(reply_id: str, index: int) -> str:
    """The id of the ``index``-th tool message after the reply ``reply_id``: derived from it,
    so a retried or replayed append stores it once too."""
    return f"{reply_id}.tool.{index}"


def reply_message(run_id: str, turn: Turn) -> str:
    """The id of the turn's reply in the run's thread."""
    return f"{run_id}:{turn.prefix}"


__all__ = [
    "DEFINITION",
    "THREAD_INPUT",
    "THREAD_LOAD",
    "Turn",
    "approval",
    "approved_call",
    "child_run",
    "child_runs_prefix",
    "child_step",
    "finally_",
    "inference_of",
    "input_message",
    "lifecycle_of",
    "model_caller",
    "reply_message",
    "route",
    "sent_event",
    "setup",
    "started",
    "tool_message",
]
