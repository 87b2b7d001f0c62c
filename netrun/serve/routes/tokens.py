"""``POST /streams/token``: a short-lived token that opens one stream (a run's, a thread's
or a user's) for a client that cannot send the API token, such as a browser's EventSource.

Behind the API token itself: whoever holds it hands pages tokens for the streams they may
watch (AgentKit's ``getRealtimeToken``). See :mod:`netrun.serve.stream_tokens`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends

from ..stream_tokens import DEFAULT_TTL, MAX_TTL, expiry, issue
from .deps import API, server
from .models import StreamToken, StreamTokenRequest

if TYPE_CHECKING:
    from ..app import Server

router = APIRouter(dependencies=API, tags=["streams"])


@router.post("/streams/token", response_model=StreamToken)
async def stream_token(body: StreamTokenRequest, held: Server = Depends(server)) -> dict[str, Any]:
    """A token for ``?token=`` of ``GET /runs/{key}/events`` (scope run),
    ``/threads/{key}/events`` (thread) or ``/users/{key}/events`` (user)."""
    ttl = min(body.ttl if body.ttl is not None else DEFAULT_TTL, MAX_TTL)
    token = issue(held.stream_secret, scope=body.scope, key=body.key, ttl=ttl)
    moment = datetime.fromtimestamp(expiry(token) or 0, UTC)
    return {
        "token": token,
        "expires": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "scope": body.scope,
        "key": body.key,
    }
