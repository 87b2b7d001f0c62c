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
   ``fail``/``complete`` pair of :class:`.outcomes.Outcomes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..compile import ModelFactory, ModelRefused, Program, compile_network, pinned_spec, with_models
from ..extras import missing_extra
from ..history.store import HistoryError
from ..models.factory import default_model_factory
from ..models.scripted import RecordingClient, ScriptedClient, load_replies
from ..redact import Secrets
from ..runtime import lifecycle, step_ids
from ..runtime.lifecycle import RunCancelled
from ..runtime.model import ModelClient, ModelError
from ..runtime.network import Emit, NetworkRun, RunError
from ..runtime.render import RenderError
from ..runtime.results import RunResult, outcome
from ..runtime.steps import Steps
from ..spec import NetworkSpec
from ..spec.model import ModelSpec
from .outcomes import Cancelled, Ended, Outcomes
from .run_events import COMPLETED_STEP, FAILED_STEP, send_run_events
from .run_resources import mcp_servers, picked_models, thread_of
from .run_span import traced
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
    internal: bool | Callable[[], bool] = True
    """Whether any other exception fails the run as an internal error (the local engine:
    the user sees what happened, not a traceback) or goes up to the engine; a callable
    decides at the time (Inngest: Inngest retries what fails until the last attempt, which
    fails the run; the SDK's own control flow is ``BaseException`` and never reaches here)."""


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


def compile_definition(definition: Mapping[str, Any], base_dir: Path, models: ModelFactory, digest: str | None = None) -> Program:
    """The program of a pinned definition. It is validated again: another version of
    netrun, whose format differs, may have stored it (a :class:`ValidationError` then).
    ``digest``: the hash recorded with it (the validation is then done once per definition)."""
    if digest is None:
        return compile_network(NetworkSpec.model_validate(definition), base_dir, models)
    spec, env_names = pinned_spec(definition, digest)
    return compile_network(spec, base_dir, models, digest=digest, env_names=env_names)


def compile_failure(exc: ValidationError | ModelError) -> str:
    """Why a run's definition does not compile, as the run fails with it."""
    if isinstance(exc, ValidationError):  # the details are about another version's format
        return "the run's stored definition no longer validates with this version of netrun"
    return str(exc)


@traced
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
    cancelled: Callable[[], str | None] | None = None,
    ending: Callable[[], None] | None = None,
) -> Ended:
    """Execute (or replay) one run on ``steps`` and record how it ended.

    ``compile_program`` makes the run's program (an engine may cache it); ``steps`` makes the
    engine's steps for it; ``emit`` takes the loop's progress; ``data_dir`` holds the
    default thread store; ``cancelled`` says whether (and why) the run was cancelled (the
    local engine: the run then stops at its next new step); ``ending`` is told when the
    outcome is settled (the local engine refuses a cancel from then on). Returns the recorded
    outcome; raises what ``errors`` passes up.

    However the loop ends (completed, failed, cancelled, an internal error, a thread store
    that cannot be opened), the outcome is settled first, its ``send:`` events included (a
    completed run whose events cannot be sent fails), and then the ``finally:`` steps run
    with that outcome: both say the same. A wait or a shutdown (``errors.passed``) ends
    nothing, and runs neither.

    The outcome is settled when the loop has ended: a cancel that came before (one that
    landed while the last step was in flight too) makes the run ``cancelled``, whether the
    loop went on to complete or to fail; from then on (its ``send:`` events, its ``finally:``
    steps) no step is refused (:func:`_settle`).
    """
    try:
        program = compile_program()
    except (ValidationError, ModelError) as exc:
        return await outcomes.failed(run.id, compile_failure(exc), run.definition)
    backend = steps(program)
    settled: Ended | None = None
    try:
        try:  # what the event picks (a model within `allowed`, the thread); refused, the run fails
            program = with_models(program, picked_models(program, run.event))
            options = thread_options(program.spec, run.event, run.options, run.id)
        except (ModelRefused, RenderError) as exc:
            raise RunError(str(exc)) from None
        if options.get("thread_id"):  # GET /runs?thread_id= finds runs whose trigger chose their thread
            outcomes.journal.note_thread(run.id, str(options["thread_id"]), options.get("user"))
        async with mcp_servers(program, environ) as mcp:
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
                depth=run.depth,
                data_dir=data_dir,
                cancelled=cancelled,
            )
            ended = await _loop_outcome(loop, options, program, data_dir, environ, errors)
            ended = _settle(loop, ended, cancelled, ending)
            settled = await _end(loop, program, run, outcomes, ended, environ)
        return settled
    except errors.passed:
        raise
    except Exception as exc:
        if settled is not None:  # closing the MCP servers failed once the run had ended: it stays so
            return settled
        message = await _failure(exc, errors, backend)  # before the loop began: no finally: to run
    secrets = Secrets.for_definition(run.definition, environ)  # built once for both
    await send_run_events(program, backend, run, None, outcome(None, secrets.redact(message)), environ)
    return await outcomes.failed(run.id, message, secrets=secrets)


CANCELLED = "cancelled"
"""The status of a run ended by a cancel (``outcome.status`` in ``finally:`` steps)."""

INTERNAL_FAILURE = "run.internal_failure"
"""On Inngest, the step that records an internal error once its last attempt failed: the
calls that follow (one per ``finally:`` step) end the run with it instead of retrying again."""


async def _loop_outcome(
    loop: NetworkRun,
    options: Mapping[str, Any],
    program: Program,
    data_dir: Path,
    environ: Mapping[str, str],
    errors: Errors,
) -> dict[str, Any] | RunResult:
    """The loop's result, or the outcome (``failed``/``cancelled``) of what ended it."""
    try:
        async with thread_of(options, program, data_dir, environ) as thread:
            loop.thread = thread
            return await loop.run()
    except errors.passed:
        raise
    except RunCancelled as exc:
        return {"status": CANCELLED, "stop": None, "output": None, "error": loop.secrets.redact(exc.reason)}
    except Exception as exc:
        return outcome(None, loop.secrets.redact(await _failure(exc, errors, loop.steps)))


def _settle(
    loop: NetworkRun,
    ended: dict[str, Any] | RunResult,
    cancelled: Callable[[], str | None] | None,
    ending: Callable[[], None] | None,
) -> dict[str, Any] | RunResult:
    """The run's outcome, settled once its loop has ended: ``cancelled`` if a cancel came
    before (the journal says so already: the loop's own end, completed or failed, loses),
    else the loop's. From here the steps refuse nothing (the ``send:`` events, the
    ``finally:`` steps belong to the settled outcome) and ``ending`` is told, in the same
    turn of the event loop as the last look at ``cancelled``: no cancel falls in between.
    A replay past that point (Inngest executes the handler again for every step) keeps what
    was settled then: a cancel that came since changes nothing."""
    cancel = isinstance(ended, dict) and ended["status"] == CANCELLED
    reason = None if cancel or cancelled is None or _settled_before(loop) else cancelled()
    if reason is not None:
        ended = {"status": CANCELLED, "stop": None, "output": None, "error": loop.secrets.redact(reason)}
    if isinstance(loop.steps, lifecycle.Cancellable):
        loop.steps.finishing()
    if ending is not None:
        ending()
    return ended


def _settled_before(loop: NetworkRun) -> bool:
    """Whether an earlier execution got past the loop's end: a step that ends a run is recorded."""
    ending = [COMPLETED_STEP, FAILED_STEP, lifecycle.CANCEL_FINISHED]
    ending += [step_ids.finally_(i, step.tool) for i, step in enumerate(loop.p.spec.finally_)]
    return any(loop.steps.replaying(step_id) for step_id in ending)


async def _failure(exc: Exception, errors: Errors, steps: Steps) -> str:
    """Why ``exc`` fails the run, or ``exc`` itself raised again when it is the engine's to
    handle (on Inngest an internal error is retried by Inngest until its last attempt)."""
    if isinstance(exc, (RunError, HistoryError, *errors.fatal)):
        return str(exc)
    missing = missing_extra(exc, "this network")  # an optional library is not installed: no retry mends that
    if missing is not None:
        return str(missing)
    message = f"internal error: {type(exc).__name__}: {exc}"
    internal = errors.internal
    if internal is True:
        return message
    if internal is False or not (steps.replaying(INTERNAL_FAILURE) or internal()):
        raise exc
    recorded = await steps.run(INTERNAL_FAILURE, lambda: _value(message))
    return str(recorded)


async def _value(value: str) -> str:
    return value


async def _end(
    loop: NetworkRun,
    program: Program,
    run: RunStart,
    outcomes: Outcomes,
    ended: dict[str, Any] | RunResult,
    environ: Mapping[str, str],
) -> Ended:
    """Settle the run's outcome (its ``send:`` events first), run ``finally:``, record it."""
    backend = loop.steps
    if isinstance(ended, RunResult):
        try:
            await send_run_events(program, backend, run, loop, outcome(ended), environ)
        except RunError as exc:  # an event cannot be rendered or sent: the run fails, and says why
            ended = outcome(None, loop.secrets.redact(str(exc)))
        else:
            await loop.finish(outcome(ended))
            return await outcomes.completed(run.id, ended.to_json())  # finally's writes land in its state
    if ended["status"] == CANCELLED:
        await loop.finish(ended)
        if program.spec.finally_:
            await backend.run(lifecycle.CANCEL_FINISHED, lambda: _value(CANCELLED))
        return Cancelled(str(ended["error"]))
    await send_run_events(program, backend, run, loop, ended, environ)
    await loop.finish(ended)
    return await outcomes.failed(run.id, str(ended["error"]), run.definition)
