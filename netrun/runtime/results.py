"""What a run produces: each agent's turn, the usage it adds up, the run's result, and
:class:`RunError` when the run cannot go on.

A turn's result is also what the next agents read (:func:`turn_messages`): the earlier turns
of the run are in every later agent's prompt, and in the thread for later runs, as an
assistant message with its tool calls and one ``tool`` message per call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import NetrunError
from .model import Completion


@dataclass
class ToolRecord:
    id: str
    name: str
    args: Any
    result: Any = None
    error: str | None = None


@dataclass
class AgentResult:
    agent: str
    text: str
    tool_calls: list[ToolRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The turn as templates (``results``) and the run's result see it. Built by hand:
        ``dataclasses.asdict`` deep-copies every argument and result, which cost a run of
        five turns more than its journal did; the values are JSON that nothing changes."""
        return {
            "agent": self.agent,
            "text": self.text,
            "tool_calls": [
                {"id": t.id, "name": t.name, "args": t.args, "result": t.result, "error": t.error} for t in self.tool_calls
            ],
        }


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, c: Completion) -> None:
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        self.cost += c.cost
        self.seconds += c.seconds


@dataclass
class RunResult:
    output: str
    state: dict[str, Any]
    route: list[str]
    usage: Usage
    stop_reason: str
    iterations: int
    results: list[AgentResult]
    thread_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        u = self.usage
        return {
            "output": self.output,
            "state": dict(self.state),
            "route": list(self.route),
            "usage": {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "cost": u.cost,
                "seconds": u.seconds,
                "tokens": u.tokens,
            },
            "stop_reason": self.stop_reason,
            "iterations": self.iterations,
            "results": [r.to_json() for r in self.results],
            "thread_id": self.thread_id,
        }


def outcome(result: RunResult | None, error: str | None = None) -> dict[str, Any]:
    """How a run ended, as ``finally:`` steps and ``send:`` events read it (``outcome``):
    completed with ``result``, or failed with the (redacted) ``error``."""
    if result is None:
        return {"status": "failed", "stop": None, "output": None, "error": error}
    return {"status": "completed", "stop": result.stop_reason, "output": result.output, "error": None}


class RunError(NetrunError, phase="run"):
    """The run cannot go on (a model that fails for good, a template that cannot render)."""


TOOL_RESULT_CHARS = 2000
"""How much of a tool's result (as JSON) later prompts show: every later inference of the run,
and of the thread's later runs, is sent it again (a 4 MB HTTP body would be sent every time)."""


def tool_content(t: ToolRecord) -> str:
    """What a tool message says: the result as JSON text (cut at :data:`TOOL_RESULT_CHARS`), or the error."""
    if t.error:
        return f"error: {t.error}"
    text = json.dumps(t.result, default=str)
    return text if len(text) <= TOOL_RESULT_CHARS else text[:TOOL_RESULT_CHARS] + f"... [cut: {len(text):,} characters]"


def sent_arguments(raw: str) -> str:
    """A tool call's arguments as the conversation sends them back: as the model wrote them
    when they are a JSON object, else ``{}`` (the call's result says what was wrong): litellm
    parses them for other providers and would fail every later call on the model's typo."""
    try:
        return raw if isinstance(json.loads(raw), dict) else "{}"
    except ValueError:
        return "{}"


def turn_messages(r: AgentResult, arguments: list[str]) -> list[dict[str, Any]]:
    """An agent's turn as the next agents (and later runs of the thread) read it: the
    assistant message (``content`` null when the model wrote no text) with a tool call per
    call the model asked for (``arguments``: as sent back, one per call), then one ``tool`` message
    per call, whatever its outcome (a refused or unknown call says why). ``agent`` is
    netrun's key beside OpenAI's (:func:`netrun.history.base.openai_message` drops it)."""
    # OpenAI takes a null content only beside tool calls: a turn without either says "".
    assistant: dict[str, Any] = {"role": "assistant", "content": r.text or (None if r.tool_calls else ""), "agent": r.agent}
    if r.tool_calls:
        assistant["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": a}}
            for t, a in zip(r.tool_calls, arguments, strict=True)
        ]
    return [assistant] + [
        {"role": "tool", "tool_call_id": t.id, "content": tool_content(t), "agent": r.agent} for t in r.tool_calls
    ]


__all__ = [
    "TOOL_RESULT_CHARS",
    "AgentResult",
    "RunError",
    "RunResult",
    "ToolRecord",
    "Usage",
    "outcome",
    "sent_arguments",
    "tool_content",
    "turn_messages",
]
