"""One MCP tool: what the model sees of it, and whether an interrupted call may be sent again
(after a lost connection, or a crash: durability rule 6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mcp import types

from ...runtime.tooling import ToolContext, ToolOutcome
from ...spec.mcp import McpServerSpec

if TYPE_CHECKING:
    from .connection import McpConnection


@dataclass
class McpTool:
    """One tool of an MCP server, as the model sees it and as the loop calls it (a ``Tool``)."""

    kind: ClassVar[str] = "mcp"
    """The kind traces and metrics name it by (declared tools: their kind key)."""

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

    @property
    def idempotent(self) -> bool:
        """Durability rule 6: whether a call cut off by a crash (no outcome recorded) may be
        made again, by the same rule as a call cut off by a lost connection
        (:func:`resendable`: the server's ``idempotent`` setting, then its annotations). When
        it may not, the call's start is journaled and the model is told it may have run. A
        tool that cannot run has no effect to repeat."""
        return self.unavailable is not None or self.connection.resendable(self.remote_name)

    async def call(self, args: dict[str, Any], ctx: ToolContext | None = None) -> ToolOutcome:
        """Call the tool on its server; failures come back as error outcomes, never raised."""
        if self.unavailable is not None:
            return ToolOutcome.failure(self.unavailable)
        return await self.connection.call(self.remote_name, args)


def offered(spec: McpServerSpec, remote_name: str) -> bool:
    """Whether the server's ``include``/``exclude`` let agents see ``remote_name``."""
    return remote_name not in spec.exclude and (spec.include is None or remote_name in spec.include)


def why_unavailable(
    conn: McpConnection, listing: list[types.Tool] | None, source: types.Tool | None, remote_name: str
) -> str | None:
    """Why ``remote_name`` cannot be called (server down, not offered), or ``None``."""
    if listing is None:
        return conn.error or f"{conn.label} is not connected"
    if source is None:
        names = ", ".join(t.name for t in listing if offered(conn.spec, t.name))
        return f"{conn.label} has no tool '{remote_name}' (it offers: {names or 'none'})"
    if not offered(conn.spec, remote_name):
        return f"tool '{remote_name}' of {conn.label} is not offered (mcp_servers.{conn.name}.include/exclude)"
    return None


def face(source: types.Tool | None, reason: str | None) -> tuple[str, dict[str, Any]]:
    """The description and parameters the model sees: the server's, or a placeholder that
    says why the tool is unavailable (the model then hears the reason instead of the run crashing)."""
    if source is None:
        return f"Unavailable: {reason}", {"type": "object", "properties": {}}
    parameters = dict(source.input_schema)
    parameters.setdefault("type", "object")
    return source.description or source.title or "", parameters


def resendable(spec: McpServerSpec, listing: list[types.Tool] | None, remote_name: str) -> bool:
    """Whether a call of ``remote_name`` interrupted by a lost connection may be sent
    again: the server's ``idempotent`` setting decides when it is ``true``/``false``;
    otherwise a tool it lists, or one the server annotates ``readOnlyHint`` or
    ``idempotentHint``, is safe."""
    declared = spec.idempotent
    if isinstance(declared, bool):
        return declared
    if declared and remote_name in declared:
        return True
    source = next((t for t in listing or [] if t.name == remote_name), None)
    hints = source.annotations if source is not None else None
    return bool(hints is not None and (hints.read_only_hint or hints.idempotent_hint))
