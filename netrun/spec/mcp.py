"""MCP servers: where tools come from at run time, over one of four transports."""


from typing import Annotated, Literal

from pydantic import Field

from .base import Duration, Spec


class McpBase(Spec):
    include: list[str] | None = None
    """Only these tools of the server are offered (default: all)."""
    exclude: list[str] = []
    """Tools of the server that are never offered."""
    timeout: Duration = "60s"
    """How long one tool call may take."""
    connect_timeout: Duration = "10s"
    """How long connecting and listing tools may take."""


class StdioServer(McpBase):
    """A server started as a child process, speaking over stdin/stdout."""

    transport: Literal["stdio"]
    """``stdio``: netrun starts ``command`` and talks over its stdin/stdout."""
    command: str
    """The program to start (``node``, ``uvx``, ``npx``, ...)."""
    args: list[str] = []
    """Its arguments; may use ``${ENV}`` references."""
    env: dict[str, str] = {}
    """Extra environment variables; put secrets in ``${ENV}`` references."""
    cwd: str | None = None
    """The working directory (relative to the network file)."""


class UrlServer(McpBase):
    url: str
    """The server URL; may use ``${ENV}`` references."""
    headers: dict[str, str] = {}
    """Headers sent with every request; put secrets in ``${ENV}`` references."""


class SseServer(UrlServer):
    """A server reached over HTTP with Server-Sent Events (the older MCP transport)."""

    transport: Literal["sse"]
    """``sse``: HTTP with Server-Sent Events."""


class StreamableHttpServer(UrlServer):
    """A server reached over MCP's streamable HTTP transport."""

    transport: Literal["streamable-http"]
    """``streamable-http``: MCP's current HTTP transport."""


class WsServer(UrlServer):
    """A server reached over a websocket."""

    transport: Literal["ws"]
    """``ws``: a websocket (``ws://`` or ``wss://``)."""


McpServerSpec = Annotated[
    StdioServer | SseServer | StreamableHttpServer | WsServer,
    Field(discriminator="transport"),
]
"""An MCP server; ``transport`` selects stdio, sse, streamable-http or ws."""

TRANSPORTS = ("stdio", "sse", "streamable-http", "ws")
