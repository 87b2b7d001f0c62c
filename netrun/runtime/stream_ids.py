"""The ids of AgentKit's streaming protocol for a netrun run: its messages, agent runs and
parts (:mod:`netrun.runtime.agentkit_stream`).

They are derived from the run id, the turn and the step id only, never random: a resumed
run, or a second Inngest call of the same run, names everything the same, and a client's
``partId`` (what use-agent approves a tool call by) leads back to the step (:func:`step_of`).
"""

from __future__ import annotations

import re
import uuid

NAMESPACE = uuid.UUID("6f1c0d1e-2b9a-5c43-9e57-0d6a4c1f7e21")
"""The uuid5 namespace of netrun's message and agent run ids (fixed: ids must not change)."""

_TURN_STEP = re.compile(r"^turn\.(\d+)\.")


def message_id(run_id: str, iteration: int) -> str:
    """The message of turn ``iteration`` (AgentKit's agent ``messageId``, a UUID)."""
    return str(uuid.uuid5(NAMESPACE, f"{run_id}/{iteration}"))


def agent_run_id(run_id: str, iteration: int) -> str:
    """The agent run of turn ``iteration`` (AgentKit gives each agent call its own run id)."""
    return str(uuid.uuid5(NAMESPACE, f"{run_id}/{iteration}/agent"))


def text_part(run_id: str, iteration: int) -> str:
    """The text part of turn ``iteration`` (one inference per turn: one text part)."""
    return f"{run_id}:turn.{iteration}:text"


def call_part(run_id: str, step: str) -> str:
    """The tool-call part of the tool call made in step ``step``."""
    return f"{run_id}:{step}:call"


def output_part(run_id: str, step: str) -> str:
    """The tool-output part of the tool call made in step ``step``."""
    return f"{run_id}:{step}:output"


def step_of(part_id: str) -> str | None:
    """The step id a tool part is named after (None for a text part or a foreign id)."""
    _, _, rest = part_id.partition(":")
    step, _, kind = rest.rpartition(":")
    return step if kind in ("call", "output") and step else None


def iteration_of(step: str) -> int | None:
    """The turn a step belongs to (None for a setup or finally step)."""
    found = _TURN_STEP.match(step)
    return int(found.group(1)) if found else None


__all__ = ["NAMESPACE", "agent_run_id", "call_part", "iteration_of", "message_id", "output_part", "step_of", "text_part"]
