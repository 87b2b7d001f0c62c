"""An outbound HTTP request declared in a network file, as http tools and the HTTP history
store both send one: the ``${ENV}`` references of one call, headers servers route by, and
the URL template rendered and held to its origin.

Why it is built this way (the whole argument is in :mod:`netrun.tools.http`): a secret
never passes through the template engine. Each ``${ENV}`` reference in the raw spec string
is swapped for a placeholder carrying 128 random bits made fresh for each call, the
template is rendered, and only then are placeholders swapped for values; every value taken
from the environment is redacted from whatever the call reports. The URL is built by
:mod:`netrun.urltemplate` (values encoded for the component they land in) and the parsed
URL must point at the origin the url is written with, or one of ``allowed_origins``.

A module of its own below both users, so that the history store does not import a tool.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ..envrefs import REF, MissingEnvError
from ..redact import Secrets
from ..urltemplate import DEFAULT_PORTS, ROUTING_HEADERS, BuiltUrl, UrlError, build, origin_problem
from .render import each_string, render_pieces
from .tooling import ToolOutcome


class CallEnv:
    """The ``${ENV}`` references of one call: placeholders in, values out, values redacted."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.nonce = secrets.token_hex(16)
        self.values: dict[str, str] = {}  # placeholder -> value
        self.refs: dict[str, str] = {}  # placeholder -> reference text (for error messages)
        self.secrets = Secrets()  # environment values (defaults are in the file: not secret)

    def protect(self, text: str) -> str:
        """Replace references by placeholders; ``$${`` (escaped) becomes a literal ``${``."""
        out, pos = [], 0
        for m in REF.finditer(text):
            before = text[: m.start()]
            if (len(before) - len(before.rstrip("$"))) % 2:  # `$${NAME}`: an escaped, literal `${`
                continue
            name, default = m.group("name"), m.group("default")
            value = self.environ.get(name)
            if value is None and default is None:
                raise MissingEnvError(f"environment variable {name} is not set")
            if value:
                self.secrets.add(value)
            placeholder = f"NETRUNENV{self.nonce}N{len(self.values)}X"
            self.values[placeholder], self.refs[placeholder] = value if value is not None else default, m.group()
            out += [text[pos : m.start()].replace("$${", "${"), placeholder]
            pos = m.end()
        out.append(text[pos:].replace("$${", "${"))
        return "".join(out)

    def reveal(self, text: str) -> str:
        """Placeholders -> values; only ever applied to rendered spec strings."""
        if self.nonce in text:
            for placeholder, value in self.values.items():
                text = text.replace(placeholder, value)
        return text

    def redact(self, text: str) -> str:
        """Placeholders -> reference text, secret values (in every encoding, :mod:`netrun.redact`) -> ``***``."""
        for placeholder, ref in self.refs.items():
            text = text.replace(placeholder, ref)
        text = re.sub(rf"NETRUNENV{self.nonce[:4]}[0-9a-fNX]*", "${…}", text)  # cut short (template errors quote 60 chars)
        return self.secrets.redact(text)

    def redact_outcome(self, outcome: ToolOutcome) -> ToolOutcome:
        def clean(value: Any) -> Any:
            if isinstance(value, dict):
                return {self.redact(k): clean(v) for k, v in value.items()}
            return [clean(v) for v in value] if isinstance(value, list) else each_string(value, self.redact)

        error = None if outcome.error is None else self.redact(outcome.error)
        return ToolOutcome(result=clean(outcome.result), error=error, state_patch=outcome.state_patch)


def check_routing_headers(headers: Mapping[str, str]) -> None:
    """Refuse a templated header that servers and proxies route by (``Host``, ``X-Forwarded-Host``, ...)."""
    for name, value in headers.items():
        if name.lower() in ROUTING_HEADERS and ("{{" in value or "{%" in value):
            raise UrlError(
                f"header {name} is a template: servers and proxies route by it, so a value there could change the destination"
            )


def render_url(
    url: str,
    variables: Mapping[str, Any],
    env: CallEnv,
    query: Sequence[tuple[str, str]] = (),
    allowed_origins: Sequence[str] = (),
) -> tuple[BuiltUrl, httpx.URL | None]:
    """Render a URL template the author's way (:mod:`netrun.urltemplate`): values encoded for
    the component they land in, the origin kept; the built URL and the parsed one to send
    (see :func:`check_target`). Raises :class:`UrlError` (nothing is to be sent), RenderError
    or MissingEnvError. Used by http tools and the HTTP history store alike."""
    # ${ENV} text is the operator's, so it is revealed before the URL is taken apart and
    # counts as written by the author (`url: ${ORDERS_URL}/v1/orders/{{ args.id }}`).
    pieces = [(env.reveal(text), value) for text, value in render_pieces(env.protect(url), variables)]
    built = build(pieces, query)
    return built, check_target(built, allowed_origins, env)


def check_target(built: BuiltUrl, allowed_origins: Sequence[str], env: CallEnv) -> httpx.URL | None:
    """The parsed URL to send, once its origin is the one its url is written with or one of
    ``allowed_origins``; None when httpx cannot parse it (nothing can be sent to it)."""
    allowed: dict[tuple[str, bytes, int | None], str] = {}
    for entry in allowed_origins:
        text = env.reveal(env.protect(entry))
        problem = origin_problem(text)
        if problem:
            raise UrlError(f"allowed_origins: {problem}")
        allowed[_origin(httpx.URL(text))] = text
    if built.templated_origin and not allowed:
        raise UrlError(
            f"a value wrote (part of) the origin {built.origin!r}; the request may only go to the origin its url "
            "is written with (values are allowed after the first '/' of the path; an http tool's allowed_origins "
            "lists more origins)"
        )
    try:
        url = httpx.URL(built.url)
    except (httpx.InvalidURL, UnicodeError, ValueError):
        if built.templated_origin:
            raise UrlError(f"{built.origin!r} is not an origin this tool may call") from None
        return None
    if built.templated_origin:
        if url.userinfo:
            raise UrlError(f"{built.origin!r} holds a user name or password, which a value may not write")
    elif not url.host:
        return url  # relative, or no host: httpx refuses it before connecting
    else:
        written = httpx.URL(built.origin)
        allowed[_origin(written)] = built.origin
    if _origin(url) not in allowed:
        raise UrlError(f"{_show(url)} is not an origin this tool may call; it may call: {', '.join(sorted(allowed.values()))}")
    return url


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    """Scheme, host (IDNA-encoded, as httpx connects to it) and port, the default one filled in."""
    return url.scheme, url.raw_host.lower(), url.port or DEFAULT_PORTS.get(url.scheme)


def _show(url: httpx.URL) -> str:
    port = url.port or DEFAULT_PORTS.get(url.scheme)
    return f"{url.scheme}://{url.raw_host.decode('ascii', 'replace')}:{port}"
