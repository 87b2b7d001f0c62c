"""A scripted HTTP server on 127.0.0.1 (stdlib, a real socket) for tests of HTTP clients.

Each path has a script: a list of replies used in order (the last one repeats), or a
responder ``(hit) -> Reply``. Every request is recorded as a :class:`Hit`, with the time
it arrived, so tests can count attempts, compare headers and measure waits. A reply may
wait first (``delay``), or stream its body without a ``Content-Length`` (``chunks``).
A script for ``"*"`` answers every other path; unknown paths answer 404 (recorded too).

    with FakeHttpServer() as server:
        server.script("/items", Reply(503), Reply(200, {"ok": True}))
        ...  # GET f"{server.url}/items"
        assert len(server.hits) == 2

A stdlib ``ThreadingHTTPServer`` rather than uvicorn: a handler that sleeps past the
client's timeout needs no event loop, and a client hanging up mid-reply is just ignored.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Hit:
    """One request as the server saw it."""

    method: str
    path: str
    target: str
    """The raw request target: path and query string, as sent."""
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    at: float
    """``time.monotonic()`` when the request arrived."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What to answer: ``body`` is bytes, text, or anything else (sent as JSON)."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering."""
    chunks: list[bytes] | None = None
    """Stream these pieces with no ``Content-Length`` (the connection closes at the end)."""

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


Responder = Callable[[Hit], Reply]


class FakeHttpServer:
    """A context manager serving scripted replies on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self._scripts: dict[str, list[Reply] | Responder] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # clients that hung up
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, path: str, *replies: Reply | Responder) -> None:
        """Answer ``path`` with these replies in order (the last repeats), or with one responder."""
        if len(replies) == 1 and callable(replies[0]):
            self._scripts[path] = replies[0]
        else:
            self._scripts[path] = [r for r in replies if isinstance(r, Reply)]

    def hits_for(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def _reply(self, hit: Hit) -> Reply:
        with self._lock:
            self.hits.append(hit)
            script = self._scripts.get(hit.path, self._scripts.get("*"))
            if script is None:
                return Reply(404, {"error": "no such path"})
            if callable(script):
                return script(hit)
            return script.pop(0) if len(script) > 1 else script[0]

    def __enter__(self) -> FakeHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()  # joins the handler threads: nothing outlives the test
        self._thread.join()


def _handler(owner: FakeHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            hit = Hit(self.command, parts.path, self.path, parse_qs(parts.query), headers, body, time.monotonic())
            reply = owner._reply(hit)
            if reply.delay:
                time.sleep(reply.delay)
            data, extra = reply.encoded()
            self.send_response(reply.status)
            for name, value in extra.items():
                self.send_header(name, value)
            if reply.chunks is None:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                return
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in reply.chunks:
                self.wfile.write(chunk)
                self.wfile.flush()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle  # noqa: N815 - the names http.server calls

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    return Handler
