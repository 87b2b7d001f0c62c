"""MCP servers as sources of tools for one run.

A run opens one :class:`McpServers` for the ``mcp_servers`` of its network::

    async with McpServers(spec.mcp_servers, environ=os.environ, base_dir=network_dir) as servers:
        tools = await servers.resolve(["docs.search", "files.*"])   # list[McpTool]
        outcome = await tools[0].call({"query": "refunds"}, ctx)    # ToolOutcome, never raises

Choices, and why:

- **Lazy connection.** A server is connected the first time one of its tools is asked for
  (``tools_for``/``resolve``) or called. A run that never reaches the agent using a server
  never starts it, and an Inngest replay whose inference and tool steps are all memoized
  connects to nothing. ``await servers.connect()`` warms every server up concurrently when a
  caller prefers to pay the start-up before the first inference call.
- **One connection per server per run**, listed once; every call reuses it. Each connection
  lives in a task of its own, owned by the manager's task group: anyio (and so the MCP SDK)
  requires a transport to be entered and exited by the same task, while tool calls come from
  whatever task the loop runs them in (parallel tool calls included).
- **Failures are outcomes.** An ``is_error`` result, an unknown tool, bad arguments, a timeout,
  a lost connection or a server that cannot be reached become :class:`ToolOutcome` errors that
  the model reads. A connection failure is remembered for the rest of the run, so a dead
  server costs one ``connect_timeout``, not one per call.
- **One reconnect per server per run.** When a connection is found dead (a stdio server that
  exited, an HTTP session that is gone), the server is restarted (stdio) or reconnected once;
  the second loss marks the server down for the run. The interrupted call may or may not have
  run, so it is sent again only when the tool is safe to repeat (the server's ``readOnlyHint``
  or ``idempotentHint`` annotation, or the server's ``idempotent`` setting in the network
  file); otherwise its result is an error saying so, and the model decides.
- **A missing program fails the run.** A stdio server whose ``command`` cannot be found (or
  started) is a broken installation, not a transient fault: asking for its tools raises
  :class:`McpServerMissingError` (a ``RunError``), naming the command.
- **Secrets never leak.** ``${ENV}`` references in command, args, env, cwd, url and headers are
  resolved at connect time; error messages name the server and its transport with the values
  *as written* (``${TOKEN}``, not the token), and any resolved value that still reaches a message
  (an exception quoting a URL, a server's stderr) is replaced by ``***``.

Function names shown to the model are ``{server}__{tool}`` (see :func:`function_name`).
The manager must be entered and exited by one task (``async with``); its tools may be called
from any task while it is open.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import anyio
import httpx2
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from .. import __version__
from ..envrefs import MissingEnvError, resolve
from ..redact import Secrets
from ..runtime.network import RunError
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec.base import parse_duration
from ..spec.mcp import McpServerSpec, StdioServer, WsServer
from .naming import UNSAFE, digest, function_name

__all__ = ["McpConnection", "McpServerMissingError", "McpServers", "McpTool", "format_result", "function_name"]

log = logging.getLogger(__name__)

_CLIENT_INFO = types.Implementation(name="netrun", version=__version__)

_Opener = Callable[["_Attempt"], AbstractAsyncContextManager[Any]]
"""Opens a transport for an attempt, yielding ``(read_stream, write_stream)``."""


CLOSE_GRACE = 5.0
"""Seconds the manager waits for sessions to close politely (stdio: the SDK closes stdin, then
terminates the process group after 2 s); whatever is left is then cancelled."""
PROBE_TIMEOUT = 2.0
"""Seconds a ping may take when deciding whether a connection that failed a call is dead."""
SSE_READ_TIMEOUT = 3600.0
"""Seconds an SSE stream may stay silent; a run may idle while a model thinks or a human answers."""
_STDERR_TAIL = 600
"""Characters of a stdio server's stderr quoted in an error message."""


# ---------------------------------------------------------------------------------------
# Results


MAX_BYTES = 1_000_000
"""Default of ``mcp_servers.<name>.max_bytes``: the largest result kept (as the HTTP tool's)."""


