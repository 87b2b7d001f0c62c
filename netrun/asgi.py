"""The ``netrun serve`` application for code that embeds netrun: :func:`asgi_app` builds it,
:func:`mount` mounts it in an existing FastAPI application (running its lifespan inside the
parent's). Part of the Python API (:mod:`netrun.api`); ``netrun`` re-exports both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api import Model, PathLike, _factory

if TYPE_CHECKING:
    from fastapi import FastAPI


def asgi_app(
    paths: Iterable[PathLike],
    *,
    data_dir: PathLike | None = None,
    model: Model | None = None,
    environ: Mapping[str, str] | None = None,
    engine: str = "local",
    watch: bool = False,
    api_token: str | None = None,
) -> FastAPI:
    """The ``netrun serve`` application (REST API, SSE, ``/api/inngest``) serving the network
    files under ``paths``, to run with any ASGI server or :func:`mount` in a FastAPI app.

    ``engine``: ``local`` (the embedded engine; the default), ``inngest`` or ``auto`` (as
    ``netrun serve`` picks from the ``INNGEST_*`` variables of ``environ``). ``data_dir``:
    where its journal is (default ``$NETRUN_DATA_DIR``, else ``.netrun``). ``watch``: reload
    the files when they change. ``api_token``: the bearer token the REST API requires
    (default ``NETRUN_API_TOKEN``). Raises ``SettingsError`` for settings it cannot start
    with and ``StartError`` for files with errors (both :class:`~netrun.errors.NetrunError`).
    Its runs are traced as ``netrun serve``'s are when the ``OTEL_*`` variables of the process
    ask for it (:func:`netrun.tracing.configure`; spans are flushed at exit).
    """
    from . import tracing
    from .serve.app import create_app
    from .serve.settings import ServeSettings

    tracing.configure()

    env = dict(os.environ if environ is None else environ)
    settings = ServeSettings.from_env(
        env, tuple(Path(p) for p in paths), engine=engine, data_dir=Path(data_dir) if data_dir is not None else None, watch=watch
    )
    if api_token is not None:
        settings = dataclasses.replace(settings, api_token=api_token)
    return create_app(settings, models=_factory(model))


def mount(parent: FastAPI, app: FastAPI, path: str = "/netrun") -> None:
    """Mount the :func:`asgi_app` ``app`` at ``path`` of ``parent``, and run its lifespan
    inside ``parent``'s: Starlette runs no lifespan of a mounted application, and netrun's
    opens the journal, resumes the runs left executing and closes them at shutdown."""
    parent.mount(path, app)
    outer = parent.router.lifespan_context

    @contextlib.asynccontextmanager
    async def both(started: Any) -> AsyncIterator[Any]:
        async with app.router.lifespan_context(app), outer(started) as state:
            yield state

    parent.router.lifespan_context = both


__all__ = ["asgi_app", "mount"]
