"""The thread a run belongs to: its id, its store, and (client-authoritative) its history."""

from __future__ import annotations

from dataclasses import dataclass

from .base import HistoryStore, Message


@dataclass
class Thread:
    id: str
    store: HistoryStore
    user: str | None = None
    given: list[Message] | None = None
    """Client-authoritative mode: the request carries the history; nothing is read from the store."""