def format_result(result: types.CallToolResult, max_bytes: int = MAX_BYTES) -> ToolOutcome:
    """What the model sees of a ``tools/call`` result.

    Structured content, when the server sends it, is the result (it is the machine-readable
    form the server promises through its output schema). Otherwise the text parts are joined
    with newlines and other parts are described in one bracketed line each (an image's bytes
    mean nothing to a text model and would bloat every later prompt). A single text part is
    returned as a plain string.

    A result larger than ``max_bytes`` (its text, or its structured content as JSON) is cut
    there, as text ending in a note that says so: the model, the journal and the run's
    events never get the whole of it.
    """
    if result.is_error:
        text = _content_text(result.content, max_bytes)
        return ToolOutcome.failure(text or "the tool reported an error without a message")
    if result.structured_content is not None:
        head = _json_head(result.structured_content, max_bytes)
        return ToolOutcome(result=result.structured_content if head is None else head)
    return ToolOutcome(result=_content_text(result.content, max_bytes))


def _cut_note(size: int | None, max_bytes: int) -> str:
    whole = f"is {size} bytes" if size is not None else "is larger"
    return (f"\n[truncated by netrun: the result {whole}, over this MCP server's limit of {max_bytes} bytes "
            f"(mcp_servers.<name>.max_bytes); only its first {max_bytes} bytes are shown. Ask the tool for less.]")


def _content_text(content: Iterable[Any], max_bytes: int = MAX_BYTES) -> str:
    """The parts' text, joined with newlines; cut at ``max_bytes`` (UTF-8) with a note."""
    kept: list[str] = []
    used = total = 0
    for i, part in enumerate(content):
        text = ("\n" if i else "") + _describe_part(part)
        size = len(text.encode())
        total += size
        if used + size <= max_bytes:
            kept.append(text)
            used += size
        elif used < max_bytes:
            kept.append(text.encode()[: max_bytes - used].decode(errors="ignore"))
            used = max_bytes
    if total <= max_bytes:
        return "".join(kept)
    return "".join(kept) + _cut_note(total, max_bytes)


def _json_head(value: Any, max_bytes: int) -> str | None:
    """None when ``value`` as JSON fits in ``max_bytes``; else its first ``max_bytes`` bytes
    with a note (encoded piece by piece: the whole text is never made)."""
    pieces: list[str] = []
    used = 0
    for piece in json.JSONEncoder(ensure_ascii=False, default=str).iterencode(value):
        pieces.append(piece)
        used += len(piece.encode())
        if used > max_bytes:
            head = "".join(pieces).encode()[:max_bytes].decode(errors="ignore")
            return head + _cut_note(None, max_bytes)
    return None


def _describe_part(part: Any) -> str:
    if isinstance(part, types.TextContent):
        return part.text
    if isinstance(part, types.ImageContent | types.AudioContent):
        kind = "image" if isinstance(part, types.ImageContent) else "audio"
        return f"[{kind}: {part.mime_type}, {len(part.data) * 3 // 4} bytes]"
    if isinstance(part, types.EmbeddedResource):
        res = part.resource
        if isinstance(res, types.TextResourceContents):
            return f"[resource {res.uri}]\n{res.text}"
        return f"[resource {res.uri}: {res.mime_type or 'binary'}, {len(res.blob) * 3 // 4} bytes]"
    if isinstance(part, types.ResourceLink):
        return f"[resource link {part.uri}: {part.name}]"
    return f"[{getattr(part, 'type', type(part).__name__)} content]"


# ---------------------------------------------------------------------------------------
# Tools


@dataclass
class McpTool:
    """One tool of an MCP server, as the model sees it and as the loop calls it (a ``Tool``)."""

    name: str
    """The function name shown to the model (:func:`function_name`)."""
    description: str
    parameters: dict[str, Any]
    """The server's input schema (JSON Schema), passed through."""
    server: str
    remote_name: str
    """The tool's name on the server."""
    connection: McpConnection = field(repr=False)
    unavailable: str | None = None
    """Why this tool cannot run (server down, tool not offered); calls return it as an error."""

    @property
    def tool(self) -> str:
        """The tool's name on the server (as in an agent's ``server.tool`` reference)."""
        return self.remote_name

    async def call(self, args: dict[str, Any], ctx: ToolContext | None = None) -> ToolOutcome:
        """Call the tool on its server; failures come back as error outcomes, never raised."""
        if self.unavailable is not None:
            return ToolOutcome.failure(self.unavailable)
        return await self.connection.call(self.remote_name, args)


# ---------------------------------------------------------------------------------------
# One server


