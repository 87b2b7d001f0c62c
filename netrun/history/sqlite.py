"""Threads in a SQLite file: the default store, for one machine."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..sqlite_file import open_sqlite
from .base import HistoryError, Message

_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    user_key TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_by_user ON threads (user_key, updated);
CREATE TABLE IF NOT EXISTS messages (
    thread_id TEXT NOT NULL,
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    message TEXT NOT NULL,
    UNIQUE (thread_id, id)
);
"""


class SqliteHistoryStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = open_sqlite(path, _SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(f"cannot use the thread store {path}: {exc}") from None

    async def create(self, thread_id: str, user: str | None) -> None:
        now = time.time()
        self.db.execute("INSERT OR IGNORE INTO threads VALUES (?,?,?,?)", (thread_id, user, now, now))

    async def get(self, thread_id: str) -> list[Message]:
        rows = self.db.execute("SELECT message FROM messages WHERE thread_id = ? ORDER BY seq", (thread_id,))
        return [json.loads(r[0]) for r in rows]

    async def append(self, thread_id: str, messages: list[Message]) -> None:
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR IGNORE INTO threads VALUES (?,?,?,?)", (thread_id, None, now, now))
            for m in messages:
                self.db.execute(
                    "INSERT OR IGNORE INTO messages (thread_id, id, message) VALUES (?,?,?)", (thread_id, m["id"], json.dumps(m))
                )
            self.db.execute("UPDATE threads SET updated = ? WHERE id = ?", (now, thread_id))

    async def exists(self, thread_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM threads WHERE id = ?", (thread_id,)).fetchone() is not None

    async def threads(self, user: str | None, limit: int, before: float | None) -> list[dict[str, Any]]:
        query = "SELECT t.id, t.user_key, t.created, t.updated, (SELECT COUNT(*) FROM messages m WHERE m.thread_id = t.id) FROM threads t"
        where: list[str] = []
        args: list[str | float] = []
        if user is not None:
            where.append("t.user_key = ?")
            args.append(user)
        if before is not None:
            where.append("t.updated < ?")
            args.append(before)
        query += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY t.updated DESC LIMIT ?"
        rows = self.db.execute(query, (*args, limit))
        return [{"thread_id": r[0], "user": r[1], "created": r[2], "updated": r[3], "messages": r[4]} for r in rows]

    async def delete(self, thread_id: str) -> bool:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM messages WHERE thread_id = ?", (thread_id,))
            return self.db.execute("DELETE FROM threads WHERE id = ?", (thread_id,)).rowcount > 0

    async def close(self) -> None:
        self.db.close()
