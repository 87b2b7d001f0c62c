"""All MCP servers of one run: connected on first use, closed together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

from ...redact import Secrets
from ...runtime.network import RunError
from ...runtime.tooling import Tool
from ...spec.mcp import McpServerSpec
from ..naming import UNSAFE, digest, function_name
from .connection import McpConnection
from .gating import gate
from .tool import McpTool


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
        self._gated: dict[str, Tool] = {}
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

    async def resolve(self, refs: Iterable[str]) -> list[Tool]:
        """The tools for an agent's MCP references, in order, each once.

        A reference is ``server.tool``, ``server.*`` or a bare ``server`` (an entry of the
        agent's ``mcp_servers``: all its tools). Servers are connected concurrently. A tool
        its server's ``approval`` gates comes behind that approval (:mod:`.gating`).
        """
        parsed: list[tuple[str, str]] = []
        for ref in refs:
            server, dot, tool = ref.partition(".")
            parsed.append((server, tool if dot else "*"))
        if not parsed:
            return []
        await self.connect(*dict.fromkeys(server for server, _ in parsed))
        out: dict[str, Tool] = {}
        for server, tool in parsed:
            for t in await self.tools_for(server, tool):
                out.setdefault(t.name, self._gate(t))
        return list(out.values())

    def _gate(self, tool: McpTool) -> Tool:
        """``tool`` behind its server's approval where that gates it (one wrapper per tool)."""
        if tool.name in self._gated:
            return self._gated[tool.name]
        listing = tool.connection.listing
        gated = gate(tool, listing)
        if listing is not None:  # the gating of a server not listed yet may change when it is
            self._gated[tool.name] = gated
        return gated

    def error(self, server: str) -> str | None:
        """Why ``server`` is unavailable in this run, or ``None``."""
        return self.connection(server).error