class _SuspectError(Exception):
    """A call failed in a way that may mean the session is gone (not a tool error, not a
    timeout); a ping decides. ``message`` is what the model reads if the session is fine."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(eq=False)
class _Attempt:
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


class McpConnection:
    """One MCP server within a run: its session, its tools, its one allowed reconnect."""

    def __init__(self, name: str, spec: McpServerSpec, owner: McpServers) -> None:
        self.name = name
        self.spec = spec
        self._owner = owner
        self._lock = anyio.Lock()
        self._live: _Attempt | None = None
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

    async def tools(self) -> list[McpTool]:
        """The server's tools after include/exclude, in the server's order (connects if needed).

        An empty list when the server is unavailable; :attr:`error` says why.
        """
        await self._session()
        if self._listing is None:
            return []
        return [self._tool(tool.name) for tool in self._listing if self._offered(tool.name)]

    async def tool(self, remote_name: str) -> McpTool:
        """The tool ``remote_name`` of this server, for an explicit ``server.tool`` reference.

        Never fails: when the server is unavailable or does not offer the tool, the returned
        tool's calls answer with the reason, so the model hears it instead of the run crashing.
        """
        await self._session()
        return self._tool(remote_name)

    def _offered(self, remote_name: str) -> bool:
        spec = self.spec
        return remote_name not in spec.exclude and (spec.include is None or remote_name in spec.include)

    def _tool(self, remote_name: str) -> McpTool:
        if remote_name in self._tools:
            return self._tools[remote_name]
        listed = {t.name: t for t in self._listing or []}
        source = listed.get(remote_name)
        reason: str | None = None
        if self._listing is None:
            reason = self.error or f"{self.label} is not connected"
        elif source is None:
            offered = ", ".join(t.name for t in self._listing if self._offered(t.name))
            reason = f"{self.label} has no tool '{remote_name}' (it offers: {offered or 'none'})"
        elif not self._offered(remote_name):
            reason = f"tool '{remote_name}' of {self.label} is not offered (mcp_servers.{self.name}.include/exclude)"
        if source is not None:
            description = source.description or source.title or ""
            parameters = dict(source.input_schema)
            parameters.setdefault("type", "object")
        else:
            description, parameters = f"Unavailable: {reason}", {"type": "object", "properties": {}}
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
                log.warning("%s: connection lost (%s); reconnected, sending '%s' again (safe to repeat)", self.label, suspect.message, remote_name)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(self, live: _Attempt, remote_name: str, args: dict[str, Any]) -> ToolOutcome:
        assert live.session is not None
        seen = len(live.http_errors)
        try:
            with anyio.move_on_after(self.timeout) as scope:
                result = await live.session.call_tool(remote_name, args)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                return self._timed_out(remote_name)
            # Tool errors arrive as is_error results; an MCPError is the protocol or the
            # transport failing (CONNECTION_CLOSED, an HTTP status, a session the server forgot).
            status = f" ({live.http_errors[-1]})" if len(live.http_errors) > seen else ""
            raise _SuspectError(self._redact(exc.message) + status) from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError, httpx2.TransportError) as exc:
            raise _SuspectError(self._redact(_describe(exc))) from exc
        except Exception as exc:  # a result the SDK rejects (output schema), input_required, ...
            return ToolOutcome.failure(f"tool '{remote_name}' of {self.label} failed: {self._redact(_describe(exc))}")
        if scope.cancelled_caught:
            return self._timed_out(remote_name)
        return format_result(result, self.spec.max_bytes)

    def resendable(self, remote_name: str) -> bool:
        """Whether a call of ``remote_name`` interrupted by a lost connection may be sent
        again: the server's ``idempotent`` setting decides when it is ``true``/``false``;
        otherwise a tool it lists, or one the server annotates ``readOnlyHint`` or
        ``idempotentHint``, is safe."""
        declared = self.spec.idempotent
        if isinstance(declared, bool):
            return declared
        if declared and remote_name in declared:
            return True
        source = next((t for t in self._listing or [] if t.name == remote_name), None)
        hints = source.annotations if source is not None else None
        return bool(hints is not None and (hints.read_only_hint or hints.idempotent_hint))

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

    async def _session(self) -> tuple[_Attempt | None, int]:
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

    async def _end(self, attempt: _Attempt | None) -> str:
        """Close ``attempt`` politely; return its stderr tail for an error message."""
        if attempt is None:
            return ""
        attempt.closing.set()
        with anyio.move_on_after(CLOSE_GRACE):
            await attempt.done.wait()
        attempt.scope.cancel()
        await attempt.done.wait()
        return self._stderr_note(attempt)

    def _stderr_note(self, attempt: _Attempt) -> str:
        tail = attempt.stderr_tail.strip()
        return f"; its stderr ends with: {self._redact(tail)}" if tail else ""

    async def _connect(self) -> None:
        """Open a session in the manager's task group; on failure set :attr:`error`."""
        try:
            opener = self._opener()
        except MissingEnvError as exc:
            self.error = f"{self.label} is unavailable: {exc}"
            return
        attempt = _Attempt()
        self._owner._task_group().start_soon(self._run, attempt, opener, name=f"mcp:{self.name}")
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
                why = self._connect_failure(attempt)
                self.missing = self._missing(attempt)
            self.error = f"{self.label} is unavailable: {why}{self._stderr_note(attempt)}"
            log.warning("%s", self.error)
            return
        self._live = attempt
        self._generation += 1
        self.sessions_opened += 1
        if self._listing is None:  # the first listing stays: the model already saw those tools
            self._listing = attempt.tools

    def _missing(self, attempt: _Attempt) -> str | None:
        """Why a stdio server's program cannot be started at all (not found, not executable,
        no such working directory), or ``None``: that failure is not transient."""
        if not isinstance(self.spec, StdioServer) or attempt.error is None:
            return None
        spawn = next((e for e in _leaves(attempt.error) if isinstance(e, FileNotFoundError | PermissionError | NotADirectoryError)), None)
        if spawn is None:
            return None
        command, where = self.spec.command, f"mcp_servers.{self.name}"
        if isinstance(spawn, FileNotFoundError) and self.spec.cwd is not None and not (self._owner.base_dir / self.spec.cwd).is_dir():
            return f"{self.label} cannot start: its working directory '{self.spec.cwd}' does not exist ({where}.cwd)"
        if isinstance(spawn, FileNotFoundError):
            return (f"{self.label} cannot start: the command '{command}' was not found "
                    f"(is it installed and on PATH? see {where}.command)")
        return f"{self.label} cannot start the command '{command}': {self._redact(_describe(spawn))} ({where}.command)"

    def _connect_failure(self, attempt: _Attempt) -> str:
        exc = attempt.error
        if exc is None or all(isinstance(e, MCPError) and e.code == types.CONNECTION_CLOSED for e in _leaves(exc)):
            why = (
                "the process exited or closed its output before answering"
                if isinstance(self.spec, StdioServer)
                else "the server closed the connection while connecting"
            )
        else:
            why = self._redact(_describe(exc))
        return f"{why} ({attempt.http_errors[-1]})" if attempt.http_errors else why

    async def _run(self, attempt: _Attempt, opener: _Opener) -> None:
        """The task that owns one session: enters the transport, waits, exits it (same task)."""
        if isinstance(self.spec, StdioServer):
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
                attempt.stderr_tail = _tail(attempt.errlog, self._secrets)
                attempt.errlog.close()
            attempt.ready.set()
            attempt.done.set()

    # -- transports ------------------------------------------------------------------------

    def _resolve(self, text: str) -> str:
        """Resolve ``${ENV}`` references now (their values are among the owner's secrets:
        it is made from every reference of the servers' specs)."""
        return resolve(text, self._owner.environ)

    def _opener(self) -> _Opener:
        """A function opening the transport, with every reference resolved (may raise MissingEnvError)."""
        spec = self.spec
        if isinstance(spec, StdioServer):
            cwd = Path(self._resolve(spec.cwd)) if spec.cwd is not None else Path()
            params = StdioServerParameters(
                command=self._resolve(spec.command),
                args=[self._resolve(a) for a in spec.args],
                env={k: self._resolve(v) for k, v in spec.env.items()} or None,
                # Relative to the network file, as every path in it; by default its directory,
                # so `node ./server.js` works wherever netrun was started.
                cwd=str(self._owner.base_dir / cwd),
            )
            return lambda attempt: stdio_client(params, errlog=attempt.errlog)  # type: ignore[arg-type]
        url = self._resolve(spec.url)
        headers = {k: self._resolve(v) for k, v in spec.headers.items()}
        if spec.transport == "sse":
            return lambda _: sse_client(url, headers=headers, timeout=self.connect_timeout, sse_read_timeout=SSE_READ_TIMEOUT)
        if spec.transport == "streamable-http":
            return lambda attempt: _streamable_http(url, headers, self.connect_timeout, attempt.http_errors)
        assert isinstance(spec, WsServer)
        return lambda _: _websocket(url, headers, self.connect_timeout)


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


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``[exc]``."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _describe(exc: BaseException) -> str:
    """A one-line account of an exception: the leaves of a group, type and message."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_describe(leaf) for leaf in _leaves(exc)))
    if isinstance(exc, MCPError):
        return exc.message
    message = str(exc).strip().partition("\n")[0]  # httpx adds a line with a documentation link
    kind = type(exc).__name__
    return f"{kind}: {message}" if message else kind


@asynccontextmanager
async def _streamable_http(
    url: str, headers: dict[str, str], connect_timeout: float, http_errors: list[str]
) -> AsyncIterator[Any]:
    """``streamable_http_client`` with our headers; we own the HTTP client, so we close it.

    HTTP error statuses are noted in ``http_errors``: the SDK turns a 401 into "Server returned
    an error response", and the status is what a user needs to fix a token.
    """

    async def note(response: httpx2.Response) -> None:
        if response.status_code >= 400 and response.request.method != "DELETE":
            http_errors.append(f"HTTP {response.status_code} {response.reason_phrase}".strip())

    timeout = httpx2.Timeout(connect_timeout, read=SSE_READ_TIMEOUT)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks={"response": [note]}) as client,
        streamable_http_client(url, http_client=client) as (read, write),
    ):
        yield read, write


@asynccontextmanager
async def _websocket(url: str, headers: dict[str, str], connect_timeout: float) -> AsyncIterator[Any]:
    """MCP over a websocket (subprotocol ``mcp``, one JSON-RPC message per text frame).

    mcp 2.x dropped the websocket client that 1.x had (``mcp.client.websocket``), so this is
    a small one on aiohttp, which is already installed as a dependency of litellm. aiohttp
    runs on asyncio only, as netrun does.
    """
    import aiohttp  # only runs that use a websocket server pay for the import

    async def receive(
        ws: aiohttp.ClientWebSocketResponse, read_writer: MemoryObjectSendStream[SessionMessage | Exception]
    ) -> None:
        # Ending (socket closed, or the session gone) closes the read stream: the session
        # then sees the connection end, and pending requests fail with CONNECTION_CLOSED.
        async with read_writer:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue  # aiohttp answers pings itself; close and error frames end the loop
                try:
                    item: SessionMessage | Exception = SessionMessage(
                        types.jsonrpc_message_adapter.validate_json(frame.data, by_name=False)
                    )
                except ValueError as exc:
                    item = exc
                try:
                    await read_writer.send(item)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return

    async def send(
        ws: aiohttp.ClientWebSocketResponse,
        write_reader: MemoryObjectReceiveStream[SessionMessage],
        read_writer: MemoryObjectSendStream[SessionMessage | Exception],
    ) -> None:
        try:
            async with write_reader:
                async for item in write_reader:
                    await ws.send_str(item.message.model_dump_json(by_alias=True, exclude_unset=True))
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            await read_writer.aclose()  # a socket we cannot write to is a lost connection

    timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
    async with (
        aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(connect=connect_timeout)) as http,
        http.ws_connect(url, protocols=("mcp",), timeout=timeout) as ws,
    ):
        # Created once connected, so that a failed connect leaves no stream unclosed.
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
        async with read_writer, read_stream, write_stream, write_reader, anyio.create_task_group() as tg:
            tg.start_soon(receive, ws, read_writer)
            tg.start_soon(send, ws, write_reader, read_writer)
            try:
                yield read_stream, write_stream
            finally:
                tg.cancel_scope.cancel()


# ---------------------------------------------------------------------------------------
# All servers of a run


class McpServerMissingError(RunError):
    """A server the run needs cannot be started: its program is not installed (or not
    executable). The run fails with this message instead of the model working without tools."""


class McpServers:
    """The MCP servers of one run: connected on first use, closed together.

    ``specs`` is the network's ``mcp_servers``; ``environ`` is where ``${ENV}`` references are
    resolved (at connect time); ``base_dir`` is the network file's directory, against which a
    relative ``cwd`` is taken (and the default ``cwd`` of stdio servers).
    """

    def __init__(self, specs: Mapping[str, McpServerSpec], *, environ: Mapping[str, str], base_dir: Path | str) -> None:
        self.environ = environ
        self.base_dir = Path(base_dir)
        # Every server's references (and credential-named variables): one server may print a
        # secret another was given, and a stderr tail must be redacted before it is cut.
        self.secrets = Secrets.for_definition({n: s.model_dump(mode="json") for n, s in specs.items()}, environ)
        self.connections: dict[str, McpConnection] = {name: McpConnection(name, spec, self) for name, spec in specs.items()}
        self._names: dict[str, tuple[str, str]] = {}
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> McpServers:
        if self._tg is not None:
            raise RuntimeError("McpServers is already open")
        async with AsyncExitStack() as stack:
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every session and stop every stdio server (politely, then by cancellation)."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        # Shielded: a run being cancelled must still stop its servers. The manager's task
        # group is exited outside the shield, as cancel scopes must unwind in order.
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for conn in self.connections.values():
                    dead, conn._live = conn._live, None
                    if conn.error is None:
                        conn.error = f"{conn.label} is closed: the run's MCP connections were shut down"
                    tg.start_soon(conn._end, dead)
        assert self._tg is not None
        self._tg.cancel_scope.cancel()  # only a connect still under way is left; cut it short
        self._tg = None
        await stack.aclose()

    def _task_group(self) -> TaskGroup:
        if self._tg is None:
            raise RuntimeError("McpServers must be open (async with McpServers(...) as servers) before use")
        return self._tg

    def _claim_name(self, server: str, tool: str) -> str:
        """The function name for a tool, unique among this run's MCP tools."""
        name = function_name(server, tool)
        owner = self._names.setdefault(name, (server, tool))
        if owner != (server, tool):  # e.g. server 'a__b' tool 'c' and server 'a' tool 'b__c'
            name = f"{UNSAFE.sub('_', f'{server}__{tool}')[:55]}_{digest(server, tool)}"
            self._names[name] = (server, tool)
        return name

    # -- public -------------------------------------------------------------------------

    def connection(self, server: str) -> McpConnection:
        """The connection to ``server``; raises ``KeyError`` for a server the network does not declare."""
        try:
            return self.connections[server]
        except KeyError:
            raise KeyError(f"no MCP server '{server}' in this network") from None

    async def connect(self, *servers: str) -> dict[str, str | None]:
        """Connect to ``servers`` (default: all) concurrently; returns each one's error or ``None``.

        Optional: servers connect on first use anyway. Never raises for a server that cannot
        be reached.
        """
        conns = [self.connection(name) for name in servers or self.connections]
        async with anyio.create_task_group() as tg:
            for conn in conns:
                tg.start_soon(conn._session)
        return {conn.name: conn.error for conn in conns}

    async def tools_for(self, server: str, tool: str = "*") -> list[McpTool]:
        """The tools an agent reference ``server.tool`` or ``server.*`` stands for.

        ``*`` gives the server's offered tools (after include/exclude), or ``[]`` when the
        server is unavailable (see :meth:`error`). A named tool always gives one tool: when the
        server is down or does not offer it, calling that tool returns the reason as an error.
        """
        conn = self.connection(server)
        found = await conn.tools() if tool == "*" else [await conn.tool(tool)]
        if conn.missing is not None:
            raise McpServerMissingError(conn.missing)
        return found

    async def resolve(self, refs: Iterable[str]) -> list[McpTool]:
        """The tools for an agent's MCP references, in order, each once.

        A reference is ``server.tool``, ``server.*`` or a bare ``server`` (an entry of the
        agent's ``mcp_servers``: all its tools). Servers are connected concurrently.
        """
        parsed: list[tuple[str, str]] = []
        for ref in refs:
            server, dot, tool = ref.partition(".")
            parsed.append((server, tool if dot else "*"))
        if not parsed:
            return []
        await self.connect(*dict.fromkeys(server for server, _ in parsed))
        out: dict[str, McpTool] = {}
        for server, tool in parsed:
            for t in await self.tools_for(server, tool):
                out.setdefault(t.name, t)
        return list(out.values())

    def error(self, server: str) -> str | None:
        """Why ``server`` is unavailable in this run, or ``None``."""
        return self.connection(server).error
