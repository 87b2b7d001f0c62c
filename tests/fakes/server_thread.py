"""Test servers in real uvicorn on 127.0.0.1, in a background thread; free ports."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn


def free_port() -> int:
    """A port nothing listens on right now (for a server started by a subprocess, or to be refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listen(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1: connections queue from now on, before the server runs."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, Nagle's algorithm and the client's
    # delayed ACK add ~40 ms to every response written in more than one piece.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def config(app: Any, lifespan: str = "auto") -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", lifespan=lifespan, ws="auto", timeout_graceful_shutdown=2)


class ServerThread:
    """The app ``make_app(port)`` served on ``port`` (0: a free one) until :meth:`stop`; the
    app is made once the port is known (a netrun server must know its own URL)."""

    def __init__(
        self, make_app: Callable[[int], Any], port: int = 0, *, name: str, lifespan: str = "auto", timeout: float = 20
    ) -> None:
        self._sock = listen(port)
        self.port: int = self._sock.getsockname()[1]
        self.app = make_app(self.port)
        self._server = uvicorn.Server(config(self.app, lifespan))  # signal handlers are only installed in the main thread
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True, name=name)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.005)

    def stop(self, timeout: float = 20) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout)
        self._sock.close()
