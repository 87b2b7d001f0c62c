"""``GET /metrics``: the server's Prometheus metrics (:mod:`netrun.serve.metrics`).

Behind the API token like the rest of the API (``NETRUN_METRICS=token``, the default), open
to anyone who can reach the server with ``NETRUN_METRICS=public`` (``--metrics public``: a
scraper on a private network that cannot send a token), or not served with ``off``. When
``prometheus-client`` is not installed the route answers 501 naming the extra to install;
the server runs as well without it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from ...extras import install_hint
from .deps import authorized, server

if TYPE_CHECKING:
    from ..app import Server
    from ..metrics import Metrics

log = logging.getLogger("netrun.serve")

router = APIRouter(tags=["metrics"])


def metrics_for(held: Server) -> Metrics | None:
    """The server's metrics, or None: off (``NETRUN_METRICS=off``), or prometheus-client not
    installed (the route then says what to install; the server runs without them)."""
    if held.settings.metrics == "off":
        return None
    try:
        from ..metrics import Metrics
    except ModuleNotFoundError as exc:
        if exc.name != "prometheus_client":
            raise
        log.info("GET /metrics answers 501: prometheus-client is not installed (%s)", install_hint("metrics"))
        return None
    engine = held.engine
    return Metrics(held.journal, lambda: list(held.catalog.current), engine.gate, lambda: len(held.local.stalled))


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request, held: Server = Depends(server)) -> Response:
    """The metrics in the Prometheus text format; 401 without the token (unless public),
    404 when metrics are off, 501 when prometheus-client is not installed."""
    mode = held.settings.metrics
    if mode != "public":
        authorized(request, held)
    if mode == "off":
        raise HTTPException(404, "metrics are off on this server (NETRUN_METRICS=off); set it to token or public to serve them")
    if held.metrics is None:
        raise HTTPException(501, f"metrics need prometheus-client, which is not installed: {install_hint('metrics')}")
    return Response(held.metrics.render(), media_type=held.metrics.content_type)
