"""One session with an MCP server: the task that owns its transport, and its closing.

anyio (and so the MCP SDK) requires a transport to be entered and exited by the same task,
while tool calls come from whatever task the loop runs them in; so each session lives in a
task of its own (:func:`run_session`), which callers start, wait for and end through an
:class:`Attempt`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import IO, Any

import anyio
from mcp import ClientSession, types

from ... import __version__
from ...redact import Secrets
from .traced_calls import TracedCalls

_CLIENT_INFO = types.Implementation(name="netrun", version=__version__)

CLOSE_GRACE = 5.0
"""Seconds the manager waits for sessions to close politely (stdio: the SDK closes stdin, then
terminates the process group after 2 s); whatever is left is then cancelled."""
_STDERR_TAIL = 600
"""Characters of a stdio server's stderr quoted in an error message."""


@dataclass(eq=False)
class Attempt:
    """One session with a server: started by a caller, lived in the manager's task group."""

    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ready: anyio.Event = field(default_factory=anyio.Event)
    """Set when the session is up and listed, or when the attempt failed."""
    closing: anyio.Event = field(default_factory=anyio.Event)
    """Set to end the session politely."""
    done: anyio.Event = field(default_factory=anyio.Event)
    session: ClientSession | None = None
    tools: list[types.Tool] = field(default_factory=list)
    error: BaseException | None = None
    errlog: IO[bytes] | None = None
    """Where a stdio server's stderr goes; its tail is quoted (redacted) when the server fails."""
    stderr_tail: str = ""
    http_errors: list[str] = field(default_factory=list)
    """HTTP error statuses seen (streamable HTTP), which the SDK reduces to "an error response"."""
    traced: TracedCalls = field(default_factory=TracedCalls)
    """The trace context of the tools/calls in flight on this session (HTTP transports)."""


Opener = Callable[[Attempt], AbstractAsyncContextManager[Any]]
"""Opens a transport for an attempt, yielding ``(read_stream, write_stream)``."""


async def run_session(attempt: Attempt, opener: Opener, secrets: Secrets, *, stdio: bool) -> None:
    """The task that owns one session: enters the transport, waits, exits it (same task)."""
    if stdio:
        attempt.errlog = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, once its tail is read
    try:
        with attempt.scope:
            async with opener(attempt) as (read, write), ClientSession(read, write, client_info=_CLIENT_INFO) as session:
                await session.initialize()
                attempt.tools = await _list_tools(session)
                attempt.session = session
                attempt.ready.set()
                await attempt.closing.wait()
    except Exception as exc:
        attempt.error = exc
    finally:
        if attempt.errlog is not None:
            attempt.stderr_tail = _tail(attempt.errlog, secrets)
            attempt.errlog.close()
        attempt.ready.set()
        attempt.done.set()


async def end_session(attempt: Attempt) -> None:
    """Close ``attempt`` politely, then by cancellation after :data:`CLOSE_GRACE`."""
    attempt.closing.set()
    with anyio.move_on_after(CLOSE_GRACE):
        await attempt.done.wait()
    attempt.scope.cancel()
    await attempt.done.wait()


async def _list_tools(session: ClientSession) -> list[types.Tool]:
    """Every tool the server offers, following pagination."""
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def _tail(errlog: IO[bytes], secrets: Secrets) -> str:
    """The end of a server's stderr, redacted before it is cut: a secret crossing the cut
    would otherwise lose its first half to the cut and its second half would escape redaction."""
    try:
        # Up to 4 bytes a character; read as many more as the longest secret may span.
        size = errlog.seek(0, 2)
        start = max(0, size - (_STDERR_TAIL + secrets.longest) * 4)
        errlog.seek(start)
        text = errlog.read().decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return ""
    return secrets.tail(text, _STDERR_TAIL, starts_cut=start > 0)
