"""What stands in front of ``/api/inngest`` in production mode, before the Inngest SDK.

The SDK (inngest 0.5) checks the HMAC of ``x-inngest-signature`` but not the age of its
``t=`` timestamp, so a captured request stays valid forever: replayed, it runs its step
again. Inngest's own SDKs accept a timestamp within 5 minutes of now; so does this guard,
and it refuses the same signed function call seen twice within that window (a replay on
this replica; a sync or an inspection repeated does no harm: the URL it registers is the
configured one). Unsigned requests never reach the SDK: an unsigned sync (PUT) would make the SDK
register the app at the URL the caller's ``Host`` header names.

The header is parsed exactly as the SDK parses it (``urllib.parse.parse_qs``, first value),
and the HMAC is checked with the SDK's own function before a call is remembered, so what
this guard remembers is what the SDK would run: a call is the same call however its
header or query string is spelled (``t=0…``, ``s`` percent-encoded, parameters added or
reordered, ``stepId=step`` left out), and forged requests take no room in the memory.

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
from collections.abc import Mapping

SIGNATURE_HEADER = "x-inngest-signature"
MAX_SKEW_SECONDS = 300
"""How far a signature's timestamp may be from now, either way (Inngest's SDKs use 5 minutes)."""
UNSPECIFIED_STEP = "step"
"""The ``stepId`` that means none (the SDK's ``UNSPECIFIED_STEP_ID``)."""
_SEEN_MAX = 100_000
"""Signed requests remembered for replay detection (each is forgotten once its window ends)."""


def sign(body: bytes, signing_key: str, now: float | None = None) -> str:
    """An ``x-inngest-signature`` value for ``body`` (canonical JSON bytes, or empty)."""
    t = str(int(time.time() if now is None else now))
    key = re.sub(r"^signkey-\w+-", "", signing_key).encode()
    return f"t={t}&s={hmac.new(key, body + t.encode(), hashlib.sha256).hexdigest()}"


class SignatureGuard:
    """Refuses unsigned, forged, stale, future-dated and replayed requests.

    The HMAC is checked here with the SDK's own verification (the same header parsing,
    canonical body, signing key and fallback key), so that only requests Inngest signed
    are remembered: a flood of forged ones cannot push a real one out of the memory.
    A call is remembered by what the SDK acts on, not by how the request spells it:
    the timestamp as a number, the HMAC, and the ``stepId`` (``step`` or none: the same);
    not the ``fnId``, which the signature does not cover (a body Inngest signed goes to
    one function). When more than ``max_seen`` calls are remembered within one window, the
    oldest are forgotten and every request dated no later than them is refused from then
    on (as stale: Inngest retries with a new signature), so a forgotten call is never
    run twice."""

    def __init__(
        self,
        signing_key: str | None = None,
        signing_key_fallback: str | None = None,
        max_skew: float = MAX_SKEW_SECONDS,
        max_seen: int = _SEEN_MAX,
    ) -> None:
        self.signing_key = signing_key
        self.signing_key_fallback = signing_key_fallback
        self.max_skew = max_skew
        self.max_seen = max_seen
        self._seen: dict[tuple[str | None, int, str], float] = {}
        self._floor = 0
        """Timestamps up to this one are refused: calls of that age were forgotten."""
        self._lock = threading.Lock()

    def refuse(
        self, method: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes, now: float | None = None
    ) -> str | None:
        """Why the request must not reach the SDK, or None when it may.

        ``query`` and ``headers`` as the SDK reads them (the last value of a repeated
        name). Inngest sends the same body (so the same signature) to several ``stepId``s
        when it runs parallel steps: each of them once."""
        now = time.time() if now is None else now
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            return f"unsigned request: production mode accepts only requests Inngest signed ({SIGNATURE_HEADER})"
        parsed = urllib.parse.parse_qs(header)  # as the SDK parses it: the first value of each
        stamp_text = (parsed.get("t") or [""])[0]
        mac = (parsed.get("s") or [""])[0]
        if not re.fullmatch(r"\d{1,12}", stamp_text) or int(stamp_text) == 0:
            return f"the {SIGNATURE_HEADER} header has no timestamp (t=<unix seconds>)"
        stamp = int(stamp_text)
        if abs(now - stamp) > self.max_skew:
            return f"the signature's timestamp is more than {self.max_skew / 60:g} minutes from now: a stale or replayed request"
        if not self._verified(headers, body):
            return f"the {SIGNATURE_HEADER} signature does not match the request (another signing key, or a changed body)"
        if method.upper() != "POST":
            return None  # a sync or an inspection does the same whenever it is repeated
        step = query.get("stepId")
        key = (None if step in (None, UNSPECIFIED_STEP) else step, stamp, mac)
        with self._lock:
            if stamp <= self._floor:
                return (
                    "the signature's timestamp is older than the calls this server still remembers: a stale or replayed request"
                )
            if key in self._seen:
                return "this signed request was already received: a replayed request"
            if len(self._seen) >= self.max_seen:
                self._seen = {k: until for k, until in self._seen.items() if until >= now}
                while len(self._seen) >= self.max_seen:  # a flood of signed calls within one window
                    forgotten = self._seen.pop(next(iter(self._seen)))
                    self._floor = max(self._floor, int(forgotten - self.max_skew))
                if stamp <= self._floor:
                    return "the signature's timestamp is older than the calls this server still remembers: a stale or replayed request"
            self._seen[key] = stamp + self.max_skew
        return None

    def _verified(self, headers: Mapping[str, str], body: bytes) -> bool:
        """The SDK's own check of the HMAC (primary key, then the fallback key)."""
        from inngest._internal import net, server_lib

        if self.signing_key is None:
            return False
        outcome = net.validate_request_sig(
            body=body,
            headers=dict(headers),
            mode=server_lib.ServerKind.CLOUD,
            signing_key=self.signing_key,
            signing_key_fallback=self.signing_key_fallback,
        )
        return not isinstance(outcome, Exception)
