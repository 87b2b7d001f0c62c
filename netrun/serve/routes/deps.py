"""What every route depends on: the server it answers for, the bearer token, stream tokens.

All are FastAPI dependencies, so ``app.dependency_overrides[server] = ...`` (or
``[authorized]``, ``[stream_auth]``) replaces them in a test or in an app that mounts netrun's.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import Depends, HTTPException, Query, Request

from ..stream_tokens import verify

if TYPE_CHECKING:
    from ..app import Server


def server(request: Request) -> Server:
    """The :class:`~netrun.serve.app.Server` of the app answering this request."""
    return request.app.state.netrun  # type: ignore[no-any-return]


def _bearer(request: Request, held: Server) -> bool:
    token = held.settings.api_token
    if token is None:
        return True
    given = request.headers.get("authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def authorized(request: Request, held: Server = Depends(server)) -> None:
    """401 unless the request carries ``Authorization: Bearer $NETRUN_API_TOKEN`` (when set)."""
    if not _bearer(request, held):
        raise HTTPException(401, "missing or wrong bearer token (NETRUN_API_TOKEN)", headers={"WWW-Authenticate": "Bearer"})


STREAM_KEYS = (("run_id", "run"), ("thread_id", "thread"), ("user", "user"))
"""The path parameter that names a stream, and the token scope that opens it."""


def stream_auth(
    request: Request,
    token: str | None = Query(
        default=None, max_length=1024, description="A stream token from POST /streams/token (for an EventSource)"
    ),
    held: Server = Depends(server),
) -> None:
    """401 unless the request carries the bearer API token, or ``?token=`` a stream token
    (``POST /streams/token``) for this very stream: the scope and key of the path's
    ``run_id``, ``thread_id`` or ``user``. Without an API token streams are open."""
    if _bearer(request, held):
        return
    if token is not None:
        for param, scope in STREAM_KEYS:
            key = request.path_params.get(param)
            if key is not None:
                if verify(held.stream_secret, token, scope=scope, key=str(key)):
                    return
                break
        raise HTTPException(
            401,
            "the stream token is not valid for this stream (wrong stream, expired or not signed by this server): "
            "ask POST /streams/token for a new one",
        )
    raise HTTPException(
        401,
        "missing or wrong bearer token (NETRUN_API_TOKEN), and no ?token= (a stream token from POST /streams/token)",
        headers={"WWW-Authenticate": "Bearer"},
    )


API = [Depends(authorized)]
"""The dependencies of every route behind the token."""
STREAM = [Depends(stream_auth)]
"""The dependencies of a stream route: the API token, or a stream token for that stream."""
