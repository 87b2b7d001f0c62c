"""How a server's failures are told: one line per exception, and why a connect failed.

Every text that may quote a resolved ``${ENV}`` value (an exception naming a URL, a
server's stderr) passes through :meth:`~netrun.redact.Secrets.redact` before it is kept.
"""

from __future__ import annotations

from pathlib import Path

from mcp import MCPError, types

from ...redact import Secrets
from ...spec.mcp import McpServerSpec, StdioServer
from .session import Attempt


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``[exc]``."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def describe(exc: BaseException) -> str:
    """A one-line account of an exception: the leaves of a group, type and message."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(describe(leaf) for leaf in leaves(exc)))
    if isinstance(exc, MCPError):
        return exc.message
    message = str(exc).strip().partition("\n")[0]  # httpx adds a line with a documentation link
    kind = type(exc).__name__
    return f"{kind}: {message}" if message else kind


def connect_failure(attempt: Attempt, spec: McpServerSpec, secrets: Secrets) -> str:
    """Why ``attempt`` did not connect, for ``... is unavailable: <why>``."""
    exc = attempt.error
    if exc is None or all(isinstance(e, MCPError) and e.code == types.CONNECTION_CLOSED for e in leaves(exc)):
        why = (
            "the process exited or closed its output before answering"
            if isinstance(spec, StdioServer)
            else "the server closed the connection while connecting"
        )
    else:
        why = secrets.redact(describe(exc))
    return f"{why} ({attempt.http_errors[-1]})" if attempt.http_errors else why


def spawn_failure(attempt: Attempt, spec: McpServerSpec, name: str, label: str, base_dir: Path, secrets: Secrets) -> str | None:
    """Why a stdio server's program cannot be started at all (not found, not executable,
    no such working directory), or ``None``: that failure is not transient."""
    if not isinstance(spec, StdioServer) or attempt.error is None:
        return None
    spawn = next(
        (e for e in leaves(attempt.error) if isinstance(e, FileNotFoundError | PermissionError | NotADirectoryError)), None
    )
    if spawn is None:
        return None
    command, where = spec.command, f"mcp_servers.{name}"
    if isinstance(spawn, FileNotFoundError) and spec.cwd is not None and not (base_dir / spec.cwd).is_dir():
        return f"{label} cannot start: its working directory '{spec.cwd}' does not exist ({where}.cwd)"
    if isinstance(spawn, FileNotFoundError):
        return f"{label} cannot start: the command '{command}' was not found (is it installed and on PATH? see {where}.command)"
    return f"{label} cannot start the command '{command}': {secrets.redact(describe(spawn))} ({where}.command)"
