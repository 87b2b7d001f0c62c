"""The web console: ``GET /ui`` (the files of :mod:`netrun.serve.ui`, plain HTML, ES modules
and CSS with no build step) and ``GET /networks/{name}/graph``, the topology it draws.

The console's files hold no data, so they are served without the API token; everything the
pages show comes from the REST API, called with the token the person signs in with. Every
answer under ``/ui`` carries a Content-Security-Policy that allows scripts, styles and
connections from this origin only (no inline script, no ``eval``, no frames): text a model
or a tool produced is set as text by the pages, and the policy is the second fence should a
page ever slip.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ...graph import topology
from .deps import API, server

if TYPE_CHECKING:
    from ..app import Server

router = APIRouter(tags=["console"])

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""No inline script or style, nothing from another origin: the console needs neither."""

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files; a new netrun version must not run against a cached page of the last one.
    "Cache-Control": "no-cache",
}

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def _files() -> dict[str, bytes]:
    """The console's files by name, read once: a fixed set, so no request names a path."""
    folder = resources.files("netrun.serve") / "ui"
    found: dict[str, bytes] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in TYPES:
            found[entry.name] = entry.read_bytes()
    return found


_cache: dict[str, bytes] = {}


def asset(name: str) -> tuple[bytes, str] | None:
    if not _cache:
        _cache.update(_files())
    body = _cache.get(name)
    return None if body is None else (body, TYPES["." + name.rpartition(".")[2]])


def page_weight() -> int:
    """Bytes of the console's HTML, JS and CSS together (what a first visit downloads)."""
    return sum(len(body) for body in _files().values())


@router.get("/ui", include_in_schema=False)
async def ui_root(request: Request) -> RedirectResponse:
    # The pages load their modules by relative URL: they need the trailing slash. The
    # request's own path keeps the prefix of an app netrun is mounted in.
    return RedirectResponse(f"{request.url.path}/", status_code=308, headers=HEADERS)


@router.get("/ui/", include_in_schema=False)
async def ui_index() -> Response:
    return _answer("index.html")


@router.get("/ui/{name}", include_in_schema=False)
async def ui_file(name: str) -> Response:
    return _answer(name)


def _answer(name: str) -> Response:
    found = asset(name)
    if found is None:
        listed = ", ".join(sorted(_cache))
        return JSONResponse({"detail": f"the console has no file named {name[:80]!r}; it has: {listed}"}, 404, HEADERS)
    body, media_type = found
    return Response(body, media_type=media_type, headers=HEADERS)


@router.get("/networks/{name}/graph", dependencies=API, tags=["networks"])
async def graph(name: str, held: Server = Depends(server)) -> dict[str, Any]:
    """The network's topology (what ``netrun graph`` draws): ``{name, nodes: [{id, label,
    shape}], edges: [{source, target, label, dashed}]}``; shape is start, stop, router,
    agent, tool, wait (a wait or an approval), network or server (MCP)."""
    version = held.catalog.get(name)
    if version is None:
        raise HTTPException(404, f"no network named '{name}'; served: {', '.join(sorted(held.catalog.current)) or 'none'}")
    g = topology(version.spec)
    return {
        "name": name,
        "nodes": [{"id": n.id, "label": n.label, "shape": n.shape} for n in g.nodes.values()],
        "edges": [{"source": e.source, "target": e.target, "label": e.label, "dashed": e.dashed} for e in g.edges],
    }
