"""What every tool implementation shares: the call context, the outcome, the protocol.

Every kind (state, http, mcp, wait_for_event, network, event, and a ``netrun test`` stub)
is a :class:`Tool` called with one :class:`ToolContext`; the loop calls each through
:func:`run_tool`. Most tools run inside a durable step the loop opens for them; the step's
output is the JSON form of a :class:`ToolOutcome`. A tool that drives the engine's own
durable operations (a wait, a child run, an event) says ``owns_steps = True`` and is
called outside any step, with ``ctx.steps``. State changes travel in ``state_patch`` and
are applied by the loop outside the step, so that a replay rebuilds the same state from
the same outputs without running the tool again (durability rule 2 in the design).

Durability rule 6: a tool that says ``idempotent = False`` (a ``python`` tool not declared
``idempotent: true``, a command, an MCP tool not marked idempotent) has its call's start
cut off (kill -9, a crash, a response Inngest never got) is not run again: the model is told
it may or may not have run. Any other interrupted call runs again. How an engine tells a
cut-off call: the local engine records the call's start as a step of its own
(:func:`netrun.runtime.step_ids.started`) before the call's step, and a start an earlier
execution recorded with no outcome after it was cut off (``journals_starts``,
:meth:`Steps.fresh`); Inngest needs no marker step, it tells by the attempt
(``retrying(step_id)``: a request that retries this very step, by Inngest's step targeting,
after its first attempt, which only a lost answer causes: such a tool's failures are
results, and a python tool's :class:`RetryStep` is retried inside the step's attempt there,
see :func:`_attempts`). A marker step on Inngest cost a request per call, and under
``ctx.group.parallel`` it held a call approved alone until its sibling's wait ended.

Two exceptions a tool may raise change what its step does (:class:`netrun.errors.RetryStep`:
the step fails and the engine retries it; :class:`netrun.errors.FailRun`: the outcome carries
``fail_run`` and the turn fails the run with it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .. import observe
from ..errors import FailRun, RetryStep
from ..redact import Secrets
from ..spec import scopes
from ..spec.network import Limits
from . import step_ids
from .render import Renderer
from .steps import StepFailed, Steps

Emit = Callable[..., None]
"""``emit(kind, replayed, **data)``: reports a run's progress (:meth:`NetworkRun.emit`)."""


@dataclass(frozen=True)
class ToolContext:
    """What a tool may read and use while it runs: the one argument every kind receives
    besides its arguments. The fields after ``base_dir`` have defaults so that a tool can be
    called alone (a unit test); in a run the loop fills them all."""

    run_id: str
    step_id: str
    """The deterministic id of the step this call runs in."""
    input: str
    state: Mapping[str, Any]
    """A snapshot of the network state when the call started (read-only)."""
    event: Mapping[str, Any]
    """The event that started the run (``{}`` for runs started from the CLI)."""
    environ: Mapping[str, str]
    """Where ``${ENV}`` references are resolved, at call time."""
    base_dir: Path
    """The directory of the network file (relative paths in the file are relative to it)."""
    steps: Steps | None = None
    """The run's durable operations, for tools that own their steps (None outside a run)."""
    secrets: Secrets = field(default_factory=Secrets)
    """The run's ``${ENV}`` values: what a tool returns is redacted against them."""
    renderer: Renderer = field(default_factory=Renderer)
    """Renders the network's templates (with its prompt fragments)."""
    emit: Emit | None = None
    """Reports progress (``waiting``, ``approval.requested``...); None: nobody listens."""
    network: str = ""
    """The name of the network the run executes (quoted by refusals)."""
    limits: Limits | None = None
    """The network's run-wide limits (``depth`` and ``runs`` bound the runs a tool starts)."""
    depth: int = 0
    """How many runs deep this run is (0: started from outside)."""
    start: int | None = None
    """This call's number (from 0) among the run's calls that start runs (``limits.runs``),
    numbered in the model's order before any runs; None for a call that starts none."""
    data_dir: Path | None = None
    """Where the engine keeps the run's files (its journal, threads, sandbox work folders);
    None outside a run (:func:`netrun.data_dir.data_dir` then)."""
    call_id: str = ""
    """The model's id of this tool call ("" when it gave none, or no model asked): traces name the call by it."""

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and replays of this call: derived from run id and step id."""
        return hashlib.sha256(f"{self.run_id}/{self.step_id}".encode()).hexdigest()[:32]

    def variables(self, args: Mapping[str, Any], place: scopes.Place = scopes.TOOL_STATE) -> dict[str, Any]:
        """The variables the templates of a tool's ``place`` see (the scope table, which
        ``netrun validate`` checks them against; the tool places share one today)."""
        values = {
            "args": dict(args),
            "state": dict(self.state),
            "input": self.input,
            "event": dict(self.event),
            "run": {"id": self.run_id},
        }
        return scopes.variables(place, values)


@dataclass
class ToolOutcome:
    """The result of one tool call: what the model sees, and the state changes it makes.

    An error is a result too: it is shown to the model (which may retry or explain), and a
    tool never raises for a failure the model or the outside world caused.
    """

    result: Any = None
    error: str | None = None
    state_patch: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    """How long the call ran inside its step: recorded in the step's output beside the
    outcome (not by :meth:`to_json`), so that the time limit counts the same on replay."""
    step: str | None = None
    """The step the outcome comes from when it is not the call's own (a rejected approval's
    wait); who reports the outcome once decides by it. Not part of the JSON."""
    fail_run: str | None = None
    """Set when the tool failed the run (:class:`netrun.errors.FailRun`): the turn raises a
    ``RunError`` with it once the turn's calls are done. Journaled, so a replay fails the same."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"result": self.result}
        if self.error is not None:
            out["error"] = self.error
        if self.state_patch:
            out["state_patch"] = self.state_patch
        if self.fail_run is not None:
            out["fail_run"] = self.fail_run
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolOutcome:
        return cls(
            result=data.get("result"),
            error=data.get("error"),
            state_patch=dict(data.get("state_patch") or {}),
            seconds=float(data.get("seconds") or 0.0),
            fail_run=data.get("fail_run"),
        )

    def redacted(self, secrets: Secrets) -> ToolOutcome:
        """This outcome with the run's secrets masked in its result, error and state patch
        (itself when it holds none: outcomes from a step were redacted inside it)."""
        result = secrets.redact_value(self.result)
        error = secrets.redact(self.error) if self.error else self.error
        patch = secrets.redact_value(self.state_patch)
        if result is self.result and error == self.error and patch is self.state_patch:
            return self
        return dataclasses.replace(self, result=result, error=error, state_patch=patch)

    @classmethod
    def failure(cls, message: str) -> ToolOutcome:
        return cls(result=None, error=message)


