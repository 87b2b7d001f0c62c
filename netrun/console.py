"""Run progress in the terminal: what happens, as it happens, readable at a glance."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import click

from .runtime import events, step_ids


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Progress:
    """Prints run events; replayed ones (a resumed run catching up) are dimmed."""

    def __init__(self, out: TextIO | None = None, color: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.color = self.out.isatty() if color is None else color
        self.streaming = False
        self.pending_newline = False
        self.streamed = False
        """Whether the current agent's text was streamed (else it is printed when it ends)."""

    def _line(self, text: str, **style: Any) -> None:
        self._end_stream()
        click.echo(click.style(text, **style) if self.color else text, file=self.out, color=self.color)

    def _end_stream(self) -> None:
        if self.streaming:
            click.echo("", file=self.out)
            self.streaming = False

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        dim = {"dim": True} if data.get("replayed") else {}
        if kind == events.RUN_STARTED:
            self._line(f"▶ run {data['run_id']} · {data['network']} · {data['definition_hash']}", bold=True)
        elif kind == events.ROUTED:
            target = data["agent"] or "stop"
            self._line(f"→ {target}  ({data['how']})", fg="cyan", **dim)
        elif kind == events.AGENT_STARTED:
            self.streamed = False
            self._line(f"  {data['agent']} is working…", **dim)
        elif kind == events.TEXT_DELTA:
            if not self.streaming:
                click.echo("  │ ", file=self.out, nl=False)
                self.streaming = self.streamed = True
                self.pending_newline = False
            text = data["text"]
            if self.pending_newline:
                text = "\n" + text
            # A trailing newline is held back: it becomes a new "│" line only if more text comes.
            self.pending_newline = text.endswith("\n")
            click.echo(text.rstrip("\n").replace("\n", "\n  │ "), file=self.out, nl=False)
        elif kind == events.AGENT_FINISHED:
            if not self.streaming and data.get("text") and (data.get("replayed") or not self.streamed):
                self._line(f"  │ {_short(data['text'])}", **dim)
            self._end_stream()
        elif kind == events.TOOL_CALLED:
            where = step_ids.lifecycle_of(str(data.get("step", "")))  # a step of setup/before/after/finally
            label = f"{where} step: " if where else ""
            self._line(f"  ⚙ {label}{data['tool']}({_short(data['args'], 120)})", fg="magenta", **dim)
        elif kind == events.TOOL_RESULT:
            if data.get("error"):
                self._line(f"    ✗ {_short(data['error'])}", fg="red", **dim)
            else:
                self._line(f"    ← {_short(data['result'])}", **dim)
        elif kind == events.WAITING:
            match = f" where {data['match']} = {json.dumps(data['match_value'])}" if data.get("match") else ""
            self._line(f"  ⏸ {data['tool']} waits for event {data['event']}{match}", fg="yellow", **dim)
        elif kind == events.APPROVAL_REQUESTED:
            self._line(
                f"  ✋ {data['tool']} needs approval {data.get('approval_id', '')} (event {data['event']})", fg="yellow", **dim
            )
        elif kind == events.APPROVAL_RESOLVED:
            self._line(
                f"    {data['tool']}: {data.get('resolution')}" + (f" ({data['reason']})" if data.get("reason") else ""),
                fg="yellow",
                **dim,
            )
        elif kind == events.RUN_WAITING:
            self._line(f"⏸ run {data['run_id']} is waiting for {data['event']}", fg="yellow", bold=True)
            self._line(f"  answer with: netrun send {data['event']} --data '{{...}}' --run {data['run_id']}")
        elif kind == events.RUN_COMPLETED:
            r = data["result"]
            u = r["usage"]
            self._line(
                f"✓ done in {r['iterations']} turn{'s' * (r['iterations'] != 1)} · route: {' → '.join(r['route']) or '(none)'} · "
                f"{u['tokens']:,} tokens · ${u['cost']:.4f} · stop: {r['stop_reason']}",
                fg="green",
                bold=True,
            )
            if r["output"]:
                self._line(r["output"])
        elif kind == events.RUN_FAILED:
            self._line(f"✗ run {data['run_id']} failed: {data['error']}", fg="red", bold=True)
