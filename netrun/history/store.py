"""Opening a thread store: the one a network declares (SQLite, PostgreSQL or an HTTP service).

Only this module knows the backends; they share :mod:`.base` and import nothing of each
other. The shared names are re-exported here for the callers that open a store and use
its types together.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..spec.history import HistorySpec
from .base import (
    HistoryError,
    HistoryStore,
    Message,
    PermanentHistoryError,
    estimate_tokens,
    message_problem,
    message_tokens,
    new_thread_id,
    openai_message,
    paired,
    window,
)

__all__ = [
    "HistoryError",
    "HistoryStore",
    "Message",
    "PermanentHistoryError",
    "estimate_tokens",
    "message_problem",
    "message_tokens",
    "new_thread_id",
    "open_store",
    "openai_message",
    "paired",
    "window",
]


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