class Tool(Protocol):
    """A tool as the model sees it and as the loop calls it.

    Optional class attributes, read by :func:`owns_steps`, :func:`starts_runs` and
    :func:`at_most_once` (a tool without them runs in one step, starts no runs, and runs again
    when its step was interrupted): ``owns_steps``, ``starts_runs`` and ``idempotent``; for
    the observers, ``parks`` (a tool owning its steps whose call may park the run) and
    ``wraps`` (a wrapper whose inner call is observed instead).
    """

    name: str
    """The function name shown to the model: ``^[A-Za-z0-9_-]{1,64}$``."""
    description: str
    parameters: dict[str, Any]
    """A JSON Schema of ``type: object``."""

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        """Run the tool; never raise for a failure the model should hear about."""
        ...


def owns_steps(tool: Any) -> bool:
    """Whether ``tool`` drives its own steps (``owns_steps = True``: called outside a step,
    with ``ctx.steps``); tools without the attribute run inside one step (the default)."""
    return bool(getattr(tool, "owns_steps", False))


def starts_runs(tool: Any) -> bool:
    """Whether a call of ``tool`` may start a run (``starts_runs = True``): it then takes a
    number under ``limits.runs`` before the turn's calls run."""
    return bool(getattr(tool, "starts_runs", False))


def at_most_once(tool: Any) -> bool:
    """Whether an interrupted call of ``tool`` must not run again (``idempotent = False``:
    durability rule 6); a tool without the attribute runs again, as before."""
    return getattr(tool, "idempotent", None) is False


def maybe_ran(name: str) -> str:
    """What the model is told about a call that was cut off and is not run again."""
    return (
        f"the call of '{name}' was interrupted (netrun stopped while it ran), so it may or may not have run; "
        "it was not run again, as the tool is not declared idempotent. Check its effect before calling it again"
    )


async def _interrupted(tool: Tool | None, ctx: ToolContext) -> bool:
    """Whether this call was started by an earlier execution that recorded no outcome for it;
    otherwise, for a tool that runs at most once, its start is journaled now (rule 6)."""
    steps = ctx.steps
    assert steps is not None
    local = bool(getattr(steps, "journals_starts", False))
    retrying: Callable[[str], bool] | None = getattr(steps, "retrying", None)
    if tool is None or not at_most_once(tool) or not (local or retrying is not None):
        return False
    if steps.replaying(ctx.step_id):
        return False
    if not local:
        assert retrying is not None
        return retrying(ctx.step_id)
    started = step_ids.started(ctx.step_id)
    if steps.replaying(started):
        return not steps.fresh(started)

    async def mark() -> bool:
        return True

    # Between this step and the call's own, only a server shutting down (RunStopped) stops the
    # run: that call then counts as interrupted too, which errs on the side of not repeating it.
    await steps.run(started, mark)
    return False


RETRY_WAIT_CAP = 30.0
"""The longest wait between in-step attempts (:func:`_attempts`) a ``RetryStep(after=...)`` gets."""


