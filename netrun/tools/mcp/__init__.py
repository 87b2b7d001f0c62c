"""MCP servers as sources of tools for one run.

A run opens one :class:`McpServers` for the ``mcp_servers`` of its network::

    async with McpServers(spec.mcp_servers, environ=os.environ, base_dir=network_dir) as servers:
        tools = await servers.resolve(["docs.search", "files.*"])   # list[Tool]: McpTool, or behind its approval
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

The package, by what each module holds: :mod:`.servers` (all servers of a run),
:mod:`.connection` (one server: calls, reconnect), :mod:`.session` (the task owning one
session), :mod:`.transports` (stdio, SSE, streamable HTTP, websocket), :mod:`.tool` (a tool
as the model sees it; whether a call may be re-sent), :mod:`.gating` (which tools wait
for a human's approval: the server's ``approval``), :mod:`.results` (result text and
``max_bytes``), :mod:`.failures` (how failures are told).
"""

from ..naming import function_name
from .connection import McpConnection
from .results import MAX_BYTES, format_result
from .servers import McpServerMissingError, McpServers
from .tool import McpTool

__all__ = ["MAX_BYTES", "McpConnection", "McpServerMissingError", "McpServers", "McpTool", "format_result", "function_name"]
