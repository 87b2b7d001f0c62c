"""The Inngest client of ``netrun serve``, made from its settings.

The engine that serves each network as an Inngest function is
:class:`netrun.engines.inngest.InngestEngine`; ``serve/app.py`` wires it to the catalog,
the journal and the run events.
"""

from __future__ import annotations

import logging

import inngest

from .settings import ServeSettings

log = logging.getLogger("netrun.serve")


def make_client(settings: ServeSettings) -> inngest.Inngest:
    """The SDK client for the configured Inngest server (dev or cloud), with netrun's log."""
    return inngest.Inngest(
        app_id=settings.app_id,
        is_production=settings.inngest_mode == "cloud",
        signing_key=settings.signing_key,
        event_key=settings.event_key or ("local" if settings.inngest_mode == "dev" else None),
        api_base_url=settings.api_base_url,
        event_api_base_url=settings.event_api_base_url,
        logger=log,
    )
