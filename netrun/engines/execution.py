"""One run's execution, the same on every engine: compile, open, loop, record.

An engine decides where a run's steps are kept (the local journal, Inngest's memoized
steps) and how a run goes on after a wait or a crash. Everything between is here, once,
so that a run means the same on both engines (:func:`execute`):

1. compile the definition the run is pinned to (:func:`compile_definition`), with the
   model clients its options ask for (:func:`model_factory`) unless the engine was given
   its own;
2. open the run's resources: its MCP servers (:func:`mcp_servers`) and its thread
   (:func:`thread_of`);
3. run the network loop on the engine's steps;
4. map what stopped the loop to an outcome: the same errors fail a run on every engine,
   and an engine names only its own exceptions (:class:`Errors`);
5. record the outcome in the journal and tell whoever follows the run, through the one
   ``fail``/``complete`` pair of :class:`Outcomes`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..compile import ModelFactory, ModelRefused, Program, compile_network, with_models
from ..history.store import HistoryError, open_store
from ..history.thread import Thread
from ..models.factory import default_model_factory
from ..models.scripted import RecordingClient, ScriptedClient, load_replies
from ..redact import Secrets
from ..runtime.events import RUN_COMPLETED, RUN_FAILED
from ..runtime.model import ModelClient, ModelError
from ..runtime.network import Emit, NetworkRun, RunError
from ..runtime.render import Renderer, RenderError
from ..runtime.results import outcome
from ..runtime.steps import Steps
from ..spec import NetworkSpec, scopes
from ..spec.model import ModelSpec
from .local import Journal
from .run_events import send_run_events
from .triggers import thread_options

THREAD_OPTIONS = ("thread_id", "user", "history")
"""Run options that tie a run to a conversation (``netrun run --thread``, the REST API)."""

DEFAULT_RETRIES = 4
"""Retries of a failed step when ``function.retries`` is not set: Inngest's default, so a
network means the same on both engines (a step runs at most ``retries + 1`` times)."""


def step_retries(spec: NetworkSpec) -> int:
    """How often a failed step of ``spec`` is retried: its ``function.retries``, else Inngest's default."""
    fn = spec.function
    return fn.retries if fn is not None and fn.retries is not None else DEFAULT_RETRIES


