"""``GET /runs`` (the run list), ``GET /runs/{id}``, ``POST /runs/{id}/retry``,
``POST /runs/{id}/cancel`` (the run's Server-Sent Events, ``GET /runs/{id}/events``, are in :mod:`.streams`)."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from ...engines.journal_schema import STATUSES
from ...engines.local import FINAL_STATUSES, RunRecord
from ...engines.triggers import RUN_CANCEL_EVENT
from ...runtime.events import RUN_CANCELLED
from ..guard import unprocessable
from .deps import API, server
from .models import RunAction, RunPage, RunSummary

if TYPE_CHECKING:
    from ..app import Server

router = APIRouter(tags=["runs"])

MAX_PAGE = 500
_LIST_PARAMS = ("network", "status", "thread_id", "user", "since", "until", "limit", "cursor")


@router.get("/runs", response_model=RunPage, dependencies=API)
async def runs(
    request: Request,
    network: str | None = None,
    status: str | None = Query(None, description="a status, or several separated by commas: " + ", ".join(STATUSES)),
    thread_id: str | None = None,
    user: str | None = None,
    since: str | None = Query(None, description="created at or after: ISO 8601 (UTC unless it says) or Unix seconds"),
    until: str | None = Query(None, description="created before: ISO 8601 (UTC unless it says) or Unix seconds"),
    limit: int = 50,
    cursor: str | None = Query(None, description="the `next` of the previous page"),
    held: Server = Depends(server),
) -> dict[str, Any] | JSONResponse:
    """Runs newest first, filtered, a page at a time: ``next`` is the cursor of the next
    page (None on the last). Each run: its id, network, status, thread, user, times."""
    problems: list[tuple[str, str]] = []
    unknown = sorted(set(request.query_params) - set(_LIST_PARAMS))
    if unknown:  # a typo must not silently list every run
        problems.append((f"query.{unknown[0]}", f"unknown filter; the parameters are: {', '.join(_LIST_PARAMS)}"))
    statuses = [part.strip() for part in (status or "").split(",") if part.strip()]
    wrong = [s for s in statuses if s not in STATUSES]
    if wrong:
        problems.append(("query.status", f"not a status; one of: {', '.join(STATUSES)} (several: separated by commas)"))
    if not 0 < limit <= MAX_PAGE:
        problems.append(("query.limit", f"must be from 1 to {MAX_PAGE}, not {limit}"))
    times = {}
    for name, text in (("since", since), ("until", until)):
        if text is not None:
            moment = _moment(text)
            if moment is None:
                problems.append((f"query.{name}", "not a time: ISO 8601 (2026-12-02T18:00:00Z) or Unix seconds"))
            times[name] = moment
    before = _cursor(cursor) if cursor is not None else None
    if cursor is not None and before is None:
        problems.append(("query.cursor", "not a cursor this server gave: pass the `next` of the previous page unchanged"))
    if problems:
        return unprocessable(problems)
    page = held.journal.list_runs(
        network=network,
        statuses=statuses,
        thread_id=thread_id,
        user=user,
        since=times.get("since"),
        until=times.get("until"),
        before=before,
        limit=limit + 1,  # one more than asked: whether there is a next page, without a count
    )
    more = len(page) > limit
    page = page[:limit]
    cursor_after = _encode_cursor(page[-1]["created"], page[-1]["run_id"]) if more else None
    for run in page:
        for key in ("created", "updated"):
            run[key] = _iso(run[key])
    return {"runs": page, "next": cursor_after}


def _moment(text: str) -> float | None:
    """Unix seconds from ISO 8601 (UTC unless an offset is given) or a number of seconds;
    None for anything else (``nan``, ``inf`` and times no calendar holds included)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.strip())
            seconds = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        except (ValueError, OverflowError):
            return None
    return seconds if math.isfinite(seconds) else None


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode_cursor(created: float, run_id: str) -> str:
    """The cursor after a run: its exact creation time and id (opaque to clients)."""
    raw = json.dumps([created, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _cursor(text: str) -> tuple[float, str] | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (int, float))
        and not isinstance(value[0], bool)
        and abs(value[0]) < 1e12  # seconds since 1970 (an int too large for a float raises)
        and math.isfinite(value[0])
        and isinstance(value[1], str)
    ):
        return float(value[0]), value[1]
    return None


