"""Trace context for the tools/calls an MCP session sends over HTTP (streamable HTTP, SSE):
each request carries the ``traceparent`` of the ``execute_tool`` span that made it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
from mcp.shared._httpx_utils import create_mcp_http_client

from ... import observe


class TracedCalls:
    """The trace context of each tools/call being sent on one session, by (tool, arguments).

    The MCP session posts its requests from its own task, whose context is the connection's,
    so the ``execute_tool`` span's context is handed to the HTTP client's request hook here.
    One registry per session (:class:`~.session.Attempt`): a call on another server, or in
    another run's session, can never take this one's context."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], list[dict[str, str]]] = {}

    @staticmethod
    def _key(name: str, args: Any) -> tuple[str, str]:
        return name, json.dumps(args, sort_keys=True, default=str)

    @contextmanager
    def call(self, name: str, args: dict[str, Any]) -> Iterator[None]:
        """Around a tools/call: its request carries the current trace context (a no-op when
        nothing traces). Calls alike in flight at once take their contexts in the order made."""
        if not observe.observed():
            yield
            return
        key = self._key(name, args)
        carrier = observe.carrier()
        self._waiting.setdefault(key, []).append(carrier)
        try:
            yield
        finally:
            waiting = self._waiting.get(key, [])
            if carrier in waiting:  # not sent (the session failed first)
                waiting.remove(carrier)
            if not waiting:
                self._waiting.pop(key, None)

    async def inject(self, request: httpx2.Request) -> None:
        """An httpx request hook: a tools/call request gets the ``traceparent`` of its call."""
        if not self._waiting or request.method != "POST":
            return
        try:
            message = json.loads(request.content or b"{}")
        except (ValueError, httpx2.RequestNotRead):
            return
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            return
        params = message.get("params") or {}
        waiting = self._waiting.get(self._key(str(params.get("name")), params.get("arguments") or {}))
        if waiting:
            request.headers.update(waiting.pop(0))

    def sse_client_factory(
        self, headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        """The SSE transport's HTTP client (the SDK's own), with the trace hook."""
        client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
        client.event_hooks["request"].append(self.inject)
        return client


__all__ = ["TracedCalls"]
