"""URL templates: what a ``{{ }}`` value may change in a URL, and what it may not.

A URL an HTTP tool is declared with is the author's: its scheme, host and port (the
origin) and the shape of its path. A value a template inserts (model ``args``, state, an
event) is data, whatever characters it holds. So the URL is taken apart by the author's
text alone (``${ENV}`` values count as the author's: the operator wrote them), and each
value is percent-encoded for the component it lands in:

* a value in the origin (``http://127.0.0.1:8080{{ args.path }}``, ``http://{{ host }}/``)
  is refused, unless the tool lists ``allowed_origins``: then it may write the origin,
  and the final URL must point into one of them (checked by the caller, on the parsed URL);
* a value in the path is one segment's text: everything but ``A-Z a-z 0-9 - . _ ~`` is
  encoded (``/``, ``\\``, ``?``, ``#``, ``%``, ``@``, ``:``, CR, LF, ...), and a value that
  makes a segment ``.``, ``..`` (in any encoding or width) or empty is refused;
* a value in the query or the fragment is encoded the same way (``&``, ``=`` included).

This module imports no HTTP client: ``netrun validate`` uses it too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes, urlsplit

from .errors import NetrunError

Piece = tuple[str, bool]
"""Rendered text, and whether a ``{{ }}`` inserted it (True) or the author wrote it."""

ROUTING_HEADERS = frozenset(
    {"host", "forwarded", "x-forwarded-host", "x-forwarded-server", "x-forwarded-proto", "x-forwarded-port",
     "x-forwarded-scheme", "x-host", "x-original-url", "x-rewrite-url", "x-original-host", "x-forwarded-prefix",
     "x-forwarded-uri", "x-forwarded-path", "x-original-uri", "x-envoy-original-path", "x-http-destinationurl"}
)  # fmt: skip
"""Headers a server or proxy may route by: their values must not come from templates."""

DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlError(ValueError, NetrunError, phase="run"):
    """A rendered URL that would go somewhere else than the author declared (nothing is sent)."""


@dataclass(frozen=True)
class BuiltUrl:
    url: str
    """The URL to send: the author's text with every value encoded for its component."""
    origin: str
    """The text before the path: the origin as written (``http://h:1``), or as values wrote it."""
    templated_origin: bool
    """A value wrote part of the origin (only allowed with ``allowed_origins``)."""


def _is(chars: Sequence[tuple[str, bool]], i: int, text: str) -> bool:
    """The author (not a value) wrote ``text`` at ``i``."""
    return all(i + k < len(chars) and chars[i + k] == (c, False) for k, c in enumerate(text))


def split(pieces: Iterable[Piece]) -> tuple[list[Piece], list[Piece], list[Piece], list[Piece]]:
    """Origin, path, query and fragment pieces, cut at delimiters the author wrote: a
    delimiter inside a value is data, so a value can never open or close a component."""
    chars = [(c, v) for text, v in pieces for c in (text or [""])]  # an empty value stays, as ("", True)
    n = len(chars)

    def author(i: int, delimiters: str) -> bool:
        return not chars[i][1] and chars[i][0] in delimiters

    # The authority ends at the first author-written '/', '?' or '#' after '://'; with no
    # '://' before the first such delimiter, the origin is everything before it.
    end = 0
    while end < n and not author(end, "/?#"):
        if _is(chars, end, "://"):
            end += 3
            while end < n and not author(end, "/?#"):
                end += 1
            break
        end += 1
    query = next((i for i in range(end, n) if author(i, "?#")), n)
    fragment = next((i for i in range(query, n) if author(i, "#")), n)
    bounds = (0, end, query, fragment, n)
    origin, path, inline, rest = (_pieces(chars[bounds[k] : bounds[k + 1]]) for k in range(4))
    return origin, path, inline, rest


def _pieces(chars: list[tuple[str, bool]]) -> list[Piece]:
    out: list[Piece] = []
    for c, v in chars:
        if out and out[-1][1] == v:
            out[-1] = (out[-1][0] + c, v)
        else:
            out.append((c, v))
    return out


def _encode(pieces: Iterable[Piece]) -> str:
    return "".join(quote(text, safe="") if value else text for text, value in pieces)


_OVERLONG = re.compile(rb"[\xc0\xc1][\x80-\xbf]|\xe0[\x80-\x9f][\x80-\xbf]|\xf0[\x80-\x8f][\x80-\xbf]{2}")
_PERCENT_U = re.compile(r"%u([0-9A-Fa-f]{4})")