@router.get("/runs/{run_id}", response_model=RunSummary, dependencies=API)
async def run(run_id: str, held: Server = Depends(server)) -> dict[str, Any]:
    record = held.journal.run(run_id, approvals=True)
    if record is None:
        raise HTTPException(404, f"no run {run_id}")
    return record.summary()


CANCEL_REASON = "cancelled through the REST API"


def _act(held: Server, run_id: str, act: Callable[[str], RunRecord]) -> dict[str, Any]:
    """Retry or cancel a local run: 409 when the engine refuses (the run is not in a state
    the action applies to)."""
    from ...engines.runner import EngineError

    try:
        record = act(run_id)
    except EngineError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"run_id": run_id, "status": record.status, "network": record.network}


def _known(held: Server, run_id: str) -> RunRecord:
    record = held.journal.run(run_id)
    if record is None:
        raise HTTPException(404, f"no run {run_id}")
    return record


@router.post("/runs/{run_id}/retry", status_code=202, response_model=RunAction, dependencies=API)
async def retry(run_id: str, held: Server = Depends(server)) -> dict[str, Any]:
    """Run a failed run again: completed steps stay memoized, the failed step runs again.
    Local runs only: Inngest has no API that reruns a failed run with its completed steps."""
    record = _known(held, run_id)
    if held.settings.engine == "inngest":
        if record.status != "failed":
            raise HTTPException(409, f"run {run_id} is {record.status}, not failed: only a failed run can be retried")
        raise HTTPException(
            409,
            f"run {run_id} executes on Inngest, which has no API to run a failed run again with its completed "
            "steps: replay it from Inngest's dashboard, or start a new run",
        )
    return _act(held, run_id, held.local.retry)


@router.post("/runs/{run_id}/cancel", status_code=202, response_model=RunAction, dependencies=API)
async def cancel(run_id: str, held: Server = Depends(server)) -> dict[str, Any]:
    """End a run that has not ended: ``cancelled``; a step in flight finishes, no further one
    starts. On Inngest: the ``netrun/run.cancel`` event every function cancels on."""
    return await cancel_run(held, run_id)


async def cancel_run(held: Server, run_id: str, reason: str = CANCEL_REASON) -> dict[str, Any]:
    """Cancel a run on the engine that executes it (other routes cancel runs with it too):
    ``{run_id, status, network}``; HTTPException 404 (no such run), 409 (it has ended),
    502 (Inngest did not take the cancelling event)."""
    record = _known(held, run_id)
    if held.settings.engine != "inngest":
        return _act(held, run_id, lambda rid: held.engine.cancel(rid, reason))
    import inngest

    if record.status in FINAL_STATUSES:
        raise HTTPException(409, f"run {run_id} is {record.status}: only a run that has not ended can be cancelled")
    # The event names the run as the function's cancel entry matches it
    # (netrun.engines.inngest_function.rest_cancel); the journal records it once Inngest has
    # the event, and the run's inngest/function.cancelled then finds it ended already.
    event_id = record.event.get("id") if isinstance(record.event, dict) else None
    data = {
        "run_id": run_id,
        "network": record.network,
        **({"event_id": event_id} if isinstance(event_id, str) and event_id else {}),
        "reason": reason,
    }
    await held.send(inngest.Event(name=RUN_CANCEL_EVENT, data=data))
    if held.journal.cancel(run_id, reason):
        held.emit(RUN_CANCELLED, {"run_id": run_id, "error": reason, "replayed": False})
    return {"run_id": run_id, "status": "cancelled", "network": record.network}
