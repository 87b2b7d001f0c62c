"""The direct model client's HTTP connections: pooled per event loop, spread over several
httpx clients so that no one pool serves many requests at once.

httpcore's pool scans every queued request against every connection on each request and
response, so one client carrying N concurrent calls costs O(N^2): 200 runs calling at once
through one client burned 12 s of CPU for 1,000 calls (1.4 s when each client carries at
most 8). A lease takes a client with room, and makes one when all are busy; clients stay
open for keep-alive until the loop's :func:`close_clients`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

DEFAULT_TIMEOUT = 600.0
"""litellm's default for a call with no timeout of its own."""
PER_CLIENT = 8
"""Calls one httpx client carries at once before a lease opens another."""
_LIMITS = httpx.Limits(max_connections=PER_CLIENT * 2, max_keepalive_connections=PER_CLIENT * 2)


@dataclass
class _Client:
    http: httpx.AsyncClient
    busy: int = 0
    """Calls in flight on it."""


class _Pool:
    """The clients of one event loop for one kind of endpoint (TLS or plain http)."""

    def __init__(self, verify: ssl.SSLContext | bool) -> None:
        self.verify = verify
        self.clients: list[_Client] = []

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[httpx.AsyncClient]:
        held = next((c for c in self.clients if c.busy < PER_CLIENT and not c.http.is_closed), None)
        if held is None:
            held = _Client(httpx.AsyncClient(limits=_LIMITS, timeout=DEFAULT_TIMEOUT, verify=self.verify))
            self.clients.append(held)
        held.busy += 1
        try:
            yield held.http
        finally:
            held.busy -= 1

    async def close(self) -> None:
        for client in self.clients:
            await client.http.aclose()
        self.clients.clear()


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, _Pool]] = weakref.WeakKeyDictionary()
_TLS: ssl.SSLContext | None = None
"""One certificate store for every TLS client (loading it costs about 60 ms)."""


def lease(url: str) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    """A client for a call to ``url``, held for the call (``async with lease(url) as client``)."""
    global _TLS
    secure = not url.startswith("http://")
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    pool = pools.get(secure)
    if pool is None:
        if secure and _TLS is None:
            _TLS = httpx.create_ssl_context()
        # A plain-http client never makes a TLS connection (it follows no redirects): it
        # needs no certificate store.
        pool = pools[secure] = _Pool(_TLS if secure and _TLS is not None else False)
    return pool.lease()


async def close_clients() -> None:
    """Close this event loop's HTTP clients (call before the loop ends)."""
    for pool in _POOLS.pop(asyncio.get_running_loop(), {}).values():
        await pool.close()
