"""One MCP server within a run: its session, its tools, its calls and its one reconnect."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
import httpx2
from mcp import ClientSession, MCPError, types

from ...envrefs import MissingEnvError
from ...runtime.tooling import ToolOutcome
from ...spec.base import parse_duration
from ...spec.mcp import McpServerSpec, StdioServer
from .failures import connect_failure, describe, spawn_failure
from .results import format_result
from .session import Attempt, Opener, end_session, run_session
from .tool import McpTool, face, offered, resendable, why_unavailable
from .transports import opener

if TYPE_CHECKING:
    from .servers import McpServers

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0
"""Seconds a ping may take when deciding whether a connection that failed a call is dead."""


class _SuspectError(Exception):
    """A call failed in a way that may mean the session is gone (not a tool error, not a
    timeout); a ping decides. ``message`` is what the model reads if the session is fine."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class McpConnection:
    """One MCP server within a run: its session, its tools, its one allowed reconnect."""

    def __init__(self, name: str, spec: McpServerSpec, owner: McpServers) -> None:
        self.name = name
        self.spec = spec
        self._owner = owner
        self._lock = anyio.Lock()
        self._live: Attempt | None = None
        self._generation = 0
        self._reconnects_left = 1
        self._listing: list[types.Tool] | None = None
        self._tools: dict[str, McpTool] = {}
        self._secrets = owner.secrets
        self.error: str | None = None
        """Why the server is unavailable for the rest of the run (``None`` while it is usable)."""
        self.missing: str | None = None
        """Why the server's program cannot be started at all: asking for its tools fails the run."""
        self.lost_stderr = ""
        """The stderr note (redacted) of the session lost last, quoted when a call it cut is not re-sent."""
        self.sessions_opened = 0
        """How many sessions this run opened to the server (1, or 2 after a reconnect)."""
        self.timeout = parse_duration(spec.timeout).total_seconds()
        self.connect_timeout = parse_duration(spec.connect_timeout).total_seconds()

    # -- description ----------------------------------------------------------------

    @property
    def transport(self) -> str:
        return self.spec.transport

    @property
    def label(self) -> str:
        """``MCP server 'docs' (stdio: node)``: names the server, its transport and its target
        as written in the network file, so ``${SECRET}`` references stay unresolved."""
        target = self.spec.command if isinstance(self.spec, StdioServer) else self.spec.url
        return f"MCP server '{self.name}' ({self.transport}: {target})"

    def _redact(self, text: str) -> str:
        return self._secrets.redact(text)

    # -- tools ------------------------------------------------------------------------

    @property
    def listing(self) -> list[types.Tool] | None:
        """The server's tools as it first listed them (``None`` before, or when it is down)."""
        return self._listing

    async def tools(self) -> list[McpTool]:
        """The server's tools after include/exclude, in the server's order (connects if needed).

        An empty list when the server is unavailable; :attr:`error` says why.
        """
        await self._session()
        if self._listing is None:
            return []
        return [self._tool(tool.name) for tool in self._listing if offered(self.spec, tool.name)]

    async def tool(self, remote_name: str) -> McpTool:
        """The tool ``remote_name`` of this server, for an explicit ``server.tool`` reference.

        Never fails: when the server is unavailable or does not offer the tool, the returned
        tool's calls answer with the reason, so the model hears it instead of the run crashing.
        """
        await self._session()
        return self._tool(remote_name)

    def _tool(self, remote_name: str) -> McpTool:
        if remote_name in self._tools:
            return self._tools[remote_name]
        source = next((t for t in self._listing or [] if t.name == remote_name), None)
        reason = why_unavailable(self, self._listing, source, remote_name)
        description, parameters = face(source, reason)
        tool = McpTool(
            name=self._owner._claim_name(self.name, remote_name),
            description=description,
            parameters=parameters,
            server=self.name,
            remote_name=remote_name,
            connection=self,
            unavailable=reason,
        )
        if self._listing is not None:  # a placeholder made before listing is not cached
            self._tools[remote_name] = tool
        return tool

    # -- calls --------------------------------------------------------------------------

    async def call(self, remote_name: str, args: Any) -> ToolOutcome:
        """Call ``remote_name`` with ``args`` within the server's ``timeout``; never raises.

        A protocol or transport failure is followed by a ping: if the session no longer
        answers (a stdio server that exited, an HTTP server that forgot our session) and this
        run has not used its one reconnect, the server is reconnected (a stdio server
        restarted). The call is then sent again only if the tool is safe to repeat
        (:meth:`resendable`); otherwise the result says the call may or may not have run.
        """
        if not isinstance(args, dict):
            return ToolOutcome.failure(f"the arguments of '{remote_name}' must be a JSON object, got {type(args).__name__}")
        for retry in range(2):
            live, generation = await self._session()
            if live is None or live.session is None:
                return ToolOutcome.failure(self.error or f"{self.label} is unavailable")
            try:
                return await self._call_once(live, remote_name, args)
            except _SuspectError as suspect:
                failed = ToolOutcome.failure(f"tool '{remote_name}' of {self.label} failed: {suspect.message}")
                if await self._alive(live.session):
                    return failed  # the session is fine: the server refused this call
                recovered = await self._recover(generation, suspect.message)
                if retry == 0 and not self.resendable(remote_name):
                    after = "it was restarted" if recovered else (self.error or f"{self.label} is down")
                    stderr = self.lost_stderr if recovered else ""  # else: self.error quotes it
                    return ToolOutcome.failure(
                        f"tool '{remote_name}' of {self.label}: the connection was lost during the call ({suspect.message}), "
                        f"so the call may or may not have run; it was not sent again, as the tool is not marked read-only "
                        f"or idempotent ({after}). Check its effect before calling it again{stderr}"
                    )
                if not recovered or retry == 1:
                    return ToolOutcome.failure(self.error) if self.error else failed
                log.warning(
                    "%s: connection lost (%s); reconnected, sending '%s' again (safe to repeat)",
                    self.label,
                    suspect.message,
                    remote_name,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(self, live: Attempt, remote_name: str, args: dict[str, Any]) -> ToolOutcome:
        assert live.session is not None
        seen = len(live.http_errors)
        try:
            with anyio.move_on_after(self.timeout) as scope, live.traced.call(remote_name, args):
                result = await live.session.call_tool(remote_name, args)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                return self._timed_out(remote_name)
            # Tool errors arrive as is_error results; an MCPError is the protocol or the
            # transport failing (CONNECTION_CLOSED, an HTTP status, a session the server forgot).
            status = f" ({live.http_errors[-1]})" if len(live.http_errors) > seen else ""
            raise _SuspectError(self._redact(exc.message) + status) from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError, httpx2.TransportError) as exc:
            raise _SuspectError(self._redact(describe(exc))) from exc
        except Exception as exc:  # a result the SDK rejects (output schema), input_required, ...
            return ToolOutcome.failure(f"tool '{remote_name}' of {self.label} failed: {self._redact(describe(exc))}")
        if scope.cancelled_caught:
            return self._timed_out(remote_name)
        return format_result(result, self.spec.max_bytes)

    def resendable(self, remote_name: str) -> bool:
        """Whether a call of ``remote_name`` cut by a lost connection may be sent again
        (:func:`~netrun.tools.mcp.tool.resendable`: the server's setting, then its annotations)."""
        return resendable(self.spec, self._listing, remote_name)

    def _timed_out(self, remote_name: str) -> ToolOutcome:
        return ToolOutcome.failure(f"tool '{remote_name}' of {self.label} did not answer within {self.spec.timeout}")

    async def _alive(self, session: ClientSession) -> bool:
        """Whether a session that just failed a call still answers a ping."""
        try:
            with anyio.move_on_after(PROBE_TIMEOUT):
                await session.send_ping()
                return True
        except Exception:
            pass
        return False

    # -- connecting ------------------------------------------------------------------------

    async def _session(self) -> tuple[Attempt | None, int]:
        """The live session (connecting on first use) and its generation, or ``None`` if down."""
        if self._live is None and self.error is None:
            async with self._lock:
                if self._live is None and self.error is None:
                    await self._connect()
        return self._live, self._generation

    async def _recover(self, generation: int, cause: str) -> bool:
        """Replace the dead session of ``generation`` if the run's one reconnect is left."""
        async with self._lock:
            if generation != self._generation or self.error is not None:  # dealt with already, or closed
                return self._live is not None
            dead, self._live = self._live, None
            stderr = self.lost_stderr = await self._end(dead)
            if self._reconnects_left <= 0:
                self.error = (
                    f"{self.label} is down: the connection was lost again after one reconnect in this run ({cause}){stderr}"
                )
                return False
            self._reconnects_left -= 1
            await self._connect()
            return self._live is not None

    async def _end(self, attempt: Attempt | None) -> str:
        """Close ``attempt`` politely; return its stderr tail for an error message."""
        if attempt is None:
            return ""
        await end_session(attempt)
        return self._stderr_note(attempt)

    def _stderr_note(self, attempt: Attempt) -> str:
        tail = attempt.stderr_tail.strip()
        return f"; its stderr ends with: {self._redact(tail)}" if tail else ""

    async def _connect(self) -> None:
        """Open a session in the manager's task group; on failure set :attr:`error`."""
        try:
            open_transport = opener(self.spec, self._owner.environ, self._owner.base_dir, self.connect_timeout)
        except MissingEnvError as exc:
            self.error = f"{self.label} is unavailable: {exc}"
            return
        attempt = Attempt()
        self._owner._task_group().start_soon(self._run, attempt, open_transport, name=f"mcp:{self.name}")
        try:
            with anyio.move_on_after(self.connect_timeout) as waited:
                await attempt.ready.wait()
        finally:
            if attempt.session is None:  # timed out, failed, or this caller was cancelled
                attempt.scope.cancel()
        if attempt.session is None:
            await attempt.done.wait()
            if waited.cancelled_caught:
                why = f"no answer within {self.spec.connect_timeout} (connect_timeout) while connecting and listing tools"
            else:
                why = connect_failure(attempt, self.spec, self._secrets)
                self.missing = spawn_failure(attempt, self.spec, self.name, self.label, self._owner.base_dir, self._secrets)
            self.error = f"{self.label} is unavailable: {why}{self._stderr_note(attempt)}"
            log.warning("%s", self.error)
            return
        self._live = attempt
        self._generation += 1
        self.sessions_opened += 1
        if self._listing is None:  # the first listing stays: the model already saw those tools
            self._listing = attempt.tools

    async def _run(self, attempt: Attempt, open_transport: Opener) -> None:
        """The session's task, started in the manager's task group (it outlives the caller)."""
        await run_session(attempt, open_transport, self._secrets, stdio=isinstance(self.spec, StdioServer))
