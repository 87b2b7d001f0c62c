"""MCP servers: where tools come from at run time, over one of four transports."""

from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import Field, Tag

from .base import Duration, Spec, by_shape, one_of
from .tools import ApprovalSpec, Saves


class McpApprovalSpec(ApprovalSpec):
    """Which of a server's tools a human approves, call by call, before they run."""

    tools: list[str] = []
    """Tools gated by their names on the server, or by ``fnmatch`` patterns (``edit_*``)."""
    destructive: bool = False
    """Also gate every tool the server may mark destructive, read as MCP's defaults say: a
    tool not annotated ``readOnlyHint: true`` whose ``destructiveHint`` is not ``false`` (so a
    tool without annotations is gated too)."""


McpApproval = Annotated[
    Annotated[Literal["required", "none"], Tag("text")] | Annotated[McpApprovalSpec, Tag("map")],
    one_of(
        "approval is 'required' (every tool), 'none' or a mapping with 'tools', 'destructive', 'timeout' and 'event'",
        by_shape,
    ),
]


class McpBase(Spec):
    include: list[str] | None = None
    """Only these tools of the server are offered (default: all)."""
    exclude: list[str] = []
    """Tools of the server that are never offered."""
    timeout: Duration = "60s"
    """How long one tool call may take."""
    connect_timeout: Duration = "10s"
    """How long connecting and listing tools may take."""
    max_bytes: int = Field(default=1_000_000, gt=0)
    """The largest tool result kept, in bytes of its text (or of its structured content as
    JSON); a larger one is cut there, with a note telling the model it was cut."""
    idempotent: bool | list[str] | None = None
    """Which tools may be sent again when the server crashes (or the connection drops)
    during a call, so that nobody knows whether the call ran. Such a call is re-sent once,
    after the restart, only for a tool that is safe to repeat; any other gets an error result
    telling the model that it may or may not have run. By default (unset) a tool is safe when
    the server marks it so (the MCP tool annotations ``readOnlyHint`` or ``idempotentHint``);
    a list names more tools that are (by their names on the server); ``true`` makes every tool
    safe; ``false`` none (the server's hints are not trusted)."""
    approval: McpApproval | None = None
    """Which of the server's tools wait for a human's approval of each call, as a declared
    tool's ``approval:`` does: ``required`` gates every tool; a mapping gates the tools named
    (or matched) by ``tools`` and, with ``destructive: true``, those the server annotates as
    destructive; ``timeout`` and ``event`` as for a declared tool."""

    save: dict[str, Saves] = {}
    """Per tool (its name on the server), what a successful call of it writes into declared
    state fields: the same ``save:`` as a declared tool's (templates over the call's ``result``
    and ``args``; ``set``, ``append``, ``merge``), applied in the order the model asked for the
    turn's calls. ``netrun validate`` checks the fields and templates, and that the tool is
    offered (``include``/``exclude``); whether the server has it is known at run time only."""

    def approves_by_name(self, remote_name: str) -> bool:
        """Whether ``approval`` gates ``remote_name`` (the tool's name on the server) whatever
        its annotations: ``required``, or a name or pattern of ``approval.tools`` matching it."""
        approval = self.approval
        if approval is None or approval == "none":
            return False
        return approval == "required" or any(fnmatchcase(remote_name, pattern) for pattern in approval.tools)


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
