"""The streams, as Server-Sent Events of AgentKit's chunks (:mod:`netrun.runtime.agentkit_stream`):

- ``GET /runs/{id}/events``: one run, from its start, until its ``stream.ended``; the SSE
  ``id:`` is the chunk's ``sequenceNumber`` (numbered per run).
- ``GET /threads/{id}/events``: every run of a thread (started by REST, by an event, by
  AgentKit's routes), open until the client leaves.
- ``GET /users/{user}/events``: every run of a user, the same way.

All resume after ``Last-Event-ID`` (the header an ``EventSource`` sends when it reconnects,
or ``?last_event_id=``). For the thread and user streams the ``id:`` is a cursor monotonic
across runs: the journal's rowid of the chunk (the order chunks were written; each chunk's
``sequenceNumber`` stays its run's). Without one they start from the thread's (user's)
first journaled chunk, or, with ``?live=true``, from what comes next. The SSE ``event:`` is
the chunk's ``event``; its ``data:`` the whole chunk. Memory is bounded per stream by the
bus (:mod:`netrun.serve.run_events`): a subscriber that falls behind re-reads the journal.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from sse_starlette.sse import EventSourceResponse

from ...engines.local import FINAL_STATUSES
from ...runtime.agentkit_stream import final_chunks
from ..run_events import Delivered
from .deps import STREAM, server

if TYPE_CHECKING:
    from ..app import Server

router = APIRouter(dependencies=STREAM, tags=["streams"])

PING_SECONDS = 15
"""A comment line this often keeps proxies from closing an idle stream."""

MAX_CURSOR = 2**63 - 1
"""The largest event number (SQLite's integers are 64-bit)."""

BATCH = 256
"""Queued chunks sent in one write, at most."""


def _resume(request: Request, last_event_id: str | None) -> int:
    """The cursor to resume after (0: from the start); 400 for one that is not a number."""
    given = request.headers.get("last-event-id") or last_event_id or "0"
    text = given.strip()
    try:
        after = int(text) if len(text) <= 19 else -1  # SQLite's integers are 64-bit
    except ValueError:
        after = -1
    if after < 0 or after > MAX_CURSOR:
        raise HTTPException(
            400,
            f"Last-Event-ID must be an event number from 0 to {MAX_CURSOR} (the id: of an event of this stream), "
            f"not {given[:40]!r}",
        )
    return after


def _sse(chunks: AsyncIterator[Delivered]) -> EventSourceResponse:
    async def lines() -> AsyncIterator[bytes]:
        # Encoded here, not by sse_starlette: the chunk's JSON is made once by the bus for
        # every subscriber, and has no line break (JSON escapes them) to split on. Chunks
        # queued already go out in one write (a subscriber behind a fast model catches up).
        batch: list[str] = []
        async for cursor, chunk, text, more in chunks:
            head = f"id: {cursor}\r\n" if cursor is not None else ""
            batch.append(f"{head}event: {chunk['event']}\r\ndata: {text or json.dumps(chunk, default=str)}\r\n\r\n")
            if not more or len(batch) >= BATCH:
                yield "".join(batch).encode()
                batch.clear()
        if batch:
            yield "".join(batch).encode()

    return EventSourceResponse(lines(), ping=PING_SECONDS, sep="\r\n")


@router.get("/runs/{run_id}/events")
async def run_events(
    run_id: str, request: Request, last_event_id: str | None = None, held: Server = Depends(server)
) -> EventSourceResponse:
    """The run's chunks from its start, or after the one numbered ``Last-Event-ID``."""
    after = _resume(request, last_event_id)
    record = held.journal.run(run_id)
    if record is None:
        raise HTTPException(404, f"no run {run_id}")
    final = None
    if record.status in FINAL_STATUSES:
        final = final_chunks(run_id, record.network, record.status, record.result, record.error, int(time.time() * 1000))
    return _sse(held.events.stream(run_id, final, after=after))


def _follow(
    held: Server, scope: Literal["thread", "user"], key: str, request: Request, last_event_id: str | None, live: bool
) -> EventSourceResponse:
    after = _resume(request, last_event_id)
    if after == 0 and live:
        after = held.events.cursor()
    return _sse(held.events.follow(scope, key, after=after))


@router.get("/threads/{thread_id}/events")
async def thread_events(
    thread_id: str, request: Request, last_event_id: str | None = None, live: bool = False, held: Server = Depends(server)
) -> EventSourceResponse:
    """The chunks of every run of the thread, after the cursor ``Last-Event-ID``, then live."""
    return _follow(held, "thread", thread_id, request, last_event_id, live)


@router.get("/users/{user}/events")
async def user_events(
    user: str, request: Request, last_event_id: str | None = None, live: bool = False, held: Server = Depends(server)
) -> EventSourceResponse:
    """The chunks of every run of the user, after the cursor ``Last-Event-ID``, then live."""
    return _follow(held, "user", user, request, last_event_id, live)
