"""Opening netrun's SQLite files (the run journal, the thread store) the same way, and
telling a storage fault (a full disk, a quota, a failing device) from a mistake.

A storage fault is not the caller's doing and passes once space returns: the server
answers 503 for it and keeps the runs it stopped, to resume them (see
``serve/local_runs.py``). Every statement on a connection opened here raises
:class:`StorageFault` for one, whichever code path wrote.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import Any

from .errors import NetrunError

_FAULT_CODES = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR}
"""Primary result codes of a write the device refused: ``SQLITE_FULL`` (no space left,
"database or disk is full") and ``SQLITE_IOERR`` and its extended codes (a write cut short:
a file-size limit, a quota, a failing disk)."""

_FAULT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


class StorageFault(sqlite3.OperationalError, NetrunError, phase="engine"):  # noqa: N818 - the device's fault, not the request's: the name says so
    """A file cannot be written now; nothing the request did wrong. A subclass of
    ``sqlite3.OperationalError`` so that code keeping going on a database error (the SSE
    history losing an event) keeps going on this one too."""

    def __init__(self, path: Path | str, cause: BaseException) -> None:
        name = getattr(cause, "sqlite_errorname", None) or (
            errno.errorcode.get(getattr(cause, "errno", 0) or 0) or type(cause).__name__
        )
        super().__init__(f"cannot write {path}: {cause} ({name}); the disk may be full")
        self.path = str(path)


def is_storage_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a write the device refused (not a constraint, a lock or a bug)."""
    if isinstance(exc, StorageFault):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _FAULT_CODES
    return isinstance(exc, OSError) and exc.errno in _FAULT_ERRNOS


class _Connection(sqlite3.Connection):
    """A connection whose statements and commits raise :class:`StorageFault` for a storage
    fault: one place, instead of a check beside every write."""

    path: str = ""

    def _fault(self, exc: sqlite3.Error) -> sqlite3.Error:
        return StorageFault(self.path, exc) if is_storage_fault(exc) and not isinstance(exc, StorageFault) else exc

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().execute(*args, **kwargs)
        except sqlite3.Error as exc:
            raise self._fault(exc) from None

    def executemany(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().executemany(*args, **kwargs)
        except sqlite3.Error as exc:
            raise self._fault(exc) from None

    def executescript(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().executescript(*args, **kwargs)
        except sqlite3.Error as exc:
            raise self._fault(exc) from None

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as exc:
            raise self._fault(exc) from None

    def __exit__(self, *exc_info: Any) -> Any:  # `with db:` commits (or rolls back) here
        try:
            return super().__exit__(*exc_info)
        except sqlite3.Error as exc:
            raise self._fault(exc) from None


def open_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """A connection in autocommit mode with ``schema`` applied. WAL with synchronous=NORMAL
    survives a killed process (only a power loss may drop the last commits); several
    processes may share the file (busy writers wait up to 5 s). Raises ``sqlite3.Error``
    (a :class:`StorageFault` when the disk refuses) or ``OSError``; callers say which file
    failed and why."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, factory=_Connection)
    db.path = str(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db
