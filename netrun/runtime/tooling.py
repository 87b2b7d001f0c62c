"""What every tool implementation shares: the call context, the outcome, the protocol.

A tool call runs inside a durable step; the step's output is the JSON form of a
:class:`ToolOutcome`. State changes travel in ``state_patch`` and are applied by the loop
outside the step, so that a replay rebuilds the same state from the same outputs without
running the tool again (durability rule 2 in the design).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolContext:
    """What a tool may read while it runs."""

    run_id: str
    step_id: str
    """The deterministic id of the step this call runs in."""
    input: str
    state: Mapping[str, Any]
    """A snapshot of the network state when the call started (read-only)."""
    event: Mapping[str, Any]
    """The event that started the run (``{}`` for runs started from the CLI)."""
    environ: Mapping[str, str]
    """Where ``${ENV}`` references are resolved, at call time."""
    base_dir: Path
    """The directory of the network file (relative paths in the file are relative to it)."""

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and replays of this call: derived from run id and step id."""
        return hashlib.sha256(f"{self.run_id}/{self.step_id}".encode()).hexdigest()[:32]

    def variables(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The variables tool templates see (the scope ``netrun validate`` checks them against)."""
        return {"args": dict(args), "state": dict(self.state), "input": self.input, "event": dict(self.event), "run": {"id": self.run_id}}


@dataclass
class ToolOutcome:
    """The result of one tool call: what the model sees, and the state changes it makes.

    An error is a result too: it is shown to the model (which may retry or explain), and a
    tool never raises for a failure the model or the outside world caused.
    """

    result: Any = None
    error: str | None = None
    state_patch: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"result": self.result}
        if self.error is not None:
            out["error"] = self.error
        if self.state_patch:
            out["state_patch"] = self.state_patch
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolOutcome:
        return cls(result=data.get("result"), error=data.get("error"), state_patch=dict(data.get("state_patch") or {}))

    @classmethod
    def failure(cls, message: str) -> ToolOutcome:
        return cls(result=None, error=message)


class Tool(Protocol):
    """A tool as the model sees it and as the loop calls it."""

    name: str
    """The function name shown to the model: ``^[A-Za-z0-9_-]{1,64}$``."""
    description: str
    parameters: dict[str, Any]
    """A JSON Schema of ``type: object``."""

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        """Run the tool; never raise for a failure the model should hear about."""
        ...
