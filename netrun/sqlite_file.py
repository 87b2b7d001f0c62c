"""Opening netrun's SQLite files (the run journal, the thread store) the same way."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """A connection in autocommit mode with ``schema`` applied. WAL with synchronous=NORMAL
    survives a killed process (only a power loss may drop the last commits); several
    processes may share the file (busy writers wait up to 5 s). Raises ``sqlite3.Error``
    or ``OSError``; callers say which file failed and why."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db
