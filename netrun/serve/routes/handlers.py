"""How errors become answers (a JSON reason, never a traceback), and the API's description
served behind the token when one is set."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from ...runtime.render import RenderError
from ...sqlite_file import StorageFault
from ..guard import safe_text, unprocessable
from .deps import API

log = logging.getLogger("netrun.serve")


def field_name(loc: Any) -> str:
    """A validation error's location as a client names the field: ``body.history[0].role``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{safe_text(str(part))}" if text else safe_text(str(part))
    return text or "request"


def install(app: FastAPI, *, open_docs: bool) -> None:
    if not open_docs:
        _docs_behind(app)

    @app.exception_handler(RenderError)
    async def render_error(request: Request, exc: RenderError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the input, which may be what cannot be encoded.
        return unprocessable((field_name(error.get("loc", ())), str(error.get("msg", "invalid"))) for error in exc.errors())

    @app.exception_handler(StorageFault)
    async def storage_fault(request: Request, exc: StorageFault) -> JSONResponse:
        # Not the client's mistake, and it passes: the disk filled. Nothing was half-stored.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": f"the server cannot store this now: {exc}; try again later"}, status_code=503, headers={"Retry-After": "5"}
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server log has the details"}, status_code=500)


def _docs_behind(app: FastAPI) -> None:
    """``/openapi.json``, ``/docs`` and ``/redoc``, requiring the API token (a client sends
    the header; a browser needs a proxy that adds it)."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    @app.get("/openapi.json", dependencies=API, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", dependencies=API, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="netrun API")

    @app.get("/redoc", dependencies=API, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="netrun API")
