"""The direct model client's HTTP connections: one aiohttp session per event loop.

aiohttp rather than httpx (netrun's HTTP client elsewhere): measured on the fake model
server, 200 runs calling at once (1,000 calls, 100 ms each) cost httpx 12 s of CPU through
one client (httpcore's pool scans every queued request against every connection on each
event: quadratic in the calls in flight) and 1.4 s spread over clients of 8 calls each;
aiohttp 0.25 s, with 0.68 s of wall time against the 0.5 s ideal. A run's model calls are
netrun's hottest path, so they take the cheaper client; aiohttp is installed with litellm
already. Sessions stay open for keep-alive until the loop's :func:`close_clients`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import weakref
from collections.abc import AsyncGenerator

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

DEFAULT_TIMEOUT = 600.0
"""litellm's default for a call with no timeout of its own."""
MAX_CONNECTIONS = 1000
"""Connections one loop's session keeps open at most (many concurrent runs share it)."""


class _Pool:
    """One event loop's session, and the proxies its requests go through."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT),
            # Proxies come from :func:`proxy_for`: aiohttp's own trust_env looks them up in a
            # thread on every request, a thread hop per model call (1,000 of them cost 200
            # concurrent runs a quarter of their CPU).
            trust_env=False,
            auto_decompress=True,
        )
        self.proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]] = {}
        # Closed with its loop when nobody called close_clients(): asyncio.run() closes the
        # loop's suspended async generators as it shuts down, and this one's `finally` closes
        # the session there, while its sockets can still be closed (else each left open warns
        # "Unclosed client session" when it is collected, and holds its connections till then).
        self.closer = _closed_at_shutdown(self.session)
        self.closing = asyncio.ensure_future(self.closer.__anext__())  # starts it (the loop tracks started ones)


async def _closed_at_shutdown(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await session.close()


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    held = _POOLS.get(loop)
    if held is None or held.session.closed:
        held = _POOLS[loop] = _Pool()
    return held


def session() -> aiohttp.ClientSession:
    """This event loop's session (a session's connections belong to the loop that opened them)."""
    return _pool().session


_PROXY_VARIABLES = tuple(n for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for n in (name, name.upper()))
"""What decides a request's proxy."""


def proxy_for(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy (and its credentials) a request to ``url`` goes through: ``HTTPS_PROXY``,
    ``HTTP_PROXY`` and ``NO_PROXY`` as httpx and the openai SDK read them (aiohttp's
    ``trust_env`` rules, including ``~/.netrc`` for proxy credentials). Read once per
    endpoint for the loop's session, as an httpx client reads them when it is made: reading
    eight variables from the environment cost each model call more than its headers."""
    proxies = _pool().proxies
    found = proxies.get(url)
    if found is None:
        if len(proxies) >= 256:  # bounded: an api_base may come from the environment
            proxies.clear()
        found = proxies[url] = _proxy(tuple(os.environ.get(n) for n in _PROXY_VARIABLES), url)
    return found


@functools.lru_cache(maxsize=256)
def _proxy(environment: tuple[str | None, ...], url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None


async def close_clients() -> None:
    """Close this event loop's session (call before the loop ends)."""
    held = _POOLS.pop(asyncio.get_running_loop(), None)
    if held is not None:
        held.closing.cancel()  # not yet run: it would start a closed generator, and fail
        await held.closer.aclose()  # closes the session if the closer had started
        await held.session.close()  # and if it had not
