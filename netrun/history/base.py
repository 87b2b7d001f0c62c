"""What every history store shares: the message shape, the store interface, its errors,
and windows over a thread.

A message is an OpenAI chat message with netrun's keys beside it: ``role`` (``user``,
``assistant`` or ``tool``), ``content`` (text; null for an assistant message that only calls
tools), an assistant's ``tool_calls`` (``[{id, type: function, function: {name, arguments}}]``)
each answered by the ``tool`` message after it that carries its ``tool_call_id``; and netrun's
own: ``id`` (unique in its thread, derived from the run and the step that appends it, so an
append that is retried or replayed stores nothing twice), ``agent`` (who spoke) and
``run_id``. A message of an earlier version (``role`` and ``content`` only, a reply's tool
calls written into its text) is still a valid one. :func:`openai_message` drops netrun's keys.

The backends (:mod:`.sqlite`, :mod:`.postgres`, :mod:`.http`) import this module and
nothing of each other; :mod:`.store` picks one. So a run that only reads a window imports
no database driver and no HTTP client.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from ..errors import NetrunError
from ..spec.history import Window

Message = dict[str, Any]


class HistoryError(NetrunError, phase="run"):
    """The store failed (unreachable, a bad answer); a step retries it."""

    retriable = True


class PermanentHistoryError(HistoryError):
    """A failure a retry cannot fix (a 4xx, a bad template, a missing variable)."""

    retriable = False


class HistoryStore(Protocol):
    async def create(self, thread_id: str, user: str | None) -> None:
        """Make the thread if it does not exist (idempotent)."""
        ...

    async def get(self, thread_id: str) -> list[Message]:
        """The thread's messages, oldest first ([] for a thread with none)."""
        ...

    async def append(self, thread_id: str, messages: list[Message]) -> None:
        """Add messages; one whose ``id`` the thread holds already is skipped."""
        ...

    async def close(self) -> None: ...


def message_problem(message: Any) -> str | None:
    """Why ``message`` cannot be a message of a thread's history a client sends (``POST
    /networks/{name}/runs`` with ``history``), or None. Allowed is what ``GET /threads/{id}``
    returns: user and assistant messages with text, an assistant's ``tool_calls`` (its
    ``content`` may then be null), and ``tool`` messages answering one by ``tool_call_id``."""
    allowed = "role user, assistant or tool with content (text)"
    if not isinstance(message, dict):
        return f"is not an object: a message needs {allowed}"
    role, content = message.get("role"), message.get("content")
    if role == "tool":
        if not isinstance(message.get("tool_call_id"), str) or not isinstance(content, str):
            return "a tool message needs tool_call_id (the call it answers) and content (text)"
        return None
    if role not in ("user", "assistant"):
        return f"has role {role!r}: a message needs {allowed}"
    calls = message.get("tool_calls")
    if role == "assistant" and calls is not None:
        fine = isinstance(calls, list) and all(
            isinstance(c, dict)
            and isinstance(c.get("id"), str)
            and isinstance(c.get("function"), dict)
            and isinstance(c["function"].get("name"), str)
            and isinstance(c["function"].get("arguments"), str)
            for c in calls
        )
        if not fine:
            return "tool_calls must be a list of {id, type: function, function: {name, arguments (JSON text)}}"
        if content is not None and not isinstance(content, str):
            return "an assistant message's content is text (or null beside tool_calls)"
        return None
    if not isinstance(content, str):
        return f"needs content (text): a message needs {allowed}"
    return None


def new_thread_id() -> str:
    return "t_" + uuid.uuid4().hex


OPENAI_KEYS = ("role", "content", "tool_calls", "tool_call_id")
"""The keys of a message a model is sent; the others are netrun's (``id``, ``agent``, ``run_id``)."""


def openai_message(message: Message) -> Message:
    """A stored (or a run's own) message as the model is sent it: OpenAI's chat format,
    which litellm converts for other providers and the direct client sends as it is."""
    sent = {k: message[k] for k in OPENAI_KEYS if k in message}
    if "tool_calls" in sent and not sent["tool_calls"]:  # OpenAI refuses an empty list (a 400)
        del sent["tool_calls"]
    if sent.get("role") == "assistant" and sent.get("content") is None and "tool_calls" not in sent:
        sent["content"] = ""  # and null content without tool calls
    return sent


def paired(messages: list[Message]) -> list[Message]:
    """OpenAI messages in which every tool call is answered by one ``tool`` message right
    after its assistant message, and every tool message answers such a call: what a thread
    holds should be so, but one a client sends, or a store someone edited, may not be, and
    OpenAI refuses the whole request then (a 400). Unanswered calls and stray answers go."""
    out: list[Message] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        i += 1
        if m.get("role") == "tool":
            continue  # no assistant message right before it asked for it
        calls = m.get("tool_calls") if m.get("role") == "assistant" else None
        if not calls:
            out.append(m)
            continue
        answers: dict[Any, Message] = {}
        while i < len(messages) and messages[i].get("role") == "tool":
            answers.setdefault(messages[i].get("tool_call_id"), messages[i])
            i += 1
        kept = [c for c in calls if isinstance(c, dict) and c.get("id") in answers]
        if len(kept) == len(calls) and len(answers) == len(kept):
            out += [m, *answers.values()]
            continue
        assistant = {k: v for k, v in m.items() if k != "tool_calls"}
        if kept:
            assistant["tool_calls"] = kept
        elif assistant.get("content") is None:
            assistant["content"] = ""
        out += [assistant, *(answers[c["id"]] for c in kept)]
    return out


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def message_tokens(message: Message) -> int:
    """A message's estimated tokens: its text and the names and arguments of its tool calls."""
    text = str(message.get("content") or "")
    for call in message.get("tool_calls") or ():
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        text += str(function.get("name") or "") + str(function.get("arguments") or "")
    return estimate_tokens(text)


def window(messages: list[Message], limit: Window | None) -> list[Message]:
    """The most recent messages within ``limit`` (all when there is none).

    A ``tool`` message counts with the assistant message that called the tool, and the two
    are kept or cut together: a window never starts with a tool result whose call it cut off
    (OpenAI refuses such a request), and a thread that starts with one (a store's edit) loses it.
    """
    starts = [i for i, m in enumerate(messages) if m.get("role") != "tool"]
    if limit is None:
        return messages[starts[0] :] if starts else []
    if limit.messages:
        starts = starts[-limit.messages :]
    if limit.tokens and starts:
        budget, kept, end = limit.tokens, len(starts), len(messages)
        while kept > 0:
            cost = sum(message_tokens(m) for m in messages[starts[kept - 1] : end])
            if cost > budget:
                break
            budget, end, kept = budget - cost, starts[kept - 1], kept - 1
        starts = starts[kept:]
    return messages[starts[0] :] if starts else []
