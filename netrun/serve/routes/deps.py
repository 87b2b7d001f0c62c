"""What every route depends on: the server it answers for, and the bearer token.

Both are FastAPI dependencies, so ``app.dependency_overrides[server] = ...`` (or
``[authorized]``) replaces them in a test or in an app that mounts netrun's.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from fastapi import Depends, HTTPException, Request

if TYPE_CHECKING:
    from ..app import Server


def server(request: Request) -> Server:
    """The :class:`~netrun.serve.app.Server` of the app answering this request."""
    return request.app.state.netrun  # type: ignore[no-any-return]


def authorized(request: Request, held: Server = Depends(server)) -> None:
    """401 unless the request carries ``Authorization: Bearer $NETRUN_API_TOKEN`` (when set)."""
    token = held.settings.api_token
    if token is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise HTTPException(401, "missing or wrong bearer token (NETRUN_API_TOKEN)", headers={"WWW-Authenticate": "Bearer"})


API = [Depends(authorized)]
"""The dependencies of every route behind the token."""
