"""Traces of what runs do, with OpenTelemetry, when the ``OTEL_*`` environment asks for them.

``netrun run`` and ``netrun serve`` call :func:`configure` at start (``netrun test`` does not:
its runs are offline rehearsals); a program using the Python API calls it itself. It turns
tracing on when the environment names an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or an exporter (``OTEL_TRACES_EXPORTER=otlp|console``),
unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. Otherwise nothing happens
and no OpenTelemetry module is imported: this module is the standard library only, the SDK
is loaded by :mod:`netrun.tracing.observer` once tracing is on.

What the spans hold is :mod:`netrun.tracing.semconv`'s (the GenAI semantic conventions);
message content is recorded only with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``
(or ``configure(capture_content=True)``), and is redacted of the run's secrets always.

:func:`incoming` reads the W3C context of an untrusted request (the REST routes that start
runs record it with the run), with no OpenTelemetry either: a malformed ``traceparent`` is
dropped, never an error, and only the canonical form is kept.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .. import __version__, observe
from ..extras import install_hint

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from .observer import Tracer

CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_TRACESTATE_MEMBER = re.compile(
    r"^[a-z0-9][a-z0-9_\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$"
)
log = logging.getLogger("netrun.tracing")

_tracer: Tracer | None = None
_warned = False


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` asks for traces (see the module's docstring)."""
    if _true(environ.get("OTEL_SDK_DISABLED")):
        return False
    exporters = {e.strip().lower() for e in (environ.get("OTEL_TRACES_EXPORTER") or "").split(",") if e.strip()}
    if exporters:
        return bool(exporters & {"otlp", "console"})
    return any((environ.get(name) or "").strip() for name in _ENDPOINTS)


def configure(*, capture_content: bool | None = None, exporter: SpanExporter | None = None) -> bool:
    """Trace this process's runs if the ``OTEL_*`` environment (or ``exporter``: any SDK span
    exporter) asks for it; returns whether it traces. Idempotent. If the ``otel`` extra is
    not installed, one warning line says so and the process runs on untraced. Spans are
    flushed at exit (or by :func:`shutdown`)."""
    global _tracer, _warned
    if _tracer is not None:
        return True
    environ = os.environ
    if exporter is None and not wanted(environ):
        return False
    try:
        # The SDK, the exporter and its protobuf all load here: any of them missing (an
        # ``otel`` extra installed in part) is the same one warning, not a failed run.
        from .observer import build

        if exporter is None and "console" in (environ.get("OTEL_TRACES_EXPORTER") or "").lower():
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            # On stderr: stdout is the command's (`netrun run --json` prints the run there).
            exporter = ConsoleSpanExporter(out=sys.stderr)
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
        if protocol and protocol != "http/protobuf":
            log.warning("netrun: traces are exported over OTLP http/protobuf; %s is not supported (ignored)", protocol)
        capture = _true(environ.get(CAPTURE_CONTENT)) if capture_content is None else capture_content
        _tracer = build(resource_attributes(environ), capture, exporter)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("opentelemetry", "google")):
            raise
        if not _warned:
            _warned = True
            log.warning(
                "netrun: OTEL_* asks for traces but the 'otel' extra is not installed (%s is missing): %s; "
                "running without traces",
                exc.name,
                install_hint("otel"),
            )
        return False
    observe.install(_tracer)
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """Export the spans still buffered (a few seconds at most) and stop tracing."""
    global _tracer
    tracer, _tracer = _tracer, None
    if tracer is not None:
        observe.uninstall(tracer)
        tracer.shutdown()


def resource_attributes(environ: Mapping[str, str]) -> dict[str, Any]:
    """The resource of netrun's spans: ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``, values
    percent-decoded), ``service.name`` from ``OTEL_SERVICE_NAME``, else that list, else "netrun"."""
    attributes: dict[str, Any] = {}
    for item in (environ.get("OTEL_RESOURCE_ATTRIBUTES") or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attributes[key.strip()] = unquote(value.strip())
    attributes["service.name"] = (environ.get("OTEL_SERVICE_NAME") or "").strip() or attributes.get("service.name") or "netrun"
    attributes.setdefault("service.version", __version__)
    return attributes


def incoming(headers: Mapping[str, str]) -> dict[str, str]:
    """The W3C trace context of an untrusted request's ``headers`` (any case), in canonical
    form (``traceparent``, and ``tracestate`` when it is well formed), or {} when there is no
    valid ``traceparent``: a malformed one is ignored."""
    lowered = {k.lower(): v for k, v in headers.items() if k.lower() in ("traceparent", "tracestate")}
    raw = (lowered.get("traceparent") or "").strip()
    if len(raw) > 512:
        return {}
    found = _TRACEPARENT.match(raw)
    if found is None:
        return {}
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return {}
    context = {"traceparent": f"00-{trace_id}-{span_id}-{flags}"}
    state = (lowered.get("tracestate") or "").strip()
    members = [m.strip() for m in state.split(",") if m.strip()]
    if members and len(state) <= 512 and len(members) <= 32 and all(_TRACESTATE_MEMBER.match(m) for m in members):
        context["tracestate"] = ",".join(members)
    return context


__all__ = ["CAPTURE_CONTENT", "configure", "incoming", "resource_attributes", "shutdown", "wanted"]
