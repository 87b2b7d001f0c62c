"""A run's progress, journaled and fanned out to whoever streams it (``GET /runs/{id}/events``).

The network loop reports progress through its ``emit`` callback. Replayed progress (what a
resumed run, or an Inngest call, re-reads from memoized steps) is dropped here, so that a
stream shows each thing once. Each event gets the next number of its run (``seq``, the SSE
``id:``) and is written to the journal (table ``run_events``) before live subscribers see
it, so a stream replays the run from the journal (after a restart too, and from any
``Last-Event-ID``) and then follows it live, with no gap and no repeat in between.

Bounds: a run's journaled events hold at most ``run_bytes`` (``NETRUN_EVENTS_MAX_BYTES``);
past it an event is written shrunk (long strings cut, ``"truncated": true``) and
``text.delta`` events are not written at all (``agent.finished`` carries the whole text).
``run.completed`` and ``run.failed`` are always written whole. ``text.delta`` events are
written in batches (with the run's next other event, or every ``DELTA_BATCH`` bytes), not
one write per chunk. In memory the bus holds no history: only each subscriber's queue of
events not yet sent (at most ``queue_bytes``; a subscriber that falls further behind
re-reads the journal) and the ``text.delta`` batches not yet written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..runtime.events import FINAL, TEXT_DELTA, once_key

if TYPE_CHECKING:
    from ..engines.local import Journal

log = logging.getLogger("netrun.serve")

RUN_BYTES = 4_000_000
"""Default budget of one run's journaled events (``NETRUN_EVENTS_MAX_BYTES``)."""

QUEUE_BYTES = 8_000_000
"""Events queued for one subscriber that has not read them yet, at most."""

DELTA_BATCH = 64_000
"""``text.delta`` bytes buffered before they are written."""

PREVIEW = 2_000
"""Characters kept of each long string of an event shrunk past the run's budget."""

KEEP_RUNS = 10_000
"""Unfinished runs whose counters stay in memory (others reload them from the journal)."""

Delivered = tuple[int | None, dict[str, Any]]
"""An event and its number (None for an end event made from the run's record)."""

__all__ = ["Delivered", "RunEvents", "shrink"]


def _size(event: dict[str, Any]) -> tuple[str, int]:
    text = json.dumps(event, default=str)
    return text, len(text.encode())


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > PREVIEW:
        return f"{value[:PREVIEW]}… [truncated: {len(value)} characters]"
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        kept = [_cut(v) for v in value[:20]]
        return kept + ([f"… [truncated: {len(value)} items]"] if len(value) > 20 else [])
    return value


