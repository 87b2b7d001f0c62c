"""The forms a secret may be echoed in, each searched for by :class:`netrun.redact.Secrets`.

Plain, percent-encoded (as ``quote``, ``quote_plus``, httpx's path and query encoders,
lower-case hex too), JSON-escaped, as a Python bytes repr (h11 quotes a bad header that way),
and base64 (HTTP Basic auth, at any offset inside a longer encoded string).
"""

from __future__ import annotations

import base64
import html
import json
import re
import unicodedata
from urllib.parse import quote, quote_plus

MIN_LENGTH = 4
"""Values shorter than this are not redacted (see :mod:`netrun.redact`)."""

# The WHATWG URL standard's percent-encode sets (httpx's ``_urlparse`` follows them): the
# printable ASCII characters each URL part encodes; every other one is kept as it is.
_QUERY_SET = ' "#<>'
_URL_SETS = (_QUERY_SET, _QUERY_SET + "?`{}", _QUERY_SET + "?`{}/:;=@[\\]^|", ' "<>`')  # query, path, userinfo, fragment
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _whatwg_quote(text: str, encoded: str) -> str:
    """``text`` percent-encoded as a WHATWG URL part with the set ``encoded`` (controls and
    non-ASCII always); an existing ``%XX`` escape is kept, as httpx keeps it."""

    def part(piece: str) -> str:
        return "".join(c if " " < c < "\x7f" and c not in encoded else quote(c, safe="") for c in piece)

    out, pos = [], 0
    for m in _ESCAPE.finditer(text):
        out += [part(text[pos : m.start()]), m.group()]
        pos = m.end()
    out.append(part(text[pos:]))
    return "".join(out)


def encodings(secret: str) -> set[str]:
    """A secret as it may be echoed back (see the module docstring); forms shorter than
    :data:`MIN_LENGTH` are left out. A service may normalize Unicode (macOS file names are
    NFD, many stores NFC): a non-ASCII secret is searched in each normal form too."""
    if secret.isascii():
        return _encodings(secret)
    return set().union(
        *(_encodings(unicodedata.normalize(n, secret)) for n in ("NFC", "NFD", "NFKC", "NFKD")), _encodings(secret)
    )


def _encodings(secret: str) -> set[str]:
    forms = {
        secret,
        quote(secret),
        quote(secret, safe=""),
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        *(_whatwg_quote(secret, encoded) for encoded in _URL_SETS),
        repr(secret.encode())[2:-1],
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    forms |= {html.escape(secret), html.escape(secret, quote=False)}
    forms |= {_PERCENT.sub(lambda m: m.group().lower(), f) for f in forms if "%" in f}
    forms |= _base64_forms(secret.encode())
    return {f for f in forms if len(f) >= MIN_LENGTH}


def _base64_forms(raw: bytes) -> set[str]:
    """The base64 characters that depend on ``raw`` only, for each of the three offsets it
    may start at inside a longer encoded value (``user:secret`` in a Basic auth header)."""
    forms = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = -(-8 * offset // 6)  # the first character made of secret bits only
        end = 8 * (offset + len(raw)) // 6  # past the last one
        inner = encoded[start:end]
        if len(inner) >= MIN_LENGTH:  # as short as the shortest secret form: a 4-character password in Basic auth
            forms |= {inner, inner.replace("+", "-").replace("/", "_")}
    return forms


__all__ = ["MIN_LENGTH", "encodings"]
