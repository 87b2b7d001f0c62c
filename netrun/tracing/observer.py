"""The OpenTelemetry observer: netrun's spans (:mod:`netrun.observe`) as OTel spans, exported
over OTLP/HTTP (protobuf) by a batch processor, so a run never waits for the collector.

Imported only by :func:`netrun.tracing.configure` once tracing is asked for: this is where
the SDK is loaded (about 60 ms), never on the path of a run that is not traced.

One run, one trace. A run's execution continues the W3C context recorded with the run
(``options["trace"]``: the ``traceparent`` of the REST request that started it). A run
started with no context gets a trace id derived from its run id, so every execution of
it (a resume after a wait, each call Inngest makes) lands in the same trace with no more
state to keep; its first ``invoke_workflow`` span is that trace's root.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..observe import Span
from . import semconv

_W3C = TraceContextTextMapPropagator()  # traceparent + tracestate only: no baggage crosses to a tool
_KINDS = {"run": SpanKind.INTERNAL, "agent": SpanKind.INTERNAL, "chat": SpanKind.CLIENT, "tool": SpanKind.INTERNAL}
_root_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("netrun_root_trace_id", default=None)
log = logging.getLogger("netrun.tracing")


def trace_id_of(run_id: str) -> int:
    """The trace id of a run started without a trace context: the same for every execution."""
    return int.from_bytes(hashlib.sha256(f"netrun-run:{run_id}".encode()).digest()[:16], "big") or 1


class _RunIds(RandomIdGenerator):
    """Random ids, except a root ``run`` span's trace id, which its run id decides."""

    def generate_trace_id(self) -> int:
        wanted = _root_trace_id.get()
        return wanted if wanted is not None else super().generate_trace_id()


class Tracer:
    """The :class:`netrun.observe.Observer` that records spans with the OpenTelemetry SDK."""

    def __init__(self, provider: TracerProvider, capture_content: bool, exporter: SpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter
        self.capture_content = capture_content
        self._tracer = provider.get_tracer("netrun")

    def start(self, span: Span) -> Any:
        parent = self._parent(span) if span.kind == "run" else None
        token = None
        if span.kind == "run" and parent is None:
            # A run with no context recorded is a trace of its own, whatever span is current
            # here (a run resumed or started from inside another run's task carries that
            # run's context): every execution of it, wherever it happens, lands in the trace
            # its run id names. A run started by another records that run's context instead.
            parent = otel_context.Context()
            token = _root_trace_id.set(trace_id_of(str(span.attributes.get("run_id") or "")))
        try:
            started = self._tracer.start_span(
                semconv.span_name(span),
                context=parent,
                kind=_KINDS[span.kind],
                attributes=semconv.start_attributes(span, self.capture_content),
            )
        finally:
            if token is not None:
                _root_trace_id.reset(token)
        return started, otel_context.attach(trace.set_span_in_context(started))

    def end(self, span: Span, handle: Any) -> None:
        started, token = handle
        try:
            started.set_attributes(semconv.end_attributes(span, self.capture_content))
            if span.error is not None:
                started.set_status(Status(StatusCode.ERROR, span.error))
            elif span.exception is not None:
                # An engine's control flow (a run parking to wait, an Inngest step handing
                # back its result, a cancelled task) left the block: not a failure.
                started.set_attribute("netrun.interrupted", type(span.exception).__name__)
        finally:
            otel_context.detach(token)
            started.end()

    def event(self, name: str, attributes: Mapping[str, Any]) -> None:
        trace.get_current_span().add_event(name, semconv.event_attributes(attributes, self.capture_content))

    def inject(self, headers: MutableMapping[str, str]) -> None:
        _W3C.inject(headers)

    def carrier(self) -> dict[str, str]:
        found: dict[str, str] = {}
        _W3C.inject(found)
        return found

    def shutdown(self, timeout_seconds: float = 2.0) -> None:
        """Export what is buffered (at most ``timeout_seconds``: a collector that is down
        must not hold the process), then stop the exporter."""
        # The SDK's force_flush exports in the calling thread and ignores its own timeout
        # while the exporter backs off (up to OTEL_EXPORTER_OTLP_TIMEOUT, 10 s): it runs in a
        # thread of its own, and a flush still retrying when time is up is cut short by
        # stopping the exporter, which ends its back-off at once.
        flush = threading.Thread(target=self.provider.force_flush, name="netrun-trace-flush", daemon=True)
        flush.start()
        flush.join(timeout_seconds)
        if flush.is_alive():
            self.exporter.shutdown()
            flush.join(1.0)
        closing = threading.Thread(target=self.provider.shutdown, name="netrun-trace-shutdown", daemon=True)
        closing.start()
        closing.join(timeout_seconds)

    @staticmethod
    def _parent(span: Span) -> otel_context.Context | None:
        """The context a run's execution continues: the one recorded with the run, if valid."""
        if not span.parent:
            return None
        extracted = _W3C.extract(dict(span.parent))
        return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


def build(resource_attributes: dict[str, Any], capture_content: bool, exporter: SpanExporter | None = None) -> Tracer:
    """A tracer exporting with ``exporter``, else OTLP/HTTP as the ``OTEL_EXPORTER_OTLP_*``
    variables say (endpoint, headers, timeout, compression: the exporter reads them), through
    a batch processor (``OTEL_BSP_*``). The sampler is ``OTEL_TRACES_SAMPLER``'s."""
    provider = TracerProvider(resource=Resource.create(resource_attributes), id_generator=_RunIds(), shutdown_on_exit=False)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter.__class__.__name__ == "ConsoleSpanExporter":  # for a person reading: at once, in order
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracer(provider, capture_content, exporter)


__all__ = ["Tracer", "build", "trace_id_of"]
