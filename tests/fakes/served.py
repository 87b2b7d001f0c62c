"""A ``netrun serve`` application in a real uvicorn server on 127.0.0.1, in a thread.

``restart()`` stops the server (its lifespan ends: tasks cancelled, journal closed) and
starts a new application from the same factory on the same port, as a process restart
would; the data directory carries what survives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .server_thread import ServerThread


class Served:
    def __init__(self, make_app: Callable[[int], Any], port: int = 0) -> None:
        self.make_app = make_app
        self.port = port
        self.app: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Served:
        self._thread = ServerThread(self.make_app, self.port, name="netrun-serve")
        self.port, self.app = self._thread.port, self._thread.app
        return self

    def stop(self) -> None:
        self._thread.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
