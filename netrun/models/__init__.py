"""Model clients: OpenAI-compatible models directly over httpx, litellm for the other
providers, scripted replies for offline runs and tests."""

from __future__ import annotations

import sys


async def close_clients() -> None:
    """Close the HTTP clients this event loop's model calls opened, direct and litellm's
    (call before the loop ends). Imports nothing that was not used."""
    if "netrun.models.http_pool" in sys.modules:
        from .http_pool import close_clients as close_direct

        await close_direct()
    if "netrun.models.litellm_client" in sys.modules:
        from .litellm_client import close_litellm_clients

        await close_litellm_clients()