async def _attempts(tool: Tool, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
    """Call ``tool``; on Inngest, a tool that runs at most once and raises :class:`RetryStep` is
    called again here, within the step's attempt (up to its ``function.retries``, with backoff),
    rather than by a retry of the step: Inngest's retry of this step means a lost answer
    (durability rule 6), and must not be what a retry the tool asked for looks like."""
    attempts: Callable[[], int] | None = getattr(ctx.steps, "attempts", None)
    if attempts is None or not at_most_once(tool) or getattr(ctx.steps, "journals_starts", False):
        return await tool.call(args, ctx)
    most = max(1, attempts())
    for attempt in range(most):
        try:
            return await tool.call(args, ctx)
        except RetryStep as exc:
            if attempt + 1 >= most:  # as a step whose retries are used up: an error result
                n = attempt + 1
                return ToolOutcome.failure(f"{exc.message} (after {n} attempt{'s' if n > 1 else ''})")
            wait = exc.retry_after if exc.retry_after is not None else 0.5 * 2**attempt
            await asyncio.sleep(min(max(wait, 0.0), RETRY_WAIT_CAP))
    raise AssertionError("unreachable")  # pragma: no cover


def _does_work(tool: Tool, ctx: ToolContext) -> bool:
    """Whether this execution makes the call of a tool that owns its steps, or is the first
    to see the outcome of one that parks the run (``parks = True``: a wait, a child run on
    Inngest), so that each call is observed to its end once."""
    assert ctx.steps is not None
    if not ctx.steps.replaying(ctx.step_id):
        return True
    return bool(getattr(tool, "parks", False)) and ctx.steps.fresh(ctx.step_id)


def _tool_attributes(tool: Tool | None, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """What a ``tool`` span starts with (``args`` as the model gave them: an observer records
    them only when told to, redacted)."""
    return {
        "run_id": ctx.run_id,
        "network": ctx.network,
        "step": ctx.step_id,
        "tool": tool.name if tool is not None else None,
        "description": getattr(tool, "description", None),
        "kind": getattr(tool, "kind", None) or "other",  # the YAML kind key (http, python ...), "mcp"
        "args": ctx.secrets.redact_value(args),
        "call_id": ctx.call_id,
    }


def _ended(marked: observe.Span | None, outcome: dict[str, Any]) -> None:
    """A ``tool`` span told the call's outcome (JSON, redacted), failed when it is an error."""
    if marked:
        marked.set(outcome=outcome)
        if outcome.get("error"):
            marked.fail(str(outcome["error"]))


async def run_tool(tool: Tool | None, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
    """Call ``tool`` as the loop does: a tool that owns its steps directly, any other inside
    the step ``ctx.step_id`` (on replay its recorded outcome, without calling it). ``None``
    stands for a tool not at hand now (an MCP server's, on a replayed turn): its recorded
    outcome stands, and a call that was never recorded fails."""
    if tool is not None and owns_steps(tool):
        if not observe.observed() or getattr(tool, "wraps", False) or ctx.steps is None or not _does_work(tool, ctx):
            return await tool.call(args, ctx)
        # Observed from this execution: a wait's span ends when the run parks (the engine's
        # control flow, not a failure, and not counted), and the execution that resumes it
        # ends the call with the answer it got.
        with observe.span("tool", tool.name, _tool_attributes(tool, args, ctx)) as marked:
            done = await tool.call(args, ctx)
            _ended(marked, done.to_json())
            return done
    assert ctx.steps is not None, "a tool call runs in a step of its run"
    step_id, secrets = ctx.step_id, ctx.secrets
    interrupted = await _interrupted(tool, ctx)

    async def call() -> dict[str, Any]:
        watched = _tool_attributes(tool, args, ctx) if observe.observed() else None
        with observe.span("tool", tool.name if tool is not None else step_id, watched) as marked:
            out = await attempt()
            _ended(marked, out)
        return out

    async def attempt() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            if tool is None:
                raise RuntimeError(f"step {step_id} is not recorded and its tool is not available")
            outcome = ToolOutcome.failure(maybe_ran(tool.name)) if interrupted else await _attempts(tool, args, ctx)
            out = outcome.to_json()
        except RetryStep as exc:  # the engine retries the step; its message is journaled: redacted
            raise RetryStep(secrets.redact(exc.message), after=exc.retry_after) from None
        except FailRun as exc:
            message = secrets.redact(exc.message)
            out = ToolOutcome(error=f"the tool failed the run: {message}", fail_run=message).to_json()
        except Exception as exc:  # a bug in a tool is still the model's to hear about
            out = ToolOutcome.failure(f"{type(exc).__name__}: {exc}").to_json()
        # Recorded with the output, so that the time limit counts the same on replay.
        out["seconds"] = round(time.perf_counter() - started, 4)
        # Redacted inside the step: the journal (or Inngest) records only the clean outcome.
        return secrets.redact_value(out)  # type: ignore[no-any-return]

    try:
        data = await ctx.steps.run(step_id, call)
    except StepFailed as exc:
        return ToolOutcome.failure(exc.message)
    return ToolOutcome.from_json(data)
