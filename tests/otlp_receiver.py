"""A real OTLP/HTTP trace receiver on 127.0.0.1 for the tests: ``POST /v1/traces`` with an
``ExportTraceServiceRequest`` (protobuf, gzip or not), decoded with ``opentelemetry.proto``
into plain :class:`Received` spans the tests can assert on.

    with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, ...}
        ...  # run netrun with env
        spans = receiver.wait_for(lambda spans: any(s.name.startswith("invoke_workflow") for s in spans))

A stdlib ``ThreadingHTTPServer`` in a thread: the exporter under test is the real one,
over a real socket; only the collector is this small stand-in.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class Received:
    """One span as the collector got it (ids in lower-case hex, as in a ``traceparent``)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    """0 unset, 1 ok, 2 error (``Status.StatusCode``)."""
    status_message: str
    resource: dict[str, Any]
    start: int
    end: int

    @property
    def error(self) -> bool:
        return self.status_code == 2


def value(v: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as Python."""
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    return None if which is None else getattr(v, which)


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in items}


@dataclass
class OtlpReceiver:
    """A context manager collecting every span POSTed to ``{url}/v1/traces``."""

    spans: list[Received] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    """The headers of each export request (lower-case names)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def take(self, body: bytes, headers: dict[str, str]) -> None:
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        got = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    got.append(
                        Received(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            attributes=_attributes(s.attributes),
                            events=[(e.name, _attributes(e.attributes)) for e in s.events],
                            status_code=s.status.code,
                            status_message=s.status.message,
                            resource=resource,
                            start=s.start_time_unix_nano,
                            end=s.end_time_unix_nano,
                        )
                    )
        with self._lock:
            self.spans += got
            self.requests.append(headers)

    def of_trace(self, trace_id: str) -> list[Received]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, done: Callable[[list[Received]], bool], timeout: float = 20.0) -> list[Received]:
        """The spans received so far, once ``done(spans)`` holds (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"the spans wanted did not arrive in {timeout}s; got {[s.name for s in spans]}")
            time.sleep(0.02)

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()
            self.requests.clear()

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(owner: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            owner.take(body, {k.lower(): v for k, v in self.headers.items()})
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    return Handler


__all__ = ["OtlpReceiver", "Received", "value"]
