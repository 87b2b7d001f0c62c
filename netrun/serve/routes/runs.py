"""``GET /runs/{id}``, ``POST /runs/{id}/retry``, ``POST /runs/{id}/cancel`` and the run's
Server-Sent Events, ``GET /runs/{id}/events``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from sse_starlette.sse import EventSourceResponse

from ...engines.local import FINAL_STATUSES, RunRecord
from ...runtime.events import FINAL
from .deps import API, server
from .models import RunAction, RunSummary

if TYPE_CHECKING:
    from ..app import Server

router = APIRouter(dependencies=API, tags=["runs"])


@router.get("/runs/{run_id}", response_model=RunSummary)
async def run(run_id: str, held: Server = Depends(server)) -> dict[str, Any]:
    record = held.journal.run(run_id, approvals=True)
    if record is None:
        raise HTTPException(404, f"no run {run_id}")
    return record.summary()


def _act(held: Server, run_id: str, verb: str, act: Callable[[str], RunRecord]) -> dict[str, Any]:
    """Retry or cancel a local run: 404 for no such run, 409 on Inngest or when the engine
    refuses (the run is not in a state the action applies to)."""
    from ...engines.runner import EngineError

    if held.journal.run(run_id) is None:
        raise HTTPException(404, f"no run {run_id}")
    if held.settings.engine == "inngest":
        raise HTTPException(409, f"run {run_id} executes on Inngest: {verb} it from Inngest's dashboard")
    try:
        record = act(run_id)
    except EngineError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"run_id": run_id, "status": record.status, "network": record.network}


@router.post("/runs/{run_id}/retry", status_code=202, response_model=RunAction)
async def retry(run_id: str, held: Server = Depends(server)) -> dict[str, Any]:
    """Run a failed run again: completed steps stay memoized, the failed step runs again."""
    return _act(held, run_id, "retry", held.local.retry)


@router.post("/runs/{run_id}/cancel", status_code=202, response_model=RunAction)
async def cancel(run_id: str, held: Server = Depends(server)) -> dict[str, Any]:
    """End a run that has not ended: ``cancelled``; a step in flight finishes, no further one starts."""
    return _act(held, run_id, "cancel", lambda rid: held.engine.cancel(rid, "cancelled through the REST API"))


@router.get("/runs/{run_id}/events")
async def run_events(
    run_id: str, request: Request, last_event_id: str | None = None, held: Server = Depends(server)
) -> EventSourceResponse:
    """The run's events from its start, or after the event numbered ``Last-Event-ID`` (the
    header an EventSource sends when it reconnects, or ``?last_event_id=``)."""
    resume = request.headers.get("last-event-id") or last_event_id or "0"
    try:
        after = int(resume.strip())
    except ValueError:
        raise HTTPException(
            400, f"Last-Event-ID must be an event number (the id: of an event of this stream), not {resume[:40]!r}"
        ) from None
    record = held.journal.run(run_id)
    if record is None:
        raise HTTPException(404, f"no run {run_id}")
    final = None
    if record.status in FINAL_STATUSES:
        final = {
            "type": f"run.{record.status}",
            "run_id": run_id,
            **({"result": record.result} if record.result else {"error": record.error}),
        }

    async def stream() -> AsyncIterator[dict[str, str]]:
        async for seq, event in held.events.stream(run_id, final, after=max(after, 0)):
            yield {
                "event": event["type"],
                "data": json.dumps(event, default=str),
                **({"id": str(seq)} if seq is not None else {}),
            }
            if event["type"] in FINAL:
                return

    return EventSourceResponse(stream(), ping=15)
