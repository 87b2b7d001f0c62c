"""The history store interface, the message shape, and windows over a thread.

A message is a JSON object: ``id`` (unique in its thread, derived from the run and the step
that appends it, so an append that is retried or replayed stores nothing twice), ``role``
(``user`` or ``assistant``), ``content``, and for replies the ``agent`` and the ``run_id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ..spec.history import HistorySpec, Window

Message = dict[str, Any]


class HistoryError(Exception):
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


class ThreadIndex(Protocol):
    """What the REST API needs beyond runs: listing and deleting threads."""

    async def exists(self, thread_id: str) -> bool: ...

    async def threads(self, user: str | None, limit: int, before: float | None) -> list[dict[str, Any]]: ...

    async def delete(self, thread_id: str) -> bool: ...


def new_thread_id() -> str:
    return "t_" + uuid.uuid4().hex


def open_store(spec: HistorySpec | None, data_dir: Path, environ: Mapping[str, str]) -> HistoryStore:
    """The store a network declares (SQLite in ``data_dir`` by default)."""
    if spec is not None and spec.store == "postgres":
        from .. import envrefs
        from .postgres import PostgresHistoryStore

        assert spec.url is not None, "validate requires url for store: postgres"
        try:
            return PostgresHistoryStore(envrefs.resolve(spec.url, environ))
        except envrefs.MissingEnvError as exc:
            raise PermanentHistoryError(f"the thread store's url: {exc}") from None
    if spec is not None and spec.store == "http":
        from .http import HttpHistoryStore

        assert spec.http is not None, "validate requires http for store: http"
        return HttpHistoryStore(spec.http, environ)
    from .sqlite import SqliteHistoryStore

    return SqliteHistoryStore(data_dir / ((spec.path if spec else None) or "threads.db"))


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def window(messages: list[Message], limit: Window | None) -> list[Message]:
    """The most recent messages within ``limit`` (all when there is none)."""
    if limit is None:
        return messages
    kept = messages[-limit.messages:] if limit.messages else messages
    if limit.tokens:
        budget, start = limit.tokens, len(kept)
        while start > 0 and budget >= estimate_tokens(str(kept[start - 1].get("content") or "")):
            budget -= estimate_tokens(str(kept[start - 1].get("content") or ""))
            start -= 1
        kept = kept[start:]
    return kept
