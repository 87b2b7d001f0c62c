"""What the model reads of a ``tools/call`` result, cut at the server's ``max_bytes``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mcp import types

from ...runtime.tooling import ToolOutcome

__all__ = ["MAX_BYTES", "format_result"]

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
    return (
        f"\n[truncated by netrun: the result {whole}, over this MCP server's limit of {max_bytes} bytes "
        f"(mcp_servers.<name>.max_bytes); only its first {max_bytes} bytes are shown. Ask the tool for less.]"
    )


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
