"""The REST API of ``netrun serve``, one router per resource.

- :mod:`.health`: ``GET /healthz`` (never behind the token)
- :mod:`.networks`: ``GET /networks``, ``POST /networks/{name}/runs``
- :mod:`.runs`: ``GET /runs/{id}``, ``POST /runs/{id}/retry|cancel``, ``GET /runs/{id}/events`` (SSE)
- :mod:`.events`: ``POST /events``
- :mod:`.threads`: ``GET /threads``, ``GET|DELETE /threads/{id}``
- :mod:`.handlers`: how errors become answers, and the API's description behind the token

Every route reaches the server through the :func:`.deps.server` dependency and is guarded
by :func:`.deps.authorized`, so a test (or an embedding app) can override either with
``app.dependency_overrides``. Request and answer shapes are in :mod:`.models`.
"""

from __future__ import annotations

from fastapi import FastAPI

from . import events, handlers, health, networks, runs, threads


def install(app: FastAPI, *, open_docs: bool) -> None:
    """Add every router, the error handlers and (with a token) the API's description behind it."""
    for module in (health, networks, runs, events, threads):
        app.include_router(module.router)
    handlers.install(app, open_docs=open_docs)
