"""What ``netrun serve`` talks to, read from the environment as the Inngest SDKs read it.

- ``INNGEST_DEV`` set (``1``, or the dev server's URL): runs go to the Inngest dev server;
  nothing is signed.
- ``INNGEST_SIGNING_KEY`` set (and no ``INNGEST_DEV``): production, against Inngest Cloud
  or, with ``INNGEST_BASE_URL``, a self-hosted Inngest. Requests to ``/api/inngest`` must
  be signed, and recently (:mod:`netrun.serve.inngest_guard`); events are sent with
  ``INNGEST_EVENT_KEY``.
- Neither: no Inngest server; runs execute on the embedded local engine.

Production without a signing key is refused: an unsigned endpoint would run any caller's
function calls.

The URL netrun registers with Inngest (where Inngest sends every function call) comes from
configuration only, never from a request: ``INNGEST_SERVE_ORIGIN`` (an origin, as the
Inngest SDKs read it), else ``NETRUN_PUBLIC_URL`` (a URL, which may have a path prefix for
a proxy), else the address the server listens on.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from ..engines.journal_schema import data_dir as default_data_dir
from ..errors import NetrunError
from .run_events import RUN_BYTES as RUN_EVENTS_BYTES

Engine = Literal["local", "inngest"]
MetricsMode = Literal["token", "public", "off"]
METRICS_MODES: tuple[MetricsMode, ...] = get_args(MetricsMode)
InngestMode = Literal["dev", "cloud"]

SERVE_PATH = "/api/inngest"
DEFAULT_APP_ID = "netrun"


class SettingsError(NetrunError, phase="serve"):
    """The environment or the options ask for something netrun cannot start with."""


_SIGNING_KEY = re.compile(r"^(signkey-\w+-)?([0-9a-fA-F]{2})+$")


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class ServeSettings:
    paths: tuple[Path, ...]
    data_dir: Path
    engine: Engine
    inngest_mode: InngestMode | None
    """None: /api/inngest is not served (no Inngest server is configured)."""
    host: str = "127.0.0.1"
    port: int = 8000
    app_id: str = DEFAULT_APP_ID
    signing_key: str | None = None
    event_key: str | None = None
    api_base_url: str | None = None
    event_api_base_url: str | None = None
    api_token: str | None = None
    """``NETRUN_API_TOKEN``: the bearer token the REST API requires, if set."""
    public_url: str | None = None
    """``NETRUN_PUBLIC_URL``: the URL Inngest reaches this server at (registered at sync)."""
    serve_origin: str | None = None
    """``INNGEST_SERVE_ORIGIN``: the origin Inngest reaches this server at (wins over the
    origin of ``public_url``)."""
    watch: bool = True
    max_body: int = 1 << 20
    """``NETRUN_MAX_BODY``: the largest REST request body, in bytes (413 above it)."""
    max_inngest_body: int = 16 << 20
    """``NETRUN_MAX_INNGEST_BODY``: the largest request body to ``/api/inngest``, in bytes.
    Inngest keeps its calls under 4 MB (over that it sends no steps and the SDK fetches
    them), plus the triggering events: the default leaves room for both."""
    environ: Mapping[str, str] = field(default_factory=dict)
    events_max_bytes: int = RUN_EVENTS_BYTES
    """``NETRUN_EVENTS_MAX_BYTES``: the bytes of a run's journaled events (its SSE history);
    past them long fields are cut and ``text.delta`` is not kept (the end event always is)."""
    stream_secret: str | None = None
    """``NETRUN_STREAM_SECRET``: what stream tokens are signed with (default: derived from
    ``api_token``); set the same on replicas that must accept each other's tokens."""
    cors_origins: tuple[str, ...] = ()
    """``--cors-origin`` / ``NETRUN_CORS_ORIGINS``: the browser origins allowed to call the
    API (CORS); none by default."""
    metrics: MetricsMode = "token"
    """``--metrics`` / ``NETRUN_METRICS``: ``GET /metrics`` behind the API token (``token``),
    open to anyone who reaches the server (``public``: a scraper on a private network), or
    not served (``off``)."""

    @property
    def local_url(self) -> str:
        """``/api/inngest`` at the address this server listens on (netrun's own sync PUTs here)."""
        return f"http://{_url_host(self.host)}:{self.port}{SERVE_PATH}"

    @property
    def registered_origin(self) -> str:
        """The scheme, host and port Inngest is told to call: configured, never a request's."""
        if self.serve_origin:
            return self.serve_origin.rstrip("/")
        if self.public_url:
            parts = urllib.parse.urlsplit(self.public_url)
            return f"{parts.scheme}://{parts.netloc}"
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def registered_path(self) -> str:
        """The path Inngest is told to call: ``/api/inngest`` under ``public_url``'s path."""
        prefix = urllib.parse.urlsplit(self.public_url).path.rstrip("/") if self.public_url else ""
        return prefix + SERVE_PATH

    @property
    def registered_url(self) -> str:
        return self.registered_origin + self.registered_path

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        paths: tuple[Path, ...],
        *,
        engine: str = "auto",
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 8000,
        watch: bool = True,
        app_id: str | None = None,
        cors_origins: tuple[str, ...] = (),
        metrics: str | None = None,
    ) -> ServeSettings:
        dev = environ.get("INNGEST_DEV", "")
        is_dev = _truthy(dev)
        signing_key = environ.get("INNGEST_SIGNING_KEY") or None
        base_url = environ.get("INNGEST_BASE_URL") or None
        if is_dev and dev.startswith(("http://", "https://")):
            base_url = dev  # INNGEST_DEV may name the dev server
        configured = is_dev or signing_key is not None or base_url is not None or bool(environ.get("INNGEST_API_BASE_URL"))
        if engine == "auto":
            engine = "inngest" if configured else "local"
        mode: InngestMode | None = None
        if engine == "inngest" or configured:
            mode = "dev" if is_dev else "cloud"
            if mode == "cloud" and not signing_key:
                raise SettingsError(
                    "production mode needs INNGEST_SIGNING_KEY (Inngest signs every call to /api/inngest; "
                    "without the key anyone could run these functions). Set INNGEST_SIGNING_KEY, or set "
                    "INNGEST_DEV=1 to use the Inngest dev server, or unset the INNGEST_* variables to run "
                    "on the embedded local engine."
                )
        if mode == "cloud" and not environ.get("INNGEST_EVENT_KEY"):
            raise SettingsError(
                "production mode needs INNGEST_EVENT_KEY too (the key events are sent to Inngest with: "
                "POST /networks/{name}/runs and POST /events send events); find it in the Inngest dashboard"
            )
        if signing_key is not None and not _SIGNING_KEY.match(signing_key):
            raise SettingsError(
                "INNGEST_SIGNING_KEY is not a signing key: expected signkey-<env>-<hex digits> (or the hex digits alone, for a self-hosted Inngest)"
            )
        for var in (
            "INNGEST_BASE_URL",
            "INNGEST_API_BASE_URL",
            "INNGEST_EVENT_API_BASE_URL",
            "NETRUN_PUBLIC_URL",
            "INNGEST_SERVE_ORIGIN",
        ):
            value = environ.get(var)
            if value and not _http_url(value):
                raise SettingsError(f"{var} must be an http:// or https:// URL")  # the value may hold credentials
        for var in ("NETRUN_PUBLIC_URL", "INNGEST_SERVE_ORIGIN"):
            parts = urllib.parse.urlsplit(environ.get(var) or "")
            if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
                raise SettingsError(
                    f"{var} must be a plain URL: no user or password, query or fragment (Inngest calls it as it is)"
                )
        events_max_bytes = _bytes(environ, "NETRUN_EVENTS_MAX_BYTES", RUN_EVENTS_BYTES, minimum=10_000)
        origin = urllib.parse.urlsplit(environ.get("INNGEST_SERVE_ORIGIN") or "")
        if origin.path.strip("/"):
            raise SettingsError(
                "INNGEST_SERVE_ORIGIN is an origin (scheme, host and port: https://netrun.example.com); "
                "a path prefix belongs in NETRUN_PUBLIC_URL"
            )
        return cls(
            paths=paths,
            data_dir=data_dir or default_data_dir(environ),
            engine=engine,  # type: ignore[arg-type]
            inngest_mode=mode,
            host=host,
            port=port,
            app_id=app_id or environ.get("NETRUN_APP_ID") or DEFAULT_APP_ID,
            signing_key=signing_key,
            event_key=environ.get("INNGEST_EVENT_KEY") or None,
            api_base_url=environ.get("INNGEST_API_BASE_URL") or base_url,
            event_api_base_url=environ.get("INNGEST_EVENT_API_BASE_URL") or base_url,
            api_token=environ.get("NETRUN_API_TOKEN") or None,
            public_url=environ.get("NETRUN_PUBLIC_URL") or None,
            serve_origin=environ.get("INNGEST_SERVE_ORIGIN") or None,
            watch=watch,
            max_body=_bytes(environ, "NETRUN_MAX_BODY", cls.max_body),
            max_inngest_body=_bytes(environ, "NETRUN_MAX_INNGEST_BODY", cls.max_inngest_body),
            environ=environ,
            events_max_bytes=events_max_bytes,
            stream_secret=environ.get("NETRUN_STREAM_SECRET") or None,
            cors_origins=_origins(cors_origins, environ.get("NETRUN_CORS_ORIGINS") or ""),
            metrics=metrics_mode(
                metrics or environ.get("NETRUN_METRICS") or "token", "--metrics" if metrics else "NETRUN_METRICS"
            ),
        )

    def describe(self) -> str:
        """One line for the start-up log; no secret appears in it."""
        if self.inngest_mode is None:
            where = "embedded local engine (no Inngest server configured)"
        elif self.inngest_mode == "dev":
            where = f"Inngest dev server{' at ' + self.api_base_url if self.api_base_url else ''}"
        else:
            where = f"Inngest {'at ' + self.api_base_url if self.api_base_url else 'Cloud'} (signed requests only)"
        if self.inngest_mode is not None:
            where += f"; registered at {self.registered_url}"
        runs = "the local engine" if self.engine == "local" else "Inngest"
        auth = "bearer token required" if self.api_token else "no token"
        cors = f"; CORS: {', '.join(self.cors_origins)}" if self.cors_origins else ""
        metrics = {"token": "", "public": "; /metrics: public (no token)", "off": "; /metrics: off"}[self.metrics]
        return f"mode: {where}; runs execute on {runs}; REST API: {auth}{cors}{metrics}"


