"""The ``netrun serve`` application: ``create_app(settings)`` builds it.

Routes (one module a resource in :mod:`.routes`): ``/api/inngest``, the networks as Inngest
functions (``inngest.fast_api.serve``; when an Inngest server is configured); the REST API
(networks, runs, events, threads, streams, AgentKit's transport), behind the bearer token
``NETRUN_API_TOKEN`` when it is set (a stream opens with a stream token too); CORS for the
origins ``settings.cors_origins`` names; ``GET /healthz``; ``GET /metrics`` (Prometheus:
:mod:`.metrics`); ``GET /ui``, the web console.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from ..compile import ModelFactory
from ..engines.concurrency import ConcurrencyGate
from ..engines.local import Journal, RunRecord, new_run_id
from ..engines.runner import LocalEngine
from ..engines.triggers import META, accepts, default_event, network_input, triggers
from ..errors import NetrunError
from ..finder import find_network
from ..history.store import message_problem, new_thread_id
from ..runtime.events import once_key
from ..runtime.render import RenderError
from ..spec import NetworkSpec
from ..spec.trigger import EventTrigger
from . import routes
from .catalog import Catalog, ReloadResult, Version
from .guard import RequestGuard, SafeJSONResponse
from .inngest_route import InngestRoute
from .inngest_sync import InngestSync, describe_send_error
from .local_runs import LocalRuns, SingletonSkipped
from .routes.models import RunRequest
from .run_events import RunEvents
from .run_log import RunLog
from .settings import SERVE_PATH, ServeSettings, is_loopback
from .stream_tokens import hide_tokens_in_access_log, stream_secret

if TYPE_CHECKING:  # the Inngest SDK (~0.4 s) is imported only when an Inngest server is configured
    from ..engines.inngest import InngestEngine

log = logging.getLogger("netrun.serve")


class StartError(NetrunError, phase="serve"):
    """The server cannot start (invalid network files, an unusable data directory)."""


class Server(InngestSync):
    """Everything one ``netrun serve`` process holds."""

    def __init__(self, settings: ServeSettings, models: ModelFactory | None = None) -> None:
        from ..engines.local import JournalError

        self.settings = settings
        # Without any secret configured streams are open (no API token): a random one still
        # lets POST /streams/token answer, so a client need not know which case it is in.
        self.stream_secret: bytes = stream_secret(settings.api_token, settings.stream_secret) or os.urandom(32)
        """What stream tokens (:mod:`netrun.serve.stream_tokens`) are signed with."""
        self.events = RunEvents()
        self.catalog = Catalog(settings.paths)
        loaded = self.catalog.reload()
        if loaded.errors:
            raise StartError(loaded.problems.rstrip() or "the network files have errors")
        if not self.catalog.current:
            raise StartError(f"no network files (*.yaml, *.yml) under {', '.join(map(str, settings.paths))}")
        try:
            self.journal = Journal(settings.data_dir / "runs.db")
        except JournalError as exc:
            raise StartError(str(exc)) from None
        self.events.journal = self.journal  # a run's events are journaled with it (the SSE history)
        self.events.run_bytes = settings.events_max_bytes
        self.run_log = RunLog(lambda run_id: getattr(self.journal.run(run_id), "created", None))
        self.engine = LocalEngine(
            self.journal,
            settings.environ,
            self.emit,
            models=models,
            stream=self.events.watched,
            gate=ConcurrencyGate(),
            networks=self._served_network,
        )
        self.local = LocalRuns(self.engine, self.catalog)
        self.engine.on_event = self.local.deliver  # events sent by tools start networks too
        self.metrics = routes.metrics.metrics_for(self)  # None: off, or prometheus-client not installed
        self.inngest_app: ASGIApp | None = None
        self.functions: InngestEngine | None = None
        if settings.inngest_mode is not None:
            from ..engines.inngest import InngestEngine
            from .functions import make_client

            try:
                self.client = make_client(settings)
            except Exception as exc:  # the SDK's own checks of keys and URLs
                raise StartError(f"cannot set up the Inngest client: {exc}") from None
            self.functions = InngestEngine(
                self.client, self.catalog, self.journal, settings.environ, self.emit, once_key, models, settings.data_dir
            )
            self.functions.watched = self.events.watched
            self._serve_functions()
        self._background: list[asyncio.Task[Any]] = []
        self.reloads = 0
        self.sync_state: dict[str, Any] = {"status": "pending"}
        """The last sync with Inngest: pending, synced, refused (with its reason) or unreachable."""
        self._synced: tuple[dict[str, Version], dict[Path, Version]] | None = None
        """What Inngest accepted last (a catalog snapshot); None before its first acceptance."""
        self._sync_lock = asyncio.Lock()

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Where every run reports: its log lines (:class:`RunLog`), its metrics, then its streams."""
        self.run_log.observe(kind, data)
        if self.metrics is not None:
            self.metrics.observe(kind, data)
        self.events.emit(kind, data)

    def _served_network(self, folder: Path, name: str) -> NetworkSpec | None:
        """A network used as a tool: the version this server serves (the last good one,
        while its file has an invalid edit), else the file of that name in the folder."""
        version = self.catalog.get(name)
        return version.spec if version is not None else find_network(folder, name)

    # -- Inngest ---------------------------------------------------------------------------
    def _serve_functions(self) -> None:
        """(Re)build the Inngest functions and the app serving them at /api/inngest."""
        import inngest.fast_api

        assert self.functions is not None
        served = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        # The URL registered with Inngest is the configured one, never the request's Host;
        # in production an unsigned PUT syncs nothing (inngest 0.5 allows it by default).
        inngest.fast_api.serve(
            served,
            self.client,
            self.functions.build(),
            serve_path=SERVE_PATH,
            serve_origin=self.settings.registered_origin,
            public_path=self.settings.registered_path,
            enable_unauthed_sync=self.settings.inngest_mode != "cloud",
        )
        self.inngest_app = served

    # -- reloads -----------------------------------------------------------------------------
    def reload(self) -> ReloadResult:
        result = self.catalog.reload()
        self.reloads += 1
        if result.problems:
            kept = f" (still serving the last good version of: {', '.join(sorted(result.kept))})" if result.kept else ""
            log.error("reload: the network files have errors%s\n%s", kept, result.problems.rstrip())
        if result.changed:
            log.info("reload: serving %s", ", ".join(f"{v.name}@{v.hash[:8]}" for v in self.catalog.current.values()))
            if self.functions is not None:
                self._serve_functions()
                self._background.append(asyncio.get_running_loop().create_task(self.sync()))
        return result

    async def watch(self) -> None:
        import watchfiles

        def relevant(change: watchfiles.Change, path: str) -> bool:
            return path.endswith((".yaml", ".yml"))

        async for _ in watchfiles.awatch(*self.settings.paths, watch_filter=relevant, debounce=300, step=50):
            try:
                self.reload()
            except Exception as exc:  # never let a reload take the server down (one line, no traceback)
                log.error("reload failed (%s); the last good versions keep serving", type(exc).__name__)

    # -- lifecycle -----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        log.info(self.settings.describe())
        if not is_loopback(self.settings.host):
            if self.settings.api_token is None:
                log.warning(
                    "listening on %s without NETRUN_API_TOKEN: anyone who can reach it can start runs and send events",
                    self.settings.host,
                )
            if self.settings.inngest_mode == "dev":
                log.warning(
                    "listening on %s in dev mode: /api/inngest accepts unsigned calls; anyone who can reach it can run "
                    "these functions with the server's keys (use a signing key outside a trusted network)",
                    self.settings.host,
                )
        if self.settings.inngest_mode == "cloud" and not (self.settings.public_url or self.settings.serve_origin):
            log.warning(
                "registering %s with Inngest: set NETRUN_PUBLIC_URL (or INNGEST_SERVE_ORIGIN) to the URL Inngest "
                "reaches this server at",
                self.settings.registered_url,
            )
        log.info("serving %s", ", ".join(f"{v.name}@{v.hash[:8]}" for v in self.catalog.current.values()))
        if self.settings.engine == "local":
            for version in self.catalog.current.values():
                ignored = version.not_enforced_locally()
                if ignored:
                    log.warning(
                        "network %s declares %s: the embedded local engine does not apply %s (Inngest does)",
                        version.name,
                        ", ".join(ignored),
                        "it" if len(ignored) == 1 else "them",
                    )
        if self.metrics is not None:  # counts the work of this server's loop from now on
            self.metrics.open()
        recovered = self.local.open()
        if recovered:
            log.info("resuming %d run(s) left executing: %s", len(recovered), ", ".join(recovered))
        loop = asyncio.get_running_loop()
        if self.settings.watch:
            self._background.append(loop.create_task(self.watch()))
        if self.functions is not None:
            self._background.append(loop.create_task(self.sync()))
        try:
            yield
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self.local.close()
            if self.metrics is not None:
                self.metrics.close()
            from ..models import close_clients

            await close_clients()
            self.events.flush()
            self.journal.close()

    async def send(self, event: Any) -> list[str]:
        """Send an event to Inngest; a 502 with the reason when Inngest is unreachable or refuses it."""
        try:
            return list(await self.client.send(event))
        except Exception as exc:  # the SDK's SendEventsError, or a transport error under it
            # The event key is part of the URL the SDK posts to: never echo it.
            reason = describe_send_error(exc, self.settings.event_key)
            log.warning("could not send the event %s to Inngest: %s", event.name, reason)
            raise HTTPException(502, f"Inngest did not accept the event {event.name}: {reason}") from None

    # -- runs ------------------------------------------------------------------------------------
    async def start_run(
        self, version: Version, body: RunRequest, trace: Mapping[str, str] | None = None
    ) -> dict[str, Any] | JSONResponse:
        for i, m in enumerate(body.history or []):
            problem = message_problem(m)
            if problem is not None:
                raise HTTPException(422, f"history[{i}] {problem}")
        thread = {
            "thread_id": body.thread_id or new_thread_id(),
            **({"user": body.user} if body.user else {}),
            **(
                {"history": [{**m, "id": m.get("id") or f"given:{i}"} for i, m in enumerate(body.history)]}
                if body.history is not None
                else {}
            ),
        }
        event_triggers = [t for t in triggers(version.spec) if isinstance(t, EventTrigger)]
        event_name = event_triggers[0].event if event_triggers else default_event(version.spec)
        data = dict(body.data)
        if body.input is not None:
            data.setdefault("input", body.input)
        if self.settings.engine == "inngest":
            refused = self.unsynced(version)
            if refused is not None:
                raise HTTPException(503, refused)
            if not event_triggers:
                raise HTTPException(409, f"network '{version.name}' has only cron triggers: Inngest starts it on its schedule")
            import inngest

            trigger = event_triggers[0]
            try:
                accepted = accepts(trigger, {"name": event_name, "data": data})
            except RenderError as exc:
                raise HTTPException(400, f"the trigger's condition cannot be evaluated on this data: {exc}") from None
            if not accepted:
                raise HTTPException(
                    400, f"the trigger's condition ({trigger.if_}) is false for this data: Inngest would not start the run"
                )
            run_id = new_run_id()
            meta = {
                "run_id": run_id,
                "network": version.name,
                "state": body.state,
                **thread,
                **({"input": body.input} if body.input is not None else {}),
                **({"trace": dict(trace)} if trace else {}),  # every Inngest call of the run continues it
            }
            ids = await self.send(inngest.Event(name=event_name, data={**data, META: meta}))
            self._record_queued(version, run_id, {"name": event_name, "data": {**data, META: meta}}, thread, body.input)
            return {
                "run_id": run_id,
                "status": "queued",
                "network": version.name,
                "thread_id": thread["thread_id"],
                "event": event_name,
                "event_ids": ids,
            }
        event = {"name": event_name, "data": data}
        if body.input is not None:
            text = body.input
        else:
            try:
                text = network_input(version.spec, event)
            except RenderError as exc:
                raise HTTPException(400, f"cannot make the network input from the event data: {exc}") from None
        try:
            options = {**thread, "trace": dict(trace)} if trace else thread  # the trace every execution continues
            record = self.local.start(version, input=text, state=body.state, event=event, options=options)
        except SingletonSkipped as exc:
            return JSONResponse({"detail": str(exc), "run_id": exc.running, "status": "skipped"}, status_code=409)
        return {
            "run_id": record.id,
            "status": record.status,
            "network": version.name,
            "definition_hash": record.definition_hash,
            "thread_id": thread["thread_id"],
        }

    def _record_queued(
        self, version: Version, run_id: str, event: dict[str, Any], thread: dict[str, Any], given: str | None
    ) -> None:
        """Track a run sent to Inngest as ``queued`` from now on (listed, and cancellable while
        Inngest holds it back); its first step marks it running. A network whose flow control
        may drop or merge the event (debounce, rate limit, idempotency, singleton) is tracked
        from its first step only: a record made now might name a run that never exists."""
        fn = version.spec.function
        if fn is not None and (fn.debounce or fn.rate_limit or fn.idempotency or fn.singleton):
            return
        try:
            text = given if given is not None else network_input(version.spec, event)
        except RenderError:
            text = ""  # the run's first step fails it, saying why
        self.journal.create_run(
            RunRecord(
                id=run_id,
                network=version.name,
                definition_hash=version.hash,
                definition=version.definition(),
                base_dir=str(version.base_dir),
                input=text,
                state=dict(event["data"][META].get("state") or {}),
                event=event,
                options={"engine": "inngest", **{k: thread[k] for k in ("thread_id", "user") if thread.get(k)}},
                status="queued",
                result=None,
                error=None,
            )
        )

    # -- threads ---------------------------------------------------------------------------------
    def thread_store(self, network: str | None) -> Any:
        """The SQLite store the threads API reads: a network's, or the default one."""
        from ..history.store import open_store

        spec = None
        if network is not None:
            version = self.catalog.get(network)
            if version is None:
                raise HTTPException(404, f"no network named '{network}'")
            spec = version.spec.history
            if spec is not None and spec.store == "http":
                raise HTTPException(
                    400, f"the threads of network '{network}' are kept by its {spec.store} store, not by this server"
                )
        return open_store(spec, self.settings.data_dir, self.settings.environ)


def create_app(settings: ServeSettings, *, models: ModelFactory | None = None) -> FastAPI:
    """The application for ``settings``; raises :class:`StartError` when it cannot start."""
    server = Server(settings, models)
    # With a token, the API's description is served behind it like the API itself (below).
    open_docs = settings.api_token is None
    hidden: dict[str, Any] = {} if open_docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="netrun", lifespan=server.lifespan, default_response_class=SafeJSONResponse, **hidden)
    app.state.netrun = server
    app.add_middleware(InngestRoute, server=server)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        # No cookies: a browser sends the bearer token or a stream token itself.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["Content-Type"],
            max_age=600,
        )
    hide_tokens_in_access_log()
    # Outermost: nothing reads a body over the limit, or JSON that would not read back.
    app.add_middleware(RequestGuard, max_body=settings.max_body, max_inngest_body=settings.max_inngest_body)

    routes.install(app, open_docs=open_docs)
    return app
