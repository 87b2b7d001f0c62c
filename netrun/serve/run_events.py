"""The runs' progress as AgentKit's streaming chunks, journaled and fanned out to whoever
streams a run (``GET /runs/{id}/events``), a thread or a user (``GET /threads/{id}/events``,
``GET /users/{user}/events``).

The network loop reports progress through its ``emit`` callback; each event becomes one or
more chunks (:mod:`netrun.runtime.agentkit_stream`, the protocol). Replayed progress (what a
resumed run, or an Inngest call, re-reads from memoized steps) is dropped here, so that a
stream shows each thing once. Each chunk gets the next number of its run (``seq``: its
``sequenceNumber`` and the run stream's SSE ``id:``) and is written to the journal (table
``run_events``, one row a chunk) before live subscribers see it, so a stream replays the
run from the journal (after a restart too, and from any ``Last-Event-ID``) and then follows
it live, with no gap and no repeat in between. Thread and user streams number their
chunks by the journal's rowid instead (monotonic across runs: the order chunks were
written); a chunk that is not journaled (a ``text.delta`` past the run's budget) goes out
to them without an ``id:``. What the mapping knows of a run (its thread and user, the parts
open) is rebuilt from the journal when this bus does not hold it (after a restart).

Bounds: a run's journaled chunks hold at most ``run_bytes`` (``NETRUN_EVENTS_MAX_BYTES``);
past it a chunk is written shrunk (long strings cut, ``data.truncated: true``) and
``text.delta`` chunks are not written at all (``part.completed`` carries the whole text).
The chunks of ``run.completed`` and ``run.failed`` are always written whole. ``text.delta``
chunks are written in batches (with the run's next other chunk, or every ``DELTA_BATCH``
bytes; at once while a thread or user stream watches the run, which needs their rowids),
not one write per chunk. In memory the bus holds no history: only each subscriber's queue
of chunks not yet sent (at most ``queue_bytes``; a subscriber that falls further behind
re-reads the journal) and the chunks not yet written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ..runtime.agentkit_stream import STREAM_ENDED, Chunk, RunStream, frame
from ..runtime.events import FINAL, RUN_STARTED, once_key

if TYPE_CHECKING:
    from ..engines.local import Journal

log = logging.getLogger("netrun.serve")

RUN_BYTES = 4_000_000
"""Default budget of one run's journaled chunks (``NETRUN_EVENTS_MAX_BYTES``)."""

QUEUE_BYTES = 8_000_000
"""Chunks queued for one subscriber that has not read them yet, at most."""

DELTA_BATCH = 64_000
"""``text.delta`` bytes buffered before they are written."""

PREVIEW = 2_000
"""Characters kept of each long string of a chunk shrunk past the run's budget."""

KEEP_RUNS = 10_000
"""Unfinished runs whose counters stay in memory (others reload them from the journal)."""

SCOPE_PAGE = 1000
"""Journaled chunks a thread or user stream reads at a time."""

Scope = Literal["run", "thread", "user"]
"""What a stream follows: one run, every run of a thread, every run of a user."""


class Delivered(NamedTuple):
    """A chunk a stream sends."""

    cursor: int | None
    """Its number in a run stream, its journal rowid in a thread or user stream (None: not
    journaled, or an end made from the run's record)."""
    chunk: Chunk
    text: str | None = None
    """The chunk as JSON, when the bus has it already (made once for every subscriber)."""
    more: bool = False
    """More chunks are queued for this subscriber already: a server may send them together."""


_IDS = ("runId", "parentRunId", "scope", "name", "messageId", "partId", "requestId", "type", "threadId", "userId")

__all__ = ["Delivered", "RunEvents", "Scope", "shrink"]


def _size(chunk: Chunk) -> tuple[str, int]:
    text = json.dumps(chunk, default=str)
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


def shrink(chunk: Chunk) -> Chunk:
    """The chunk with the long strings and lists of its data cut, marked ``data.truncated:
    true``; when that is still large, only what identifies it (its ids, scope, name, type)."""
    data = chunk.get("data") or {}
    small = {**chunk, "data": {**_cut(data), "truncated": True}}
    if _size(small)[1] > 4 * PREVIEW:
        small = {**chunk, "data": {**{k: data[k] for k in _IDS if k in data}, "truncated": True}}
    return small


Row = tuple[str, int, str, str | None, str, int]
"""A journal row: run id, seq, netrun kind, once-key, chunk JSON, bytes."""


@dataclass
class _Run:
    """What the bus knows of a run that emits: its next number, its journaled bytes, the
    once-only events it reported, the protocol's memory of it and its rows not written yet."""

    next_seq: int
    stored: int
    seen: set[tuple[str, str]]
    stream: RunStream
    pending: list[Row] = field(default_factory=list)
    pending_bytes: int = 0


