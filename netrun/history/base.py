"""What every history store shares: the message shape, the store interface, its errors,
and windows over a thread.

A message is a JSON object: ``id`` (unique in its thread, derived from the run and the step
that appends it, so an append that is retried or replayed stores nothing twice), ``role``
(``user`` or ``assistant``), ``content``, and for replies the ``agent`` and the ``run_id``.

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


def new_thread_id() -> str:
    return "t_" + uuid.uuid4().hex


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def window(messages: list[Message], limit: Window | None) -> list[Message]:
    """The most recent messages within ``limit`` (all when there is none)."""
    if limit is None:
        return messages
    kept = messages[-limit.messages :] if limit.messages else messages
    if limit.tokens:
        budget, start = limit.tokens, len(kept)
        while start > 0 and budget >= estimate_tokens(str(kept[start - 1].get("content") or "")):
            budget -= estimate_tokens(str(kept[start - 1].get("content") or ""))
            start -= 1
        kept = kept[start:]
    return kept
