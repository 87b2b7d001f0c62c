"""The run list (``GET /runs``): runs newest first, filtered by network, status, thread,
user and time, paged by keyset (the ``(created, id)`` of a page's last run), so a page
costs the same however deep it is. The indexes it uses are in
:mod:`netrun.engines.journal_schema` (``runs_by_*``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any


def list_runs(
    db: sqlite3.Connection,
    *,
    network: str | None = None,
    statuses: Sequence[str] = (),
    thread_id: str | None = None,
    user: str | None = None,
    since: float | None = None,
    until: float | None = None,
    before: tuple[float, str] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Runs newest first (``GET /runs``): those matching every filter given, created at
    or after ``since`` and before ``until``, older than the ``(created, id)`` of
    ``before`` (the last run of the previous page); at most ``limit``."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("network", network),
        ("json_extract(options, '$.thread_id')", thread_id),
        ("json_extract(options, '$.user')", user),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if statuses:
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        args.extend(statuses)
    if since is not None:
        where.append("created >= ?")
        args.append(since)
    if until is not None:
        where.append("created < ?")
        args.append(until)
    if before is not None:
        where.append("(created, id) < (?, ?)")  # a row value: SQLite seeks the index to it
        args.extend(before)
    rows = db.execute(
        "SELECT id, network, definition_hash, input, status, error, created, updated, "
        "json_extract(options, '$.thread_id'), json_extract(options, '$.user'), json_extract(options, '$.parent') "
        f"FROM runs {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY created DESC, id DESC LIMIT ?",
        (*args, limit),
    )
    return [
        {
            "run_id": r[0],
            "network": r[1],
            "definition_hash": r[2],
            "input": r[3],
            "status": r[4],
            "error": r[5],
            "created": r[6],
            "updated": r[7],
            "thread_id": r[8],
            "user": r[9],
            "parent": r[10],
        }
        for r in rows
    ]


__all__ = ["list_runs"]