@dataclass(eq=False)
class _Listener:
    queue: deque[tuple[int | None, Chunk, str, int]] = field(default_factory=deque)
    """Chunks not sent yet: cursor, chunk, its JSON, its size in bytes."""
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
        self._listeners: dict[tuple[Scope, str], set[_Listener]] = {}

    # -- emitting ----------------------------------------------------------------------------
    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is not None:
            self._runs.move_to_end(run_id)
            return run
        last, stored, seen = 0, 0, set[tuple[str, str]]()
        stream = RunStream(run_id)
        if self.journal is not None:
            try:
                last, stored, seen = self.journal.event_marks(run_id)
                if last:  # a run this bus did not see start (a restart, another replica)
                    known = self.journal.stream_of(run_id)
                    if known is not None:
                        stream.network, stream.thread_id, stream.user = known
                    stream.restore(self.journal.stream_marks(run_id))
            except sqlite3.Error as exc:  # numbered from 1 again; the journal keeps the first of each number
                log.warning("could not read the journaled events of run %s: %s", run_id, exc)
        run = self._runs[run_id] = _Run(last + 1, stored, seen, stream)
        while len(self._runs) > KEEP_RUNS:
            _, state = self._runs.popitem(last=False)
            self._write(state)
        return run

    def _scoped(self, run: _Run) -> list[_Listener]:
        """The thread and user streams that follow this run now."""
        found: list[_Listener] = []
        if run.stream.thread_id:
            found += self._listeners.get(("thread", run.stream.thread_id), ())
        if run.stream.user:
            found += self._listeners.get(("user", run.stream.user), ())
        return found

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
        pieces = run.stream.pieces(kind, data)
        if kind == RUN_STARTED and self.journal is not None:
            try:
                self.journal.add_stream(run_id, run.stream.network, run.stream.thread_id, run.stream.user)
            except sqlite3.Error as exc:
                log.warning("could not record the stream of run %s: %s", run_id, exc)
        now = int(time.time() * 1000)
        chunks: list[tuple[int, Chunk, str, int]] = []
        whole = False
        for i, (event, body) in enumerate(pieces):
            seq = run.next_seq
            run.next_seq += 1
            chunk = frame(event, body, seq, now)
            text, size = _size(chunk)
            chunks.append((seq, chunk, text, size))
            within = run.stored + run.pending_bytes + size <= self.run_bytes
            if event == "text.delta":
                if not within:  # past the budget: live only
                    continue
            else:
                whole = True
                if kind not in FINAL and not within:
                    text, size = _size(shrink(chunk))
            run.pending.append((run_id, seq, kind, key if i == 0 else None, text, size))
            run.pending_bytes += size
        scoped = self._scoped(run)
        written: dict[tuple[str, int], int] = {}
        if whole or scoped or run.pending_bytes >= DELTA_BATCH:  # thread streams need the rowids now
            written = self._write(run)
        for seq, chunk, text, size in chunks:
            for listener in self._listeners.get(("run", run_id), ()):
                self._queue(listener, seq, chunk, text, size)
            for listener in scoped:
                self._queue(listener, written.get((run_id, seq)), chunk, text, size)
        if kind in FINAL:
            self._runs.pop(run_id, None)

    def _queue(self, listener: _Listener, cursor: int | None, chunk: Chunk, text: str, size: int) -> None:
        if listener.bytes + size > self.queue_bytes:  # a slow reader: it catches up from the journal
            listener.queue.clear()
            listener.bytes = 0
            listener.lagged = True
        else:
            listener.queue.append((cursor, chunk, text, size))
            listener.bytes += size
        listener.wake.set()

    def _write(self, run: _Run) -> dict[tuple[str, int], int]:
        """Write the run's rows not written yet, in one transaction: the rowid of each."""
        batch = run.pending
        run.stored += run.pending_bytes
        run.pending, run.pending_bytes = [], 0
        if not batch or self.journal is None:
            return {}
        try:
            return self.journal.add_events(batch)
        except sqlite3.Error as exc:  # the stream loses these chunks; the run goes on
            log.warning("could not journal %d chunk(s) of run %s: %s", len(batch), batch[0][0], exc)
            return {}

    def flush(self, run_id: str | None = None) -> None:
        """Write the buffered ``text.delta`` chunks (of one run, or of all)."""
        for rid in [run_id] if run_id is not None else list(self._runs):
            run = self._runs.get(rid)
            if run is not None and run.pending:
                self._write(run)

    # -- reading ------------------------------------------------------------------------------
    def watched(self, run_id: str) -> bool:
        """Whether a client streams this run now (its own stream, or its thread's or user's).
        The model's text is streamed (``text.delta``) only then: streaming costs litellm
        several times the CPU of a plain call, and the whole text reaches every stream anyway
        in ``part.completed``."""
        if self._listeners.get(("run", run_id)):
            return True
        run = self._runs.get(run_id)
        return run is not None and bool(self._scoped(run))

    def held_bytes(self) -> int:
        """The chunk bytes this bus holds in memory (queued for subscribers, or not yet written)."""
        return sum(r.pending_bytes for r in self._runs.values()) + sum(
            listener.bytes for listeners in self._listeners.values() for listener in listeners
        )

    def history(self, run_id: str, after: int = 0) -> list[tuple[int, Chunk]]:
        """The run's journaled chunks numbered above ``after``, in order."""
        if self.journal is None:
            return []
        self.flush(run_id)
        return list(self.journal.events(run_id, after))

    def cursor(self) -> int:
        """Where a thread or user stream that wants only what comes next starts (the journal's last rowid)."""
        self.flush()
        return self.journal.event_cursor() if self.journal is not None else 0

    def _scope_history(self, scope: Scope, key: str, after: int) -> Iterable[tuple[int, Chunk]]:
        if self.journal is None:
            return
        self.flush()
        column = "thread_id" if scope == "thread" else "user"
        while True:
            page = self.journal.scope_events(column, key, after, SCOPE_PAGE)
            yield from page
            if len(page) < SCOPE_PAGE:
                return
            after = page[-1][0]

    async def stream(self, run_id: str, final: list[Chunk] | None = None, after: int = 0) -> AsyncIterator[Delivered]:
        """The run's chunks numbered above ``after`` (from the journal), then live ones until
        its ``stream.ended``.

        ``final`` is the end made from the run's record, for a finished run whose chunks are
        not in the journal (it ended before the journal kept them)."""
        listener = self._listen(("run", run_id))
        last = after
        try:
            first = True
            while True:
                # Subscribed before reading: what is emitted from here on is queued too, and
                # the numbers tell apart what the journal already gave.
                self._reset(listener)
                for seq, chunk in self.history(run_id, last):
                    last = seq
                    yield Delivered(seq, chunk)
                    if chunk["event"] == STREAM_ENDED:
                        return
                if first and final is not None:  # the run has ended: its end was sent now or before
                    if self.journal is None or self.journal.last_event(run_id, FINAL) is None:
                        for chunk in final:  # (it ended before its chunks were journaled)
                            yield Delivered(None, chunk)
                    return
                first = False
                async for cursor, chunk, text, more in self._live(listener):
                    if cursor is None or cursor <= last:
                        continue
                    last = cursor
                    yield Delivered(cursor, chunk, text, more and chunk["event"] != STREAM_ENDED)
                    if chunk["event"] == STREAM_ENDED:
                        return
        finally:
            self._unlisten(("run", run_id), listener)

    async def follow(self, scope: Literal["thread", "user"], key: str, after: int = 0) -> AsyncIterator[Delivered]:
        """The chunks of every run of a thread or a user written after the rowid ``after``
        (from the journal), then live ones, for as long as the client stays."""
        listener = self._listen((scope, key))
        last = after
        try:
            while True:
                self._reset(listener)
                for rowid, chunk in self._scope_history(scope, key, last):
                    last = rowid
                    yield Delivered(rowid, chunk)
                async for cursor, chunk, text, more in self._live(listener):
                    if cursor is not None and cursor <= last:
                        continue
                    last = cursor if cursor is not None else last
                    yield Delivered(cursor, chunk, text, more)
        finally:
            self._unlisten((scope, key), listener)

    # -- listeners ----------------------------------------------------------------------------
    def _listen(self, where: tuple[Scope, str]) -> _Listener:
        listener = _Listener()
        self._listeners.setdefault(where, set()).add(listener)
        return listener

    def _unlisten(self, where: tuple[Scope, str], listener: _Listener) -> None:
        listeners = self._listeners.get(where)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[where]

    @staticmethod
    def _reset(listener: _Listener) -> None:
        listener.queue.clear()
        listener.bytes, listener.lagged = 0, False

    @staticmethod
    async def _live(listener: _Listener) -> AsyncIterator[tuple[int | None, Chunk, str, bool]]:
        """The listener's queued chunks as they come, until it lags (the caller re-reads the journal)."""
        while not listener.lagged:
            while listener.queue and not listener.lagged:
                cursor, chunk, text, size = listener.queue.popleft()
                listener.bytes -= size
                yield cursor, chunk, text, bool(listener.queue)
            if listener.lagged:
                return
            listener.wake.clear()
            await listener.wake.wait()
