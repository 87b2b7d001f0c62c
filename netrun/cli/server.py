"""``netrun serve``: networks served as Inngest functions and a REST API, on uvicorn.

The server's settings come from the options and the environment
(:class:`netrun.serve.settings.ServeSettings`); a server that cannot start says why, as a
report, and exits 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from .group import _Command, _Reported


@click.command(cls=_Command)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="The interface to listen on (127.0.0.1: this machine only).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="The port to listen on.")
@click.option(
    "--engine",
    type=click.Choice(["auto", "local", "inngest"]),
    default="auto",
    show_default=True,
    help="Where runs execute: auto = Inngest when INNGEST_DEV or INNGEST_SIGNING_KEY is set, else the local engine.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The local engine's journal directory (default: .netrun, or $NETRUN_DATA_DIR).",
)
@click.option("--no-watch", is_flag=True, help="Do not reload the network files when they change.")
@click.option("--app-id", help="The Inngest app id (default: netrun, or $NETRUN_APP_ID).")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="URL",
    callback=lambda ctx, param, values: tuple(_origin(v, "--cors-origin") for v in values),
    help="A browser origin allowed to call the API (CORS), such as https://console.example.com; repeatable "
    "(default: none, or $NETRUN_CORS_ORIGINS, comma-separated).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    envvar="NETRUN_LOG_LEVEL",
    default="info",
    show_default=True,
    help="The least important log lines shown ($NETRUN_LOG_LEVEL).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="NETRUN_LOG_FORMAT",
    default="text",
    show_default=True,
    help="text: for people; json: one object a line, for log collectors ($NETRUN_LOG_FORMAT).",
)
@click.option("--access-log", is_flag=True, help="Log every HTTP request (uvicorn's access log; stream tokens hidden).")
@click.option(
    "--metrics",
    type=click.Choice(["token", "public", "off"], case_sensitive=False),
    help="GET /metrics (Prometheus): behind the API token, public (a scraper on a private network) or off "
    "(default: token, or $NETRUN_METRICS).",
)
def serve(
    paths: tuple[Path, ...],
    host: str,
    port: int,
    engine: str,
    data_dir: Path | None,
    no_watch: bool,
    app_id: str | None,
    cors_origins: tuple[str, ...],
    log_level: str,
    log_format: str,
    access_log: bool,
    metrics: str | None,
) -> None:
    """Serve networks: Inngest functions at /api/inngest and a REST API to start runs,
    stream their events and deliver events. PATHS default to networks/.

    Edits to the files are picked up while serving; an invalid edit is reported and the
    last good version keeps serving. Runs in flight keep the definition they started on.
    """
    from ..extras import require
    from ..validate import discover
    from .logs import configure

    require("serve", "netrun serve")  # before any work: one line naming the extra

    targets = tuple(paths) or (Path("networks"),)
    discover(targets)
    configure(log_level, log_format, access_log=access_log)
    from ..serve.settings import ServeSettings

    if not cors_origins:  # the variable's origins are a usage error too when wrong (exit 2)
        for value in (os.environ.get("NETRUN_CORS_ORIGINS") or "").split(","):
            if value.strip():
                _origin(value, "NETRUN_CORS_ORIGINS")
    settings = ServeSettings.from_env(
        dict(os.environ),
        targets,
        engine=engine,
        data_dir=data_dir,
        host=host,
        port=port,
        watch=not no_watch,
        app_id=app_id,
        cors_origins=cors_origins,
        metrics=metrics,
    )
    import uvicorn

    from ..serve.app import StartError, create_app
    from ..tracing import configure as trace_runs
    from ..tracing import shutdown as flush_traces
    from .gc_tuning import tune_gc

    try:
        app = create_app(settings)
    except StartError as exc:  # its message is the report of what is wrong: shown as it is
        raise _Reported(str(exc)) from None
    if trace_runs():
        app = _flushing_at_shutdown(app, flush_traces)
    tune_gc()
    # log_config=None: uvicorn's loggers keep the handler and format configure() gave them.
    uvicorn.run(
        app, host=host, port=port, log_config=None, log_level=log_level, access_log=access_log, timeout_graceful_shutdown=5
    )


def _flushing_at_shutdown(app: Any, flush: Any) -> Any:
    """``app`` that exports the spans still buffered once its lifespan has shut down (its runs
    stopped). Not after ``uvicorn.run`` returns: uvicorn re-raises the SIGTERM it caught, which
    ends the process before any code after it runs."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)  # type: ignore[no-any-return]

        async def sending(message: Any) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                flush()  # at most ~2 s, and the server is stopping anyway
            await send(message)

        return await app(scope, receive, sending)  # type: ignore[no-any-return]

    return wrapped


def _origin(value: str, where: str) -> str:
    """A CORS origin, normalized; click's usage error (exit 2) naming ``where`` when it is not one."""
    from ..serve.settings import SettingsError, cors_origin

    try:
        return cors_origin(value)
    except SettingsError as exc:
        raise click.UsageError(f"{where}: {exc}") from None


__all__ = ["serve"]
