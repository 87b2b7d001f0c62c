"""netrun's threads in the shapes AgentKit's React client reads (``@inngest/use-agent`` 0.4.0):
a thread of ``fetchThreads`` (its ``Thread`` type) and the messages of ``fetchHistory`` (what
AgentKit's history adapters store and its ``formatRawHistoryMessages`` turns into UI messages).
Pure functions over what the thread store returns; the routes are in :mod:`.agentkit`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

NEW_TITLE = "New conversation"
"""The title of a thread with no user message yet (netrun's threads keep no title)."""


def iso(seconds: float) -> str:
    """Seconds since the epoch as the ISO text a JavaScript ``Date`` reads."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def title(messages: list[dict[str, Any]]) -> str:
    """A thread's title: its first user message, on one line, at most 60 characters."""
    first = next((m.get("content") for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)), None)
    if not first:
        return NEW_TITLE
    line = " ".join(first.split())
    return line if len(line) <= 60 else line[:59] + "…"


def thread_entry(row: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A thread as the store lists it (``thread_id, created, updated, messages``) as use-agent's ``Thread``."""
    updated = iso(row["updated"])
    return {
        "id": row["thread_id"],
        "title": title(messages),
        "messageCount": row["messages"],
        "createdAt": iso(row["created"]),
        "updatedAt": updated,
        "lastMessageAt": updated,
    }


def history_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A thread's messages in the shape AgentKit's history adapters store and use-agent
    reads: a user message, then one ``agent`` message per reply, its tool calls and their
    results in ``data.output`` beside its text (netrun's thread is OpenAI's format)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role == "user":
            out.append({"message_id": m.get("id"), "type": "user", "role": "user", "content": content or ""})
        elif role == "assistant":
            output: list[dict[str, Any]] = []
            if content:
                output.append({"type": "text", "role": "assistant", "content": content})
            for call in m.get("tool_calls") or []:
                try:
                    given = json.loads(call["function"]["arguments"] or "{}")
                except (ValueError, KeyError, TypeError):
                    given = {}
                output.append(
                    {
                        "type": "tool_call",
                        "role": "assistant",
                        "id": call.get("id"),
                        "name": call["function"]["name"],
                        "input": given,
                    }
                )
            out.append(
                {
                    "message_id": m.get("id"),
                    "type": "agent",
                    "role": "assistant",
                    "agentName": m.get("agent"),
                    "data": {"output": output},
                }
            )
        elif role == "tool" and out and out[-1]["type"] == "agent":
            out[-1]["data"]["output"].append(
                {"type": "tool_result", "role": "tool_result", "id": m.get("tool_call_id"), "content": content}
            )
    return out
