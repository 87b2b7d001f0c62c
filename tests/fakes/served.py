"""A ``netrun serve`` application in a real uvicorn server on 127.0.0.1, in a thread.

``restart()`` stops the server (its lifespan ends: tasks cancelled, journal closed) and
starts a new application from the same factory on the same port, as a process restart
would; the data directory carries what survives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from .llm_server import _listen


class Served:
    def __init__(self, make_app: Callable[[int], Any], port: int = 0) -> None:
        self.make_app = make_app
        self.port = port
        self.app: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Served:
        sock = _listen(self.port)
        self.port = sock.getsockname()[1]
        self.app = self.make_app(self.port)
        config = uvicorn.Config(self.app, log_level="warning", ws="none", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="netrun-serve")
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("netrun serve did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self._sock.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
