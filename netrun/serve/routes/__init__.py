"""The REST API of ``netrun serve``, one router per resource.

- :mod:`.health`: ``GET /healthz`` (never behind the token)
- :mod:`.networks`: ``GET /networks``, ``POST /networks/{name}/runs``
- :mod:`.runs`: ``GET /runs/{id}``, ``POST /runs/{id}/retry|cancel``
- :mod:`.streams`: ``GET /runs/{id}/events``, ``GET /threads/{id}/events``, ``GET /users/{user}/events`` (SSE)
- :mod:`.events`: ``POST /events``
- :mod:`.threads`: ``GET /threads``, ``GET|DELETE /threads/{id}``
- :mod:`.tokens`: ``POST /streams/token`` (stream tokens, for an EventSource)
- :mod:`.ui`: the web console, ``GET /ui``, and ``GET /networks/{name}/graph``, the topology it draws
- :mod:`.agentkit`: ``/agentkit/{network}/...``, the endpoints of AgentKit's React client, and
  ``/v1/realtime/connect`` (:mod:`.agentkit_realtime`), the WebSocket its hook streams from
- :mod:`.metrics`: ``GET /metrics``, the Prometheus metrics (behind the token unless ``NETRUN_METRICS=public``)
- :mod:`.handlers`: how errors become answers, and the API's description behind the token

Every route reaches the server through the :func:`.deps.server` dependency and is guarded
by :func:`.deps.authorized`, so a test (or an embedding app) can override either with
``app.dependency_overrides``. Request and answer shapes are in :mod:`.models`.
"""

from __future__ import annotations

from fastapi import FastAPI

from . import agentkit, events, handlers, health, metrics, networks, runs, streams, threads, tokens, ui


def install(app: FastAPI, *, open_docs: bool) -> None:
    """Add every router, the error handlers and (with a token) the API's description behind it."""
    for module in (health, networks, runs, streams, events, threads, tokens, ui, agentkit, metrics):
        app.include_router(module.router)
    handlers.install(app, open_docs=open_docs)