def metrics_mode(value: str, where: str = "NETRUN_METRICS") -> MetricsMode:
    """``token``, ``public`` or ``off`` (any case), else SettingsError naming ``where``."""
    text = value.strip().lower()
    for mode in METRICS_MODES:
        if text == mode:
            return mode
    raise SettingsError(f"{where} must be one of {', '.join(METRICS_MODES)} (got {value.strip()[:40]!r})")


def _bytes(environ: Mapping[str, str], var: str, default: int, minimum: int = 1) -> int:
    """A size in bytes from the environment (a whole number, at least ``minimum``), else ``default``."""
    text = (environ.get(var) or "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:
        least = "above 0" if minimum == 1 else f"at least {minimum}"
        raise SettingsError(f"{var} must be a number of bytes {least}, such as {max(default, minimum)} (got {text[:40]!r})")
    return int(text)


def cors_origin(value: str) -> str:
    """A CORS origin as browsers send it (``scheme://host[:port]``, no path, lower-case
    scheme and host), or SettingsError naming what is wrong. ``*`` allows every origin."""
    text = value.strip()
    if text == "*":
        return text
    shown = re.sub(r"//[^/?#]*@", "//***@", text)[:80]  # a user and password are never echoed
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        raise SettingsError(f"the CORS origin {shown!r} has a port that is not a number from 0 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"the CORS origin {shown!r} is not an origin: expected http:// or https:// and a host, "
            "such as https://console.example.com or http://localhost:5173"
        )
    if parts.username is not None or parts.password is not None or parts.path.strip("/") or parts.query or parts.fragment:
        raise SettingsError(
            f"the CORS origin {shown!r} must be scheme, host and port only (no path, user, query or fragment): "
            f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        )
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[parts.scheme]  # a browser's Origin header leaves it out
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def _origins(given: tuple[str, ...], listed: str) -> tuple[str, ...]:
    """The CORS origins of the options, else of ``NETRUN_CORS_ORIGINS`` (comma-separated)."""
    values = list(given) or [v for v in listed.split(",") if v.strip()]
    try:
        return tuple(dict.fromkeys(cors_origin(v) for v in values))
    except SettingsError as exc:
        where = "--cors-origin" if given else "NETRUN_CORS_ORIGINS"
        raise SettingsError(f"{where}: {exc}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http_url(value: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
