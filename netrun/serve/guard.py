"""What every request to ``netrun serve`` must be before a route reads it.

:class:`RequestGuard` refuses, before any parsing or storing:

- a body over the limit: 413. ``NETRUN_MAX_BODY`` (default 1 MiB) for the REST API,
  ``NETRUN_MAX_INNGEST_BODY`` (default 16 MiB) for ``/api/inngest``, whose calls Inngest
  sizes by its own limits. The bytes are counted as they arrive, so a chunked body without
  a content-length is cut off at the limit too; nothing over it is kept in memory.
- a REST body that is not JSON netrun can store and read back (lone surrogates such as
  ``"\\ud800"``, ``NaN``, nesting past :data:`~netrun.runtime.jsonsafe.MAX_DEPTH`), and
  path or query text that is not valid Unicode: 422 naming the field (``body.state.x``).

Every 422 of the server has one shape (:func:`unprocessable`): ``{"detail": "body.state.x:
why; ...", "errors": [{"field", "msg"}]}``; the refused value is never echoed back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..runtime.jsonsafe import TOO_DEEP, encodable, json_problem
from .settings import SERVE_PATH

DRAIN = 64 << 20
"""Past the limit, up to this many more bytes are read and dropped before the 413 is sent:
a client that is still sending then reads the answer instead of a reset connection."""


def unprocessable(problems: Iterable[tuple[str, str]]) -> JSONResponse:
    """A 422 for ``(field, why)`` problems: ``field`` as a client names it (``body.state.x``)."""
    listed = [{"field": safe_text(field), "msg": safe_text(why)} for field, why in problems]
    return JSONResponse({"detail": "; ".join(f"{p['field']}: {p['msg']}" for p in listed), "errors": listed}, status_code=422)


def safe_text(text: str) -> str:
    """``text`` with whatever UTF-8 cannot encode replaced, so that an answer can always be sent."""
    return text if encodable(text) else text.encode("utf-8", "replace").decode("utf-8")


class SafeJSONResponse(JSONResponse):
    """A JSON answer that can always be sent: text a model or a tool produced may hold what
    UTF-8 cannot encode (a lone surrogate from a ``\\ud800`` escape in its JSON); it goes
    out with U+FFFD in its place instead of failing the request with a 500."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


class _ClientGoneError(Exception):
    """The client disconnected before sending the whole body."""


class RequestGuard:
    """ASGI middleware: the body limit and the readability checks of the module docstring;
    a request that passes reaches the app with its body given again as one message."""

    def __init__(self, app: ASGIApp, max_body: int, max_inngest_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_inngest_body = max_inngest_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inngest = scope["path"].rstrip("/") == SERVE_PATH
        limit, setting = (self.max_inngest_body, "NETRUN_MAX_INNGEST_BODY") if inngest else (self.max_body, "NETRUN_MAX_BODY")
        if not inngest:
            problem = _url_problem(scope)
            if problem is not None:
                await unprocessable([problem])(scope, receive, send)
                return
        try:
            body = await _read(receive, limit, _content_length(scope))
        except _ClientGoneError:
            return
        if body is None:
            refusal = JSONResponse(
                {"detail": f"the request body is larger than {limit} bytes, the limit ({setting})"},
                status_code=413,
                headers={"Connection": "close"},
            )
            await refusal(scope, receive, send)
            return
        if body and not inngest:
            problem = _body_problem(body)
            if problem is not None:
                await unprocessable([problem])(scope, receive, send)
                return
        await self.app(scope, replay_body(body, receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _read(receive: Receive, limit: int, declared: int | None) -> bytes | None:
    """The whole body, or None when it is over ``limit`` (then what follows is drained up to
    :data:`DRAIN` more bytes; a declared length past that is not read at all)."""
    if declared is not None and declared > limit + DRAIN:
        return None
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        more = bool(message.get("more_body"))
        if size > limit:
            while more and size <= limit + DRAIN:
                message = await receive()
                if message["type"] != "http.request":
                    raise _ClientGoneError
                size += len(message.get("body", b""))
                more = bool(message.get("more_body"))
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then what the client sends next (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _body_problem(body: bytes) -> tuple[str, str] | None:
    """Why the body would not be read back (parsed as the routes parse it), or None."""
    try:
        value: Any = json.loads(body)
    except UnicodeDecodeError:
        return "body", "not UTF-8 text; send JSON encoded as UTF-8"
    except json.JSONDecodeError as exc:
        return "body", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except RecursionError:
        return "body", TOO_DEEP
    except ValueError:  # e.g. an integer of more digits than Python converts
        return "body", "not JSON netrun can read (a number too long to convert?)"
    return json_problem(value, "body")


def _url_problem(scope: Scope) -> tuple[str, str] | None:
    """Path and query text that is not valid Unicode (a server that decodes percent escapes
    leniently may hand it on)."""
    if not encodable(scope["path"]):
        return "path", "not valid Unicode"
    for name, value in QueryParams(scope.get("query_string", b"")).multi_items():
        if not encodable(name) or not encodable(value):
            return f"query.{safe_text(name)}", "not valid Unicode"
    return None