@dataclass(frozen=True)
class RunStart:
    """What the loop starts a run with: the same on every execution of the run (pinned)."""

    id: str
    input: str
    event: Mapping[str, Any]
    state: Mapping[str, Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """The run's options; :data:`THREAD_OPTIONS` among them tie it to a conversation."""
    depth: int = 0
    """The run's depth (limits.depth): 0 for a run started from outside."""
    definition: Any = None
    """The definition the run is pinned to (a spec's JSON dump): failures are redacted
    against its secrets; None: the journal's record of the run says."""


@dataclass(frozen=True)
class Completed:
    """The run finished: its result (output, state, ...) as the journal keeps it."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    """The run failed: the message, redacted, as the journal keeps it."""

    message: str


Ended = Completed | Failed


@dataclass(frozen=True)
class Errors:
    """How an engine's own exceptions end a run. On every engine a :class:`RunError` (a
    failed step, a limit) and a :class:`HistoryError` (the thread's store cannot be
    opened) fail it with their message, and so does a definition that cannot be compiled."""

    fatal: tuple[type[BaseException], ...] = ()
    """Besides those, exceptions that fail the run with their message (on Inngest: a step
    no retry can fix)."""
    passed: tuple[type[BaseException], ...] = ()
    """Exceptions that are the engine's to handle, leaving the run as it is: a wait, a
    shutdown, a journal that cannot be written (the run goes on once it can)."""
    internal: bool = True
    """Whether any other exception fails the run as an internal error (the local engine:
    the user sees what happened, not a traceback) or goes up to the engine (Inngest: the
    SDK's control flow is exceptions, and Inngest retries what fails)."""


class Outcomes:
    """How runs end, in the journal and as progress events: the one ``fail``/``complete`` pair."""

    def __init__(self, journal: Journal, environ: Mapping[str, str], emit: Emit | None) -> None:
        self.journal = journal
        self.environ = environ
        self.emit = emit

    def fail(self, run_id: str, message: str, definition: Any = None) -> Failed:
        """Record that the run failed with ``message``, redacted against the secrets of
        ``definition`` (default: the definition the journal holds for the run)."""
        if definition is None:
            record = self.journal.run(run_id)
            definition = record.definition if record is not None else None
        # A store's error, a compile error or an internal one may quote a secret the run
        # itself could not redact.
        message = Secrets.for_definition(definition, self.environ).redact(message)
        self.journal.set_status(run_id, "failed", error=message)
        if self.emit is not None:
            self.emit(RUN_FAILED, {"run_id": run_id, "error": message, "replayed": False})
        return Failed(message)

    def complete(self, run_id: str, result: dict[str, Any]) -> Completed:
        """Record that the run completed with ``result`` (its output, state, ...)."""
        self.journal.set_status(run_id, "completed", result)
        if self.emit is not None:
            self.emit(RUN_COMPLETED, {"run_id": run_id, "result": result, "replayed": False})
        return Completed(result)


def model_factory(
    base_dir: Path,
    options: Mapping[str, Any],
    environ: Mapping[str, str],
    definition: Any = None,
    recordings: dict[str, dict[str, list[dict[str, Any]]]] | None = None,
) -> ModelFactory:
    """The model clients of a run, as its options ask: a test case's replies, a replies
    file replayed or recorded, else real models (and ``scripted/FILE`` ones).

    ``recordings`` holds the replies being recorded, per file: a run and its child runs
    write one file, so the engine keeps it across their executions."""
    prefix = str(options.get("prefix") or "")
    inline = options.get("replies")
    if inline is not None:  # `netrun test`: a case's replies, stored with the run
        scripted = ScriptedClient(inline, str(options.get("source") or "the case's replies"), prefix)
        return lambda spec: scripted
    replay = options.get("replay")
    if replay:
        client = ScriptedClient(load_replies(Path(replay)), replay, prefix)
        return lambda spec: client
    make = default_model_factory(base_dir, environ, prefix)
    record = options.get("record")
    if not record:
        return make
    path = Path(record)
    recordings = {} if recordings is None else recordings
    shared = recordings.get(record)
    if shared is None:
        resumed = (options.get("resumed") or prefix) and path.exists()
        shared = recordings[record] = load_replies(path) if resumed else {}
    # The replies file outlives the run: what it records is redacted as the run's journal is.
    secrets = Secrets.for_definition(definition, environ)

    def recording(spec: ModelSpec) -> ModelClient:
        return RecordingClient(make(spec), path, shared, prefix, secrets)

    return recording


def compile_definition(definition: Mapping[str, Any], base_dir: Path, models: ModelFactory) -> Program:
    """The program of a pinned definition. It is validated again: another version of
    netrun, whose format differs, may have stored it (a :class:`ValidationError` then)."""
    return compile_network(NetworkSpec.model_validate(definition), base_dir, models)


def compile_failure(exc: ValidationError | ModelError) -> str:
    """Why a run's definition does not compile, as the run fails with it."""
    if isinstance(exc, ValidationError):  # the details are about another version's format
        return "the run's stored definition no longer validates with this version of netrun"
    return str(exc)


async def execute(
    run: RunStart,
    compile_program: Callable[[], Program],
    steps: Callable[[Program], Steps],
    outcomes: Outcomes,
    *,
    environ: Mapping[str, str],
    emit: Emit | None,
    stream: bool | Callable[[], bool],
    data_dir: Path,
    errors: Errors = Errors(),
) -> Ended:
    """Execute (or replay) one run on ``steps`` and record how it ended.

    ``compile_program`` makes the run's program (an engine may cache it); ``steps`` makes the
    engine's steps for it; ``emit`` takes the loop's progress; ``data_dir`` holds the
    default thread store. Returns the recorded outcome; raises what ``errors`` passes up.
    """
    try:
        program = compile_program()
    except (ValidationError, ModelError) as exc:
        return outcomes.fail(run.id, compile_failure(exc), run.definition)
    backend = steps(program)
    fatal: tuple[type[BaseException], ...] = (RunError, HistoryError, *errors.fatal)
    loop: NetworkRun | None = None
    try:
        try:  # what the event picks (a model within `allowed`, the thread); refused, the run fails
            program = with_models(program, picked_models(program, run.event))
            options = thread_options(program.spec, run.event, run.options, run.id)
        except (ModelRefused, RenderError) as exc:
            raise RunError(str(exc)) from None
        async with mcp_servers(program, environ) as mcp, thread_of(options, program, data_dir, environ) as thread:
            loop = NetworkRun(
                program,
                backend,
                input=run.input,
                state=run.state,
                event=run.event,
                environ=environ,
                emit=emit,
                mcp=mcp,
                stream=stream,
                thread=thread,
                depth=run.depth,
                data_dir=data_dir,
            )
            result = await loop.run()
    except errors.passed:
        raise
    except fatal as exc:
        message = str(exc)
    except Exception as exc:
        if not errors.internal:
            raise
        message = f"internal error: {type(exc).__name__}: {exc}"
    else:
        completed = result.to_json()
        try:
            await send_run_events(program, backend, run, loop, outcome(result), environ)
        except RunError as exc:  # an event's data cannot be rendered: the run fails, and says why
            message = str(exc)
        else:
            return outcomes.complete(run.id, completed)
    # The message is redacted as the journal keeps it before the failure events quote it.
    redacted = Secrets.for_definition(run.definition, environ).redact(message)
    await send_run_events(program, backend, run, loop, outcome(None, redacted), environ)
    return outcomes.fail(run.id, message, run.definition)


def picked_models(program: Program, event: Mapping[str, Any]) -> dict[str, str | None]:
    """The model ids the run's event picks for the program's choices (``model.from``): None
    where the template cannot render (the event has no such field: the default)."""
    picked: dict[str, str | None] = {}
    renderer = Renderer()
    for key, chosen in program.choices.items():
        try:
            picked[key] = renderer.render(chosen.spec.from_, scopes.variables(scopes.MODEL_FROM, {"event": dict(event)}))
        except RenderError:
            picked[key] = None
    return picked


@contextlib.asynccontextmanager
async def thread_of(
    options: Mapping[str, Any], program: Program, data_dir: Path, environ: Mapping[str, str]
) -> AsyncIterator[Thread | None]:
    """The run's thread (its store open for the run), or None for a run outside any."""
    thread_id = options.get("thread_id")
    if not thread_id:
        yield None
        return
    store = open_store(program.spec.history, data_dir, environ)
    try:
        given = options.get("history")
        yield Thread(str(thread_id), store, options.get("user"), list(given) if isinstance(given, list) else None)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def mcp_servers(program: Program, environ: Mapping[str, str]) -> AsyncIterator[Any]:
    """The run's MCP servers; each connects the first time one of its tools is needed (a
    replayed turn connects to nothing), and all close when the run stops."""
    if not any(agent.mcp_refs for agent in program.agents.values()):
        yield None
        return
    from ..tools.mcp import McpServers  # the mcp SDK is imported only by runs that use it

    async with McpServers(program.spec.mcp_servers, environ=environ, base_dir=program.base_dir) as servers:
        yield servers