def shrink(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its long strings and lists cut, marked ``"truncated": true``; when
    that is still large, only what identifies it (type, run, iteration or step, tool)."""
    small = {**_cut(event), "truncated": True}
    if _size(small)[1] > 4 * PREVIEW:
        small = {k: event[k] for k in ("type", "run_id", "iteration", "step", "agent", "tool", "approval_id") if k in event}
        small["truncated"] = True
    return small


@dataclass
class _Run:
    """What the bus knows of a run that emits: its next number, its journaled bytes, the
    once-only events it reported, and its ``text.delta`` rows not written yet."""

    next_seq: int
    stored: int
    seen: set[tuple[str, str]]
    pending: list[tuple[str, int, str, str | None, str, int]] = field(default_factory=list)
    pending_bytes: int = 0


@dataclass(eq=False)
class _Listener:
    queue: deque[tuple[int, dict[str, Any], int]] = field(default_factory=deque)
    """Events not sent yet: number, event, size in bytes."""
    bytes: int = 0
    lagged: bool = False
    """Its queue overflowed and was dropped: the stream re-reads the journal."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class RunEvents:
    def __init__(self, journal: Journal | None = None, *, run_bytes: int = RUN_BYTES, queue_bytes: int = QUEUE_BYTES) -> None:
        self.journal = journal
        self.run_bytes = run_bytes
        self.queue_bytes = queue_bytes
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._listeners: dict[str, set[_Listener]] = {}

    # -- emitting ----------------------------------------------------------------------------
    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is not None:
            self._runs.move_to_end(run_id)
            return run
        last, stored, seen = 0, 0, set[tuple[str, str]]()
        if self.journal is not None:
            try:
                last, stored, seen = self.journal.event_marks(run_id)
            except sqlite3.Error as exc:  # numbered from 1 again; the journal keeps the first of each number
                log.warning("could not read the journaled events of run %s: %s", run_id, exc)
        run = self._runs[run_id] = _Run(last + 1, stored, seen)
        while len(self._runs) > KEEP_RUNS:
            _, state = self._runs.popitem(last=False)
            self._write(state, ())
        return run

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        if data.get("replayed"):
            return
        run_id = str(data.get("run_id", ""))
        run = self._run(run_id)
        once = once_key(kind, data)  # on Inngest, a call may report what an earlier call reported
        key = once[1] if once else None
        if once is not None:
            if once in run.seen:
                return
            run.seen.add(once)
        event = {"type": kind, **{k: v for k, v in data.items() if k != "replayed"}}
        seq = run.next_seq
        run.next_seq += 1
        text, size = _size(event)
        if kind == TEXT_DELTA:
            if run.stored + run.pending_bytes + size <= self.run_bytes:  # past the budget: live only
                run.pending.append((run_id, seq, kind, None, text, size))
                run.pending_bytes += size
                if run.pending_bytes >= DELTA_BATCH:
                    self._write(run, ())
        else:
            stored_text, stored_size = text, size
            if kind not in FINAL and run.stored + run.pending_bytes + size > self.run_bytes:
                stored_text, stored_size = _size(shrink(event))
            self._write(run, [(run_id, seq, kind, key, stored_text, stored_size)])
        for listener in self._listeners.get(run_id, ()):
            if listener.bytes + size > self.queue_bytes:  # a slow reader: it catches up from the journal
                listener.queue.clear()
                listener.bytes = 0
                listener.lagged = True
            else:
                listener.queue.append((seq, event, size))
                listener.bytes += size
            listener.wake.set()
        if kind in FINAL:
            self._runs.pop(run_id, None)

    def _write(self, run: _Run, rows: Any) -> None:
        """Write the run's buffered ``text.delta`` rows and ``rows``, in one transaction."""
        batch = [*run.pending, *rows]
        run.stored += run.pending_bytes + sum(r[5] for r in rows)
        run.pending, run.pending_bytes = [], 0
        if not batch or self.journal is None:
            return
        try:
            self.journal.add_events(batch)
        except sqlite3.Error as exc:  # the stream loses these events; the run goes on
            log.warning("could not journal %d event(s) of run %s: %s", len(batch), batch[0][0], exc)

    def flush(self, run_id: str | None = None) -> None:
        """Write the buffered ``text.delta`` events (of one run, or of all)."""
        for rid in [run_id] if run_id is not None else list(self._runs):
            run = self._runs.get(rid)
            if run is not None and run.pending:
                self._write(run, ())

    # -- reading ------------------------------------------------------------------------------
    def watched(self, run_id: str) -> bool:
        """Whether a client streams this run now. The model's text is streamed (``text.delta``)
        only then: streaming costs litellm several times the CPU of a plain call, and the
        whole text reaches every stream anyway in ``agent.finished``."""
        return bool(self._listeners.get(run_id))

    def held_bytes(self) -> int:
        """The event bytes this bus holds in memory (queued for subscribers, or not yet written)."""
        return sum(r.pending_bytes for r in self._runs.values()) + sum(
            listener.bytes for listeners in self._listeners.values() for listener in listeners
        )

    def history(self, run_id: str, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """The run's journaled events numbered above ``after``, in order."""
        if self.journal is None:
            return []
        self.flush(run_id)
        return list(self.journal.events(run_id, after))

    async def stream(self, run_id: str, final: dict[str, Any] | None = None, after: int = 0) -> AsyncIterator[Delivered]:
        """The run's events numbered above ``after`` (from the journal), then live ones until
        it completes or fails.

        ``final`` is the end event made from the run's record, for a finished run whose
        events are not in the journal (it ended before the journal kept them)."""
        listener = _Listener()
        self._listeners.setdefault(run_id, set()).add(listener)
        last = after
        try:
            first = True
            while True:
                # Subscribed before reading: what is emitted from here on is queued too, and
                # the numbers tell apart what the journal already gave.
                listener.queue.clear()
                listener.bytes, listener.lagged = 0, False
                for seq, event in self.history(run_id, last):
                    last = seq
                    yield seq, event
                    if event["type"] in FINAL:
                        return
                if first and final is not None:  # the run has ended: its end event was sent now or before
                    if self.journal is None or self.journal.last_event(run_id, FINAL) is None:
                        yield None, final  # (it ended before its events were journaled)
                    return
                first = False
                while not listener.lagged:
                    while listener.queue and not listener.lagged:
                        seq, event, size = listener.queue.popleft()
                        listener.bytes -= size
                        if seq <= last:
                            continue
                        last = seq
                        yield seq, event
                        if event["type"] in FINAL:
                            return
                    if listener.lagged:
                        break
                    listener.wake.clear()
                    await listener.wake.wait()
        finally:
            listeners = self._listeners.get(run_id)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[run_id]
