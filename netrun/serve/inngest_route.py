"""``/api/inngest``: the functions app of the current reload, behind the signature guard in
production (a request reaches the SDK only when it is signed with a fresh timestamp and not
seen before); every other path goes on to the REST API."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, QueryParams
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .guard import replay_body
from .inngest_guard import SignatureGuard
from .settings import SERVE_PATH

if TYPE_CHECKING:
    from .app import Server

log = logging.getLogger("netrun.serve")


class InngestRoute:
    """Sends ``/api/inngest`` to the functions app of the current reload, the rest on.

    In production mode a request reaches the SDK only when it is signed with a fresh
    timestamp and not seen before (:class:`SignatureGuard`); the SDK then checks the HMAC."""

    def __init__(self, app: ASGIApp, server: Server) -> None:
        self.app = app
        self.server = server
        client = getattr(server, "client", None)
        self.guard = (
            SignatureGuard(server.settings.signing_key, getattr(client, "signing_key_fallback", None))
            if server.settings.inngest_mode == "cloud"
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.server.inngest_app
        if scope["type"] == "http" and target is not None and scope["path"].rstrip("/") == SERVE_PATH:
            if self.guard is not None:
                # Read as the SDK reads them (the last of a repeated header or parameter).
                headers = dict(Headers(scope=scope).items())
                query = dict(QueryParams(scope.get("query_string", b"")).items())
                body, receive = await _buffered(receive)  # the HMAC covers it; the SDK reads it again
                refused = self.guard.refuse(scope["method"], query, headers, body)
                if refused is not None:
                    log.warning("refused %s %s: %s", scope["method"], SERVE_PATH, refused)
                    await JSONResponse({"detail": refused}, status_code=401)(scope, receive, send)
                    return
            await target(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The request body, and a ``receive`` that gives it again to the app behind."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks), receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    return body, replay_body(body, receive)
