"""How ``netrun serve`` logs: the level and the format (``text`` for people, ``json`` for
machines), chosen by ``--log-level``/``--log-format`` or ``NETRUN_LOG_LEVEL``/``NETRUN_LOG_FORMAT``.

netrun's loggers (``netrun.*``) and uvicorn's share one handler on stderr: every line has a
timestamp, a level and the logger. The run lines of :mod:`netrun.serve.run_log` carry their
fields (run id, network, status, duration, tokens): as keys of the JSON object, or as
``key=value`` after the text. The root logger is left alone: at INFO it would print every
call litellm and httpx make.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Final

FORMATS: Final = ("text", "json")
LEVELS: Final = ("debug", "info", "warning", "error")

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _utc(record: logging.LogRecord) -> str:
    moment = time.gmtime(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-12-02T18:40:30.123Z INFO netrun.runs: run r1 completed run_id=r1 status=completed``."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return _utc(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields: dict[str, Any] = getattr(record, "netrun", None) or {}
        shown = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and k not in ("event", "error"))
        return f"{line} {shown}" if shown else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``message``, the run's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _utc(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in (getattr(record, "netrun", None) or {}).items() if v is not None})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "info", fmt: str = "text", *, access_log: bool = False) -> None:
    """Log netrun's and uvicorn's records at ``level`` in ``fmt`` to stderr (uvicorn's access
    log only with ``access_log``). Raises ValueError for a level or format not listed."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}; one of: {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}; one of: {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ("netrun", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [handler] if name in ("netrun", "uvicorn") else []
        logger.propagate = name not in ("netrun", "uvicorn")
        logger.setLevel(level.upper())
    # uvicorn's info lines (startup) are worth less than netrun's; its access log is opt-in.
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    logging.getLogger("uvicorn.access").disabled = not access_log
    if access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)


__all__ = ["FORMATS", "LEVELS", "JsonFormatter", "TextFormatter", "configure"]
