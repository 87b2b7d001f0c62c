"""Threads in PostgreSQL: one store shared by several `netrun serve` replicas.

The URL comes from an ``${ENV}`` reference (it holds a password); it never appears in an
error. Appends are idempotent by message id (``ON CONFLICT DO NOTHING``), so a step retried
on another replica stores nothing twice.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .base import HistoryError, Message, PermanentHistoryError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS netrun_threads (
    id TEXT PRIMARY KEY,
    user_key TEXT,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS netrun_threads_by_user ON netrun_threads (user_key, updated);
CREATE TABLE IF NOT EXISTS netrun_messages (
    thread_id TEXT NOT NULL,
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL,
    message JSONB NOT NULL,
    UNIQUE (thread_id, id)
);
"""


class PostgresHistoryStore:
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: Any = None

    def _hide(self, text: str) -> str:
        return text.replace(self._url, "${…}")

    async def _db(self) -> Any:
        if self._conn is None:
            import psycopg

            try:
                self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=10)
                async with self._conn.cursor() as cur:
                    await cur.execute("SELECT pg_advisory_lock(4242)")  # replicas creating the tables at once
                    try:
                        await cur.execute(_SCHEMA)
                    finally:
                        await cur.execute("SELECT pg_advisory_unlock(4242)")
            except psycopg.Error as exc:
                self._conn = None
                raise HistoryError(self._hide(f"cannot use the PostgreSQL thread store: {exc}".strip())) from None
        return self._conn

    async def _run(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        conn = await self._db()
        try:
            async with conn.cursor() as cur:
                await cur.execute(query, args)
                return list(await cur.fetchall()) if cur.description else []
        except psycopg.OperationalError as exc:
            await self.close()
            raise HistoryError(self._hide(f"PostgreSQL thread store: {exc}")) from None
        except psycopg.Error as exc:
            raise PermanentHistoryError(self._hide(f"PostgreSQL thread store: {exc}")) from None

    async def create(self, thread_id: str, user: str | None) -> None:
        now = time.time()
        await self._run(
            "INSERT INTO netrun_threads VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING", (thread_id, user, now, now)
        )

    async def get(self, thread_id: str) -> list[Message]:
        rows = await self._run("SELECT message FROM netrun_messages WHERE thread_id = %s ORDER BY seq", (thread_id,))
        return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]

    async def append(self, thread_id: str, messages: list[Message]) -> None:
        import psycopg

        conn = await self._db()
        now = time.time()
        try:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.execute(
                    "INSERT INTO netrun_threads VALUES (%s, NULL, %s, %s) ON CONFLICT (id) DO NOTHING", (thread_id, now, now)
                )
                for m in messages:
                    await cur.execute(
                        "INSERT INTO netrun_messages (thread_id, id, message) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        (thread_id, m["id"], json.dumps(m)),
                    )
                await cur.execute("UPDATE netrun_threads SET updated = %s WHERE id = %s", (now, thread_id))
        except psycopg.OperationalError as exc:
            await self.close()
            raise HistoryError(self._hide(f"PostgreSQL thread store: {exc}")) from None
        except psycopg.Error as exc:
            raise PermanentHistoryError(self._hide(f"PostgreSQL thread store: {exc}")) from None

    async def exists(self, thread_id: str) -> bool:
        return bool(await self._run("SELECT 1 FROM netrun_threads WHERE id = %s", (thread_id,)))

    async def threads(self, user: str | None, limit: int, before: float | None) -> list[dict[str, Any]]:
        query = (
            "SELECT t.id, t.user_key, t.created, t.updated, (SELECT COUNT(*) FROM netrun_messages m WHERE m.thread_id = t.id) "
            "FROM netrun_threads t WHERE (%s::text IS NULL OR t.user_key = %s) AND (%s::float8 IS NULL OR t.updated < %s) "
            "ORDER BY t.updated DESC LIMIT %s"
        )
        rows = await self._run(query, (user, user, before, before, limit))
        return [{"thread_id": r[0], "user": r[1], "created": r[2], "updated": r[3], "messages": r[4]} for r in rows]

    async def delete(self, thread_id: str) -> bool:
        await self._run("DELETE FROM netrun_messages WHERE thread_id = %s", (thread_id,))
        return bool(await self._run("DELETE FROM netrun_threads WHERE id = %s RETURNING id", (thread_id,)))

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()
