"""A model call's request body as JSON, each message of the history encoded once.

A run's history grows by a few messages per call and every call sends all of it: encoding
the whole body each time costs O(n) per call and O(n^2) per run (at 200 iterations, 400
messages, about half a millisecond of every call). The messages before the new ones are
the same objects as last time (the runtime keeps each turn's messages as they were made,
and a thread's window once per run), so their JSON is kept, by identity, and the body is
spliced from it. A message seen for the first time (a system prompt rendered anew, the
router's retries) is encoded as before.

The invariant this relies on: a message dict is never changed after it was sent. The
runtime builds new messages rather than editing sent ones; the cache also holds each
message it keeps, so an id is never reused for another while its entry lives.
"""

from __future__ import annotations

import json
from typing import Any

LIMIT = 20_000
"""Messages kept; past it the cache starts again (a long run of a long-lived client)."""


class BodyEncoder:
    """Encodes request bodies, reusing the JSON of messages it encoded before."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._seen: dict[int, tuple[Any, str]] = {}

    def encode(self, body: dict[str, Any]) -> bytes:
        """``json.dumps(body)`` as bytes (with ``messages`` first: the same object)."""
        messages = body.get("messages")
        if not isinstance(messages, list):
            return json.dumps(body).encode()
        rest = json.dumps({k: v for k, v in body.items() if k != "messages"})
        listed = ",".join([self._message(m) for m in messages])
        tail = "}" if rest == "{}" else "," + rest[1:]
        return f'{{"messages":[{listed}]{tail}'.encode()

    def _message(self, message: Any) -> str:
        found = self._seen.get(id(message))
        if found is not None and found[0] is message:
            return found[1]
        text = json.dumps(message)
        if len(self._seen) >= self.limit:
            self._seen.clear()
        self._seen[id(message)] = (message, text)
        return text


__all__ = ["BodyEncoder"]
