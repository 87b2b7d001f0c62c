"""How long a server asked to be left alone: the ``Retry-After`` header (HTTP tools and
model providers both send it)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def retry_after_seconds(value: str | None, cap: float = math.inf) -> float | None:
    """A ``Retry-After`` header (delay seconds or an HTTP date) in seconds, within ``0..cap``."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - datetime.now(UTC).timestamp()
    return min(max(seconds, 0.0), cap)


def retry_after_headers(headers: Mapping[str, str]) -> float | None:
    """The wait headers ask for: ``retry-after-ms`` (OpenAI's and others'), else ``retry-after``."""
    found = {str(k).lower(): str(v) for k, v in headers.items()}
    milliseconds = found.get("retry-after-ms", "").strip()
    if re.fullmatch(r"\d+(\.\d+)?", milliseconds):
        return float(milliseconds) / 1000
    return retry_after_seconds(found.get("retry-after"))