def _ascii_of_overlong(m: re.Match[bytes]) -> bytes:
    """An overlong UTF-8 sequence (``%c0%ae`` is '.' to a lax decoder) as the character it hides."""
    value = 0
    for i, byte in enumerate(m.group()):
        value = (value << 6) | (byte & (0x3F if i else 0x7F >> len(m.group())))
    return bytes([value]) if value < 0x80 else m.group()


def _dot_like(text: str) -> bool:
    """``.`` or ``..`` once decoded as far as any server might: percent-decoding (repeated,
    ``%uXXXX`` too), overlong UTF-8 (``%c0%ae``), Unicode width folding (``．．``), ``\\`` as
    ``/``, a ``;param`` tail (``..;``), and invisible characters a server drops or stops at
    (NUL, controls, zero-width ones)."""
    for _ in range(4):
        raw = _OVERLONG.sub(_ascii_of_overlong, unquote_to_bytes(_PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), text)))
        decoded = raw.decode("utf-8", "replace")
        if decoded == text:
            break
        text = decoded
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf"))
    return any(part.split(";")[0].strip() in (".", "..") for part in re.split(r"[/\\]", text))


def _path(pieces: list[Piece]) -> str:
    """Encode values in the path; refuse a value that makes a segment a dot segment or empty."""
    segments: list[list[Piece]] = [[]]
    for text, value in pieces:
        if value:
            segments[-1].append((text, True))
            continue
        first, *rest = text.split("/")
        segments[-1].append((first, False))
        segments.extend([[(part, False)] for part in rest])
    for segment in segments:
        if not any(value for _, value in segment):
            continue
        raw = "".join(text for text, _ in segment)
        values = ", ".join(repr(text) for text, value in segment if value)
        if not raw:
            raise UrlError(f"the value {values} would leave a path segment empty (a value in the path must not be empty)")
        if _dot_like(raw):
            raise UrlError(
                f"the value {values} would make the path segment {raw!r} a '.' or '..' segment, which leaves the "
                "path the tool was declared with ('.' and '..' from values are refused, in any encoding)"
            )
    return _encode(pieces)


def build(pieces: Sequence[Piece], query: Sequence[tuple[str, str]] = ()) -> BuiltUrl:
    """The URL to send, from rendered pieces and the ``query:`` mapping (appended to an
    inline query string, which is kept)."""
    origin, path, inline, fragment = split(pieces)
    templated = any(value for _, value in origin)
    origin_text = "".join(text for text, _ in origin)
    if templated and re.search(r"[\x00-\x20\x7f\\?#@]", origin_text):
        raise UrlError(
            f"the origin {origin_text!r} written by a value holds '?', '#', '@', '\\', whitespace or a control "
            "character (a value there may write scheme://host[:port] and a path, nothing else)"
        )
    if templated and _dot_like_path(origin_text):
        raise UrlError(f"the URL {origin_text!r} written by a value holds a '.' or '..' path segment")
    query_text = _encode(inline)
    if query:
        extra = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
        query_text = (query_text + ("" if query_text.endswith(("?", "&")) else "&") + extra) if query_text else "?" + extra
    return BuiltUrl(origin_text + _path(path) + query_text + _encode(fragment), origin_text, templated)


def _dot_like_path(url: str) -> bool:
    path = urlsplit(url).path if "://" in url else url
    return any(segment and _dot_like(segment) for segment in path.split("/"))


def origin_problem(text: str) -> str | None:
    """Why ``text`` is not an origin (``https://api.example.com``, ``http://127.0.0.1:8080``), or None."""
    if re.search(r"[\x00-\x20\x7f\\]", text):
        return f"{text!r} holds whitespace, a control character or '\\'"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError as exc:
        return f"{text!r} is not an origin: {exc}"
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return f"{text!r} is not an origin: write scheme://host[:port] with http or https"
    if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith(("?", "#")):
        return f"{text!r} is not an origin: write scheme://host[:port] only (no user, path, query or fragment)"
    return None


def template_origin_problem(pieces: Sequence[Piece], allowed_origins: bool = True) -> str | None:
    """For ``netrun validate``: a message when a ``{{ }}`` of a URL template lands in its
    origin. ``pieces`` are the template's own text (False) and its ``{{ }}`` (True); text of
    ``${ENV}`` references is unknown until run time, so an origin holding one is not judged.
    ``allowed_origins``: the URL's owner has that setting (http tools; not history endpoints)."""
    origin = split(pieces)[0]
    if any(value for _, value in origin) and "${" not in "".join(text for text, value in origin if not value):
        return (
            "a template in the origin (scheme, host or port) of the url: a value there could send the request "
            "and its headers to another server; write scheme://host[:port] literally or from ${ENV} and put "
            "templates after the first '/' of the path"
            + (", or list the origins the tool may call in allowed_origins" if allowed_origins else "")
        )
    return None
