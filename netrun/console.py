"""Run progress in the terminal: what happens, as it happens, readable at a glance.

It reads the same chunks the server streams (AgentKit's protocol,
:mod:`netrun.runtime.agentkit_stream`): each event a run reports is mapped to its chunks and
each chunk is printed (or not: usage and part bookkeeping say nothing to a person).
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import click

from .runtime import events, step_ids
from .runtime.agentkit_stream import EXTRA_PREFIX, RunStream, step_of


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Progress:
    """Prints a run's chunks; those of replayed events (a resumed run catching up) are dimmed."""

    def __init__(self, out: TextIO | None = None, color: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.color = self.out.isatty() if color is None else color
        self.streaming = False
        self.pending_newline = False
        self.runs: dict[str, RunStream] = {}
        """The protocol's memory of each run shown (a network tool's child runs have their own)."""
        self.tools: dict[str, str] = {}
        """The tool of each pending approval (``hitl.resolved`` names only the request)."""

    def _line(self, text: str, **style: Any) -> None:
        self._end_stream()
        click.echo(click.style(text, **style) if self.color else text, file=self.out, color=self.color)

    def _end_stream(self) -> None:
        if self.streaming:
            click.echo("", file=self.out)
            self.streaming = False

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        run_id = str(data.get("run_id", ""))
        stream = self.runs.setdefault(run_id, RunStream(run_id))
        dim = {"dim": True} if data.get("replayed") else {}
        # Text that was not streamed arrives whole with the turn's end: shown on one line.
        whole = kind == events.AGENT_FINISHED
        for event, chunk in stream.pieces(kind, data):
            self._show(event, chunk, whole, dim)
        if kind in events.FINAL:
            self.runs.pop(run_id, None)

    def _show(self, event: str, d: dict[str, Any], whole: bool, dim: dict[str, Any]) -> None:
        meta = d.get("metadata") or {}
        if event == "run.started" and d.get("scope") == "network":
            self._line(f"▶ run {d['runId']} · {d['name']} · {meta.get('definitionHash')}", bold=True)
        elif event == "run.started":
            how = (meta.get("routing") or {}).get("how")
            self._line(f"→ {d['name']}" + (f"  ({how})" if how else ""), fg="cyan", **dim)
            self._line(f"  {d['name']} is working…", **dim)
        elif event == EXTRA_PREFIX + events.ROUTED:
            self._line(f"→ stop  ({d['how']})", fg="cyan", **dim)
        elif event == "text.delta" and whole:
            self._line(f"  │ {_short(d['delta'])}", **dim)
        elif event == "text.delta":
            self._delta(str(d["delta"]))
        elif event == "part.completed" and d.get("type") == "text":
            self._end_stream()
        elif event == "part.completed" and d.get("type") == "tool-call":
            where = step_ids.lifecycle_of(step_of(str(d["partId"])) or "")  # a step of setup/before/after/finally
            label = f"{where} step: " if where else ""
            self._line(f"  ⚙ {label}{d['metadata']['toolName']}({_short(d['finalContent'], 120)})", fg="magenta", **dim)
        elif event == "part.completed" and d.get("type") == "tool-output":
            outcome = d.get("finalContent") or {}
            if outcome.get("error") is not None:
                self._line(f"    ✗ {_short(outcome['error'])}", fg="red", **dim)
            else:
                self._line(f"    ← {_short(outcome.get('data'))}", **dim)
        elif event == EXTRA_PREFIX + events.WAITING:
            match = f" where {d['match']} = {json.dumps(d['match_value'])}" if d.get("match") else ""
            self._line(f"  ⏸ {d['tool']} waits for event {d['event']}{match}", fg="yellow", **dim)
        elif event == "hitl.requested":
            for call in d["toolCalls"]:
                self.tools[d["requestId"]] = call["toolName"]
                self._line(f"  ✋ {call['toolName']} needs approval {d['requestId']}", fg="yellow", **dim)
        elif event == "hitl.resolved":
            tool = self.tools.pop(d["requestId"], d["requestId"])
            self._line(f"    {tool}: {d['resolution']}" + (f" ({d['reason']})" if d.get("reason") else ""), fg="yellow", **dim)
        elif event == EXTRA_PREFIX + events.RUN_WAITING:
            self._line(f"⏸ run {d['run_id']} is waiting for {d['event']}", fg="yellow", bold=True)
            self._line(f"  answer with: netrun send {d['event']} --data '{{...}}' --run {d['run_id']}")
        elif event == "run.completed" and d.get("scope") == "network":
            self._completed(d.get("result") or {})
        elif event == "run.failed":
            self._line(f"✗ run {d['runId']} failed: {d['error']}", fg="red", bold=True)
        elif event == "run.interrupted":
            self._line(f"✗ run {d['runId']} cancelled: {meta.get('error')}", fg="red", bold=True)

    def _delta(self, text: str) -> None:
        if not self.streaming:
            click.echo("  │ ", file=self.out, nl=False)
            self.streaming = True
            self.pending_newline = False
        if self.pending_newline:
            text = "\n" + text
        # A trailing newline is held back: it becomes a new "│" line only if more text comes.
        self.pending_newline = text.endswith("\n")
        click.echo(text.rstrip("\n").replace("\n", "\n  │ "), file=self.out, nl=False)

    def _completed(self, r: dict[str, Any]) -> None:
        u = r.get("usage") or {}
        turns = r.get("iterations", 0)
        self._line(
            f"✓ done in {turns} turn{'s' * (turns != 1)} · route: {' → '.join(r.get('route') or []) or '(none)'} · "
            f"{u.get('tokens', 0):,} tokens · ${u.get('cost', 0.0):.4f} · stop: {r.get('stop_reason')}",
            fg="green",
            bold=True,
        )
        if r.get("output"):
            self._line(r["output"])
