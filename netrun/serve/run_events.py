"""A run's progress, fanned out to whoever streams it (``GET /runs/{id}/events``).

The network loop reports progress through its ``emit`` callback. Replayed progress (what a
resumed run, or an Inngest call, re-reads from memoized steps) is dropped here, so that a
stream shows each thing once. Each run keeps its events in memory until it ends and for a
while after, so a client that connects late still sees the run from its start.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

FINAL = ("run.completed", "run.failed")

_ONCE: dict[str, str | None] = {
    "run.started": None, "routed": "iteration", "agent.started": "iteration", "agent.finished": "iteration",
    "tool.called": "step", "tool.result": "step", "waiting": "step", "approval.requested": "step",
    "approval.resolved": "step",
}
"""Events reported once per run, told apart by this field."""

KEEP_FINISHED = 1000
"""Finished runs whose events stay in memory (the journal keeps their result for good)."""


class RunEvents:
    def __init__(self) -> None:
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._listeners: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        """Finished runs, oldest first (their events are dropped beyond KEEP_FINISHED)."""
        self._seen: dict[str, set[tuple[str, Any]]] = {}

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        if data.get("replayed"):
            return
        run_id = str(data.get("run_id", ""))
        if kind in _ONCE:  # on Inngest, a call may report what an earlier call reported
            key = (kind, data.get(_ONCE[kind]) if _ONCE[kind] else None)
            seen = self._seen.setdefault(run_id, set())
            if key in seen:
                return
            seen.add(key)
        event = {"type": kind, **{k: v for k, v in data.items() if k != "replayed"}}
        self._history.setdefault(run_id, []).append(event)
        for queue in self._listeners.get(run_id, ()):
            queue.put_nowait(event)
        if kind in FINAL:
            self._finished[run_id] = None
            while len(self._finished) > KEEP_FINISHED:
                old, _ = self._finished.popitem(last=False)
                self._history.pop(old, None)
                self._seen.pop(old, None)

    def watched(self, run_id: str) -> bool:
        """Whether a client streams this run now. The model's text is streamed (``text.delta``)
        only then: streaming costs litellm several times the CPU of a plain call, and the
        whole text reaches every stream anyway in ``agent.finished``."""
        return bool(self._listeners.get(run_id))

    def history(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._history.get(run_id, ()))

    async def stream(self, run_id: str, final: dict[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        """The run's events so far, then live ones until it completes or fails.

        ``final`` is the journal's end event for a run that finished before this server
        started (its events are gone from memory)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._listeners.setdefault(run_id, set()).add(queue)
        try:
            seen = self.history(run_id)
            if not seen and final is not None:
                seen = [final]
            for event in seen:
                yield event
                if event["type"] in FINAL:
                    return
            while True:
                event = await queue.get()
                yield event
                if event["type"] in FINAL:
                    return
        finally:
            listeners = self._listeners.get(run_id)
            if listeners is not None:
                listeners.discard(queue)
                if not listeners:
                    del self._listeners[run_id]
