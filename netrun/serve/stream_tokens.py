"""Short-lived signed stream tokens: what a browser subscribes to a stream with.

A browser's ``EventSource`` cannot send an ``Authorization`` header, so it cannot carry
``NETRUN_API_TOKEN`` (which must not reach a page anyway). A client holding the API token
asks ``POST /streams/token`` for a token that opens ONE stream (a run's, a thread's or a
user's) for a few minutes, and the page passes it as ``?token=`` (what AgentKit's
``getRealtimeToken`` returns to ``@inngest/use-agent``).

A token is ``<payload>.<signature>``, both base64url without padding: the payload is the
compact JSON ``[version, scope, key, expiry]``, the signature HMAC-SHA256 over the payload
text with the server's stream secret. Nothing in it is secret (it names the stream and its
expiry); it cannot be forged or widened without the secret, and it is compared in
constant time.

The secret (:func:`stream_secret`): ``NETRUN_STREAM_SECRET`` when set (so that several
replicas accept each other's tokens without sharing the API token), else derived from
``NETRUN_API_TOKEN`` with HKDF-SHA256 (RFC 5869), so neither the API token nor anything
that reveals it leaves the server. Without an API token streams are open (loopback
development) and no secret exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from typing import Literal

Scope = Literal["run", "thread", "user"]
SCOPES: tuple[Scope, ...] = ("run", "thread", "user")

VERSION = 1
DEFAULT_TTL = 600.0
"""Ten minutes: long enough for a page to open its stream and reconnect a few times."""
MAX_TTL = 3600.0
"""The longest a token lives, whatever a client asks for: a leaked one lapses soon."""
MAX_KEY = 200
"""The longest key (run id, thread id, user) a token names: as long as a thread id may be."""

_INFO = b"netrun stream tokens v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive(api_token: str) -> bytes:
    """The stream secret derived from the API token: HKDF-SHA256 (extract, then one block of
    expand) with a fixed salt and info, so the secret is not the token and does not reveal it."""
    prk = hmac.new(b"netrun-stream-salt", api_token.encode(), hashlib.sha256).digest()
    return hmac.new(prk, _INFO + b"\x01", hashlib.sha256).digest()


def stream_secret(api_token: str | None, configured: str | None) -> bytes | None:
    """The secret tokens are signed with: ``NETRUN_STREAM_SECRET`` (``configured``) when set,
    else derived from the API token; None when neither is set (streams need no token)."""
    if configured:
        return hashlib.sha256(b"netrun-stream-secret\x00" + configured.encode()).digest()
    if api_token:
        return derive(api_token)
    return None


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def issue(secret: bytes, *, scope: Scope, key: str, ttl: float) -> str:
    """A token opening the stream of ``scope`` ``key`` for ``ttl`` seconds (at most MAX_TTL)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if not key or len(key) > MAX_KEY:
        raise ValueError(f"key must be 1 to {MAX_KEY} characters long")
    if not ttl > 0:
        raise ValueError("ttl must be a number of seconds above 0")
    expiry = int(time.time() + min(float(ttl), MAX_TTL))
    payload = _b64(json.dumps([VERSION, scope, key, expiry], separators=(",", ":")).encode())
    return f"{payload}.{_sign(secret, payload)}"


def expiry(token: str) -> int | None:
    """When a token's payload says it expires (not verified), None for a malformed token."""
    fields = _fields(token)
    return fields[3] if fields is not None else None


def _fields(token: str) -> tuple[int, str, str, int] | None:
    payload, _, _ = token.partition(".")
    try:
        fields = json.loads(_unb64(payload))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if (
        not isinstance(fields, list)
        or len(fields) != 4
        or fields[0] != VERSION
        or not all(isinstance(f, str) for f in fields[1:3])
        or not isinstance(fields[3], int)
    ):
        return None
    return fields[0], fields[1], fields[2], fields[3]


def verify(secret: bytes, token: str, *, scope: str, key: str, now: float | None = None) -> bool:
    """Whether ``token`` was signed with ``secret``, opens the stream of ``scope`` ``key``
    exactly, and has not expired at ``now`` (default: the current time)."""
    if len(token) > 1024 or not token.isascii():
        return False
    payload, dot, signature = token.partition(".")
    if not dot or not hmac.compare_digest(signature.encode(), _sign(secret, payload).encode()):
        return False
    fields = _fields(token)
    if fields is None:
        return False
    _, scoped, keyed, expires = fields
    moment = time.time() if now is None else now
    return (
        hmac.compare_digest(scoped.encode(), scope.encode())
        and hmac.compare_digest(keyed.encode(), key.encode())
        and moment < expires
    )


_IN_QUERY = re.compile(r"([?&](?:t|%74)(?:o|%6f)(?:k|%6b)(?:e|%65)(?:n|%6e)=)[^&#\s\"]*", re.IGNORECASE)
"""``token=`` in a query string, its letters percent-encoded or not (a server decodes both)."""


class _HideTokens(logging.Filter):
    """Blanks ``token=`` in the request lines uvicorn's access log prints (it prints the
    query string, and a stream token is a credential while it lives)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_IN_QUERY.sub(r"\1[hidden]", a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = _IN_QUERY.sub(r"\1[hidden]", record.msg)
        return True


def hide_tokens_in_access_log() -> None:
    """Install the filter on ``uvicorn.access`` and ``uvicorn.error`` (once; the latter logs
    each WebSocket's request line at INFO): whatever log level a deployment runs uvicorn at,
    no stream token reaches its logs."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideTokens) for f in logger.filters):
            logger.addFilter(_HideTokens())


__all__ = [
    "DEFAULT_TTL",
    "MAX_TTL",
    "SCOPES",
    "Scope",
    "derive",
    "expiry",
    "hide_tokens_in_access_log",
    "issue",
    "stream_secret",
    "verify",
]
