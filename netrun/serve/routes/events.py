"""``POST /events``: an event starts the networks it triggers and answers the waits and
approvals it matches (in Inngest mode it goes to Inngest)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from ...engines.approvals import ApprovalError, resolve_approval
from ...engines.triggers import META
from ...tracing import incoming
from .deps import API, server
from .models import EventRequest

if TYPE_CHECKING:
    from ..app import Server

router = APIRouter(dependencies=API, tags=["events"])


@router.post("/events", status_code=202, response_model=None)
async def events(body: EventRequest, request: Request, held: Server = Depends(server)) -> dict[str, Any] | JSONResponse:
    """Deliver an event (:func:`deliver_event`); the runs it starts continue the request's
    ``traceparent``."""
    return await deliver_event(body, held, incoming(request.headers))


async def deliver_event(
    body: EventRequest, held: Server, trace: Mapping[str, str] | None = None
) -> dict[str, Any] | JSONResponse:
    """Deliver an event. 202 ``{started, resumed, problems, matched[, approval_id, skipped,
    cancelled]}`` (Inngest: ``{event_ids, matched[, approval_id]}``). An approval, or an event
    for one run (``run_id``), that answers nothing is refused with the reason: 404 (no such
    run, approval or wait), 409 (several approvals pending and none named, answered already,
    expired, another tool's, the run ended), 422 (malformed); the body is ``{detail, run_id,
    pending: [approvals]}``. See README "Approvals"."""
    journal = held.journal
    if META in body.data:
        # netrun's own: it names the run a function call records (and its depth). A client
        # that set it could overwrite another run's record; runs are started with
        # POST /networks/{name}/runs.
        raise HTTPException(422, f"data.{META} is reserved for netrun; start a run with POST /networks/{{name}}/runs")
    data = dict(body.data)
    if body.run_id is not None:
        data.setdefault("run_id", body.run_id)  # approvals match on the run id in the data
    try:
        approval = resolve_approval(journal, body.name, data, body.run_id)
    except ApprovalError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
    run_id = body.run_id
    if approval is not None:
        data, run_id = approval, str(approval["run_id"])
    named = {"approval_id": approval["approval_id"]} if approval is not None and "approval_id" in approval else {}
    if held.settings.engine == "inngest":
        import inngest

        # Inngest's wait matches the id; marking the approval answered first makes a repeat
        # (or a concurrent second answer) a 409 here rather than an event that matches nothing.
        if named and run_id is not None and not journal.settle_approval(run_id, named["approval_id"]):
            return JSONResponse(
                ApprovalError(
                    409,
                    f"approval {named['approval_id']} of run {run_id} was answered already",
                    run_id,
                    journal.approvals(run_id),
                ).body(),
                status_code=409,
            )
        try:
            ids = await held.send(inngest.Event(name=body.name, data=data))
        except HTTPException:
            if named and run_id is not None:  # not sent: it still waits for an answer
                journal.settle_approval(run_id, named["approval_id"], "pending", was="answered")
            raise
        # Whether a plain event answers a wait is Inngest's to know: matched is null then.
        return {"event_ids": ids, "matched": True if approval is not None else None, **named}
    if approval is None and run_id is not None and journal.run(run_id) is None:
        raise HTTPException(404, f"no run {run_id}")
    try:
        result = held.local.deliver(body.name, data, run_id, trace=trace)
    except ApprovalError as exc:
        return JSONResponse(exc.body(), status_code=exc.status)
    matched = bool(result["started"] or result["resumed"] or result.get("cancelled"))
    if not matched and approval is not None:  # another request answered it between the two looks
        assert run_id is not None
        which = f"approval {named['approval_id']}" if named else "the approval"
        refusal = ApprovalError(409, f"{which} of run {run_id} was answered already", run_id, journal.approvals(run_id))
        return JSONResponse(refusal.body(), status_code=409)
    if not matched and run_id is not None:
        waits = sorted({w[2] for w in journal.waits(run_id=run_id)})
        return JSONResponse(
            {
                "detail": f"no wait of run {run_id} matches the event {body.name}; it waits for: {', '.join(waits) or 'nothing'}",
                "run_id": run_id,
                "pending": journal.approvals(run_id),
            },
            status_code=404,
        )
    return {**result, "matched": matched, **named}
