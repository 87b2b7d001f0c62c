"""``GET /healthz``: whether this server can do its job, never behind the token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from .deps import server

if TYPE_CHECKING:
    from ..app import Server

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=None)
async def healthz(held: Server = Depends(server)) -> dict[str, Any] | JSONResponse:
    """``{status, engine, inngest, networks}``, with ``sync`` in Inngest mode and ``storage``
    while a full disk holds runs back; 503 ``status: "error"`` when Inngest refused every
    version (nothing can run)."""
    settings = held.settings
    health: dict[str, Any] = {
        "status": "ok",
        "engine": settings.engine,
        "inngest": settings.inngest_mode,
        "networks": len(held.catalog.current),
    }
    if held.functions is not None:
        health["sync"] = held.sync_state
        if held.sync_state.get("status") == "refused" and not held.ever_synced:
            return JSONResponse({**health, "status": "error"}, status_code=503)
    stalled = held.local.stalled
    if stalled:  # runs stopped by a full disk: they go on once the journal can be written
        health["storage"] = {"stalled_runs": len(stalled), "reason": next(iter(stalled.values()))}
    return health
