"""``GET /networks`` and ``POST /networks/{name}/runs``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from ...runtime.state import state_problems
from ...tracing import incoming
from ..guard import unprocessable
from .deps import API, server
from .models import NetworkList, RunRequest

if TYPE_CHECKING:
    from ..app import Server

router = APIRouter(dependencies=API, tags=["networks"])


@router.get("/networks", response_model=NetworkList)
async def networks(held: Server = Depends(server)) -> dict[str, Any]:
    return {"networks": [v.describe() for v in held.catalog.current.values()], "reloads": held.reloads}


@router.post("/networks/{name}/runs", status_code=202, response_model=None)
async def start(name: str, body: RunRequest, request: Request, held: Server = Depends(server)) -> dict[str, Any] | JSONResponse:
    """Start a run: 202 ``{run_id, status, network, thread_id, ...}``; 404 for no such
    network, 422 for a state that does not fit, 409 for a run a singleton skips, 503 when
    Inngest refused the network's sync or the disk is full. A valid ``traceparent`` header
    becomes the parent of the run's spans (recorded with the run); a malformed one is ignored."""
    version = held.catalog.get(name)
    if version is None:
        raise HTTPException(404, f"no network named '{name}'; served: {', '.join(sorted(held.catalog.current)) or 'none'}")
    problems = state_problems(version.spec.state, body.state)
    if problems:
        return unprocessable((f"body.state.{path}", why) for _, path, why in problems)
    return await held.start_run(version, body, incoming(request.headers))
