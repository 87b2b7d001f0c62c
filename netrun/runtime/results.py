"""What a run produces: each agent's turn, the usage it adds up, the run's result, and
:class:`RunError` when the run cannot go on.

A turn's result is also what the next agents read (:func:`result_text`): the earlier turns
of the run are in every later agent's prompt, and in the thread for later runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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
        data = asdict(self)
        data["usage"]["tokens"] = self.usage.tokens
        return data


class RunError(NetrunError, phase="run"):
    """The run cannot go on (a model that fails for good, a template that cannot render)."""


def result_text(r: AgentResult) -> str:
    """An agent's turn as the next agents (and later runs of the thread) read it."""
    lines = [f"[{r.agent}] {r.text}" if r.text else f"[{r.agent}]"]
    for t in r.tool_calls:
        outcome = f"error: {t.error}" if t.error else json.dumps(t.result, default=str)[:2000]
        lines.append(f"called {t.name}({json.dumps(t.args, default=str)}) -> {outcome}")
    return "\n".join(lines)


__all__ = ["AgentResult", "RunError", "RunResult", "ToolRecord", "Usage", "result_text"]
