"""What the loop needs from a model: one completion per call, as a JSON-able record.

A completion is the output of an inference step. It carries everything the loop derives
from the call (text, tool calls, usage, cost, duration), so a replay from the journal
takes the same decisions without calling the model again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import NetrunError


@dataclass(frozen=True)
class ToolRequest:
    """A tool call the model asked for."""

    id: str
    name: str
    arguments: str
    """The arguments as the model wrote them: JSON text, possibly malformed."""


@dataclass
class Completion:
    text: str = ""
    tool_calls: list[ToolRequest] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0
    """How long the call took (counts towards the run's time limit, deterministically)."""
    model: str = ""
    finish_reason: str = ""
    """Why the model stopped, as the provider said (``stop``, ``tool_calls``, ``length`` ...);
    "" when it did not say (a scripted reply, a journal of an earlier version)."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tool_calls": [{"id": t.id, "name": t.name, "arguments": t.arguments} for t in self.tool_calls],
            "usage": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "cost": self.cost,
            "seconds": round(self.seconds, 4),
            "model": self.model,
            # only when known: a journal without it (an earlier version's) reads the same
            **({"finish_reason": self.finish_reason} if self.finish_reason else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        usage = data.get("usage") or {}
        return cls(
            text=data.get("text") or "",
            tool_calls=[ToolRequest(t["id"], t["name"], t["arguments"]) for t in data.get("tool_calls") or []],
            prompt_tokens=int(usage.get("prompt", 0)),
            completion_tokens=int(usage.get("completion", 0)),
            cost=float(data.get("cost") or 0.0),
            seconds=float(data.get("seconds") or 0.0),
            model=data.get("model") or "",
            finish_reason=str(data.get("finish_reason") or ""),
        )


@dataclass(frozen=True)
class Request:
    """One inference call."""

    caller: str
    """The agent name, or ``router`` for the routing agent."""
    turn: int
    """How many calls this caller made before in the run (scripted replies are indexed by it)."""
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    """OpenAI-style function tools."""
    tool_choice: str | dict[str, Any] | None = None
    timeout: float | None = None
    """Seconds the call may take (an agent's ``limits.time``), else the model's own timeout."""


class ModelError(NetrunError, phase="run"):
    """A model call failed. ``retriable`` says whether trying again may help; ``retry_after``
    is how many seconds the provider asked to wait first (a 429's ``Retry-After``), if it said.

    The engines read both: the local engine waits ``retry_after`` (up to its cap) before the
    step's next attempt, and Inngest is told to (``inngest.RetryAfterError``); a
    non-retriable error fails the step at once.
    """

    def __init__(self, message: str, *, retriable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


class ModelClient(Protocol):
    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        """Make the call; stream text to ``on_text`` as it arrives when given."""
        ...
