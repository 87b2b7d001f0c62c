"""What stands in front of ``/api/inngest`` in production mode, before the Inngest SDK.

The SDK (inngest 0.5) checks the HMAC of ``x-inngest-signature`` but not the age of its
``t=`` timestamp, so a captured request stays valid forever: replayed, it runs its step
again. Inngest's own SDKs accept a timestamp within 5 minutes of now; so does this guard,
and it refuses the same signed function call seen twice within that window (a replay on
this replica; a sync or an inspection repeated does no harm: the URL it registers is the
configured one). Unsigned requests never reach the SDK: an unsigned sync (PUT) would make the SDK
register the app at the URL the caller's ``Host`` header names.

The header is parsed exactly as the SDK parses it (``urllib.parse.parse_qs``, first value),
so what this guard checks is what the SDK verifies.

Signing is here too: netrun signs the sync request it sends itself at start-up (``sign``),
the way Inngest signs its requests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
import urllib.parse

SIGNATURE_HEADER = "x-inngest-signature"
MAX_SKEW_SECONDS = 300
"""How far a signature's timestamp may be from now, either way (Inngest's SDKs use 5 minutes)."""
_SEEN_MAX = 100_000
"""Signed requests remembered for replay detection (each is forgotten once its window ends)."""


def sign(body: bytes, signing_key: str, now: float | None = None) -> str:
    """An ``x-inngest-signature`` value for ``body`` (canonical JSON bytes, or empty)."""
    t = str(int(time.time() if now is None else now))
    key = re.sub(r"^signkey-\w+-", "", signing_key).encode()
    return f"t={t}&s={hmac.new(key, body + t.encode(), hashlib.sha256).hexdigest()}"


class SignatureGuard:
    """Refuses unsigned, stale, future-dated and replayed requests (the SDK checks the HMAC)."""

    def __init__(self, max_skew: float = MAX_SKEW_SECONDS) -> None:
        self.max_skew = max_skew
        self._seen: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def refuse(self, method: str, target: str, header: str | None, now: float | None = None) -> str | None:
        """Why the request must not reach the SDK, or None when it may.

        ``target`` is the request's path and query string: Inngest sends the same body (so
        the same signature) to several ``stepId``s when it runs parallel steps."""
        now = time.time() if now is None else now
        if not header:
            return f"unsigned request: production mode accepts only requests Inngest signed ({SIGNATURE_HEADER})"
        parsed = urllib.parse.parse_qs(header)
        stamp = (parsed.get("t") or [""])[0]
        if not re.fullmatch(r"\d{1,12}", stamp) or int(stamp) == 0:
            return f"the {SIGNATURE_HEADER} header has no timestamp (t=<unix seconds>)"
        if abs(now - int(stamp)) > self.max_skew:
            return f"the signature's timestamp is more than {self.max_skew / 60:g} minutes from now: a stale or replayed request"
        if method.upper() != "POST":
            return None  # a sync or an inspection does the same whenever it is repeated
        key = (method.upper(), target, header)
        with self._lock:
            if len(self._seen) >= _SEEN_MAX or (self._seen and next(iter(self._seen.values())) < now):
                self._seen = {k: until for k, until in self._seen.items() if until >= now}
                while len(self._seen) >= _SEEN_MAX:  # a flood within one window: forget the oldest
                    self._seen.pop(next(iter(self._seen)))
            if key in self._seen:
                return "this signed request was already received: a replayed request"
            self._seen[key] = int(stamp) + self.max_skew
        return None
