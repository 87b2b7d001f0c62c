"""Steps around agents and runs: ``setup:``, an agent's ``before:`` and ``after:``, ``finally:``.

Each step calls one declared tool, the network's own call rather than a model's: its
arguments are rendered from templates, checked against the tool's ``parameters``, and the
call runs through :func:`netrun.runtime.tooling.run_tool` under a deterministic id of its own
(:func:`netrun.runtime.step_ids.setup`, :meth:`~netrun.runtime.step_ids.Turn.before`, ...),
like every tool call (durability rule 1). What a step writes into the state (its ``save:``,
and the tool's own ``save:``/``state:``) is rendered and applied here, outside the step, from
its recorded outcome (rule 2), and its result is kept as ``steps.NAME`` (``as:``) from the
same outcome: a resumed or replayed run takes the same path and calls nothing twice.

Failures: a step whose tool returns an error result is retried as a failed step is (the
engine's ``function.retries``: the error becomes :class:`netrun.errors.RetryStep` inside the
step) unless it says ``non_retriable: true``; then, in ``setup``, ``before`` and ``after``,
the run fails with it. A ``finally`` step's failure is reported and the next step runs.
Tools that drive the engine's own steps (an approval, an event, a wait, a child run) are
called as the turn calls them, without the retry.

``finally:`` runs once the run has ended, whatever ended it: the router or a limit
(``completed``), a failed step, a template, the thread store or an internal error
(``failed``), a cancel (``cancelled``). The engines' execution (:func:`netrun.engines.execution.execute`)
decides the outcome and calls :func:`finish`; a run that waits or is stopped by a shutdown has
not ended, and does not get there. A cancelled run stops at its next new step
(:class:`Cancellable` raises :class:`RunCancelled`), then runs its ``finally:`` steps only.
The outcome is settled once the loop has ended: a cancel that came before, one that landed
during the last step too, makes it ``cancelled`` whatever the loop's end was; from then on
(:meth:`Cancellable.finishing`) no step is refused, so the ``send:`` events and ``finally:``
steps run for the settled outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from ..diagnostics import YamlPath
from ..errors import RetryStep
from ..spec import scopes
from ..spec.lifecycle import StepBase
from . import events, saving, step_ids
from .args import check_args
from .render import RenderError
from .results import RunError
from .steps import Json, Steps, Wait
from .tooling import Tool, ToolContext, ToolOutcome, at_most_once, owns_steps, run_tool
from .turn import context

if TYPE_CHECKING:
    from .network import NetworkRun

End = Literal["skip", "stop"] | None
"""What a list of steps decided: skip the agent's turn, stop the run, or nothing."""

CANCEL_FINISHED = "finally.cancelled"
"""The step recorded once a cancelled run's ``finally:`` steps are done: the engine does not
resume it into them again."""


class RunCancelled(Exception):  # noqa: N818 - control flow, not an error
    """The run was cancelled: it starts no further step of its loop and ends, running its
    ``finally:`` steps with the outcome ``cancelled``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Cancellable:
    """An engine's steps that refuse new work once ``cancelled()`` gives a reason: a step with
    no recorded outcome raises :class:`RunCancelled` instead of running (a recorded one replays,
    so a run resumed after its cancel rebuilds its state first). :meth:`finishing` lets the
    ``finally:`` steps through. Everything else is the engine's steps' own."""

    def __init__(self, steps: Steps, cancelled: Callable[[], str | None]) -> None:
        self.inner = steps
        self.run_id = steps.run_id
        self.cancelled = cancelled
        self.ending = False

    def __getattr__(self, name: str) -> Any:  # journals_starts, suspended, ...: the engine's
        return getattr(self.inner, name)

    def finishing(self) -> None:
        """The loop has ended and its outcome is settled: the steps from here on (its ``send:``
        events, its ``finally:`` steps) belong to that outcome and are not refused."""
        self.ending = True

    def _check(self, step_id: str) -> None:
        if self.ending or self.inner.replaying(step_id):
            return
        reason = self.cancelled()
        if reason is not None:
            raise RunCancelled(reason)

    async def run(self, step_id: str, fn: Callable[[], Awaitable[Json]]) -> Json:
        self._check(step_id)
        return await self.inner.run(step_id, fn)

    async def parallel(self, thunks: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
        return await self.inner.parallel(thunks)

    async def wait_for_event(self, step_id: str, wait: Wait) -> dict[str, Any] | None:
        self._check(step_id)
        return await self.inner.wait_for_event(step_id, wait)

    async def sleep(self, step_id: str, duration: timedelta) -> None:
        self._check(step_id)
        await self.inner.sleep(step_id, duration)

    async def send_event(self, step_id: str, events: list[dict[str, Any]]) -> None:
        self._check(step_id)
        await self.inner.send_event(step_id, events)

    async def invoke(self, step_id: str, network: str, input: str) -> dict[str, Any]:
        self._check(step_id)
        return await self.inner.invoke(step_id, network, input)

    def replaying(self, step_id: str) -> bool:
        return self.inner.replaying(step_id)

    def fresh(self, step_id: str) -> bool:
        return self.inner.fresh(step_id)


class _Retried:
    """A tool whose error result fails its step, so that the engine retries the step (a failed
    step's retries: ``function.retries``); once they are used up, the error is the outcome."""

    def __init__(self, tool: Tool) -> None:
        self.tool = tool
        self.name = tool.name
        self.description = tool.description
        self.parameters = tool.parameters
        if hasattr(tool, "idempotent"):  # durability rule 6 reads it (tooling.at_most_once)
            self.idempotent = tool.idempotent

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        outcome = await self.tool.call(args, ctx)
        if outcome.error is not None and outcome.fail_run is None:
            raise RetryStep(outcome.error)
        return outcome


def variables(
    run: NetworkRun,
    agent: Mapping[str, Any] | None = None,
    outcome: Mapping[str, Any] | None = None,
    result: Any = None,
) -> dict[str, Any]:
    """The variables of a step's templates and conditions (:data:`netrun.spec.scopes.STEP`)."""
    values = run.variables() | {"run": {"id": run.steps.run_id}, "agent": agent, "outcome": outcome, "result": result}
    return scopes.variables(scopes.STEP, values)


async def setup(run: NetworkRun) -> End:
    """The network's ``setup:`` steps, before the router first runs."""
    return await _run_steps(run, run.p.spec.setup, step_ids.setup, ("setup",))


async def before(run: NetworkRun, n: int, name: str) -> End:
    """The ``before:`` steps of the agent ``name`` in turn ``n``."""
    spec = run.p.agents[name].spec
    turn = step_ids.Turn(n, name)
    agent = {"name": name, "description": spec.description}
    return await _run_steps(run, spec.before, turn.before, ("agents", name, "before"), agent=agent)


async def after(run: NetworkRun, n: int, name: str) -> End:
    """The ``after:`` steps of the agent ``name`` once its turn ``n`` is done."""
    spec = run.p.agents[name].spec
    turn = step_ids.Turn(n, name)
    agent = {"name": name, "description": spec.description}
    return await _run_steps(run, spec.after, turn.after, ("agents", name, "after"), agent=agent)


async def finish(run: NetworkRun, outcome: Mapping[str, Any]) -> None:
    """The network's ``finally:`` steps, once the run has ended as ``outcome`` says; their
    failures are reported (``tool.result`` with an error) and change nothing."""
    if isinstance(run.steps, Cancellable):
        run.steps.finishing()
    await _run_steps(run, run.p.spec.finally_, step_ids.finally_, ("finally",), outcome=outcome, fail=False)


async def _run_steps(
    run: NetworkRun,
    steps: Sequence[StepBase],
    ids: Callable[[int, str], str],
    where: YamlPath,
    *,
    agent: Mapping[str, Any] | None = None,
    outcome: Mapping[str, Any] | None = None,
    fail: bool = True,
) -> End:
    for i, step in enumerate(steps):
        path: YamlPath = (*where, i)
        step_id = ids(i, step.tool)
        try:
            end = await _run_step(run, step, step_id, path, agent, outcome)
        except _StepError as exc:
            if fail:
                raise RunError(f"{_name(path)} ({step.tool}) failed: {exc.message}") from None
            continue
        if end is not None:
            return end
    return None


class _StepError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _run_step(
    run: NetworkRun,
    step: StepBase,
    step_id: str,
    path: YamlPath,
    agent: Mapping[str, Any] | None,
    outcome: Mapping[str, Any] | None,
) -> End:
    renderer = run.renderer
    base = variables(run, agent, outcome)
    try:
        if step.if_ is not None and not renderer.evaluate(step.if_, base, (*path, "if")):
            return None
        args = renderer.render_typed(step.args, base)
    except RenderError as exc:
        _report(run, step_id, step.tool, None, str(exc))
        raise _StepError(str(exc)) from None
    tool = run.tools.declared.get(step.tool)
    replayed = run.steps.replaying(step_id)
    run.emit(events.TOOL_CALLED, replayed, step=step_id, tool=step.tool, args=args)
    problems = check_args(args, tool.parameters) if tool is not None else [f"unknown tool '{step.tool}'"]
    if problems:  # decided from the file and the state: the same on every replay, no step needed
        result = ToolOutcome.failure("; ".join(problems))
    else:
        assert tool is not None
        # An error result is retried only where running the tool again is safe: not for a tool
        # that is not idempotent (a command that failed half-way may not be run twice).
        once = owns_steps(tool) or step.non_retriable or at_most_once(tool)
        called: Tool = tool if once else _Retried(tool)
        result = await run_tool(called, args, context(run, step_id))
    run.usage.seconds += result.seconds
    result = result.redacted(run.secrets)
    writes = run.tools.writes.get(step.tool, ())
    if step.save:
        writes = (*writes, saving.Writes(step.save, (*path, "save"), scopes.STEP))
    values = {k: v for k, v in base.items() if k not in ("state", "result")} | {"args": args}
    result = saving.save_outcome(run.state, writes, result, values, run.p.spec.state, renderer, run.secrets.redact_value)
    _report(run, step_id, step.tool, result.result, result.error, dict(run.state) if writes else None)
    if result.fail_run is not None:
        raise _StepError(f"the tool failed the run: {result.fail_run}")
    if result.error is not None:
        raise _StepError(result.error)
    if step.as_:
        run.step_results[step.as_] = result.result
    judged = variables(run, agent, outcome, result.result)
    skip_if: str | None = getattr(step, "skip_agent_if", None)  # before: only
    stop_if: str | None = getattr(step, "stop_if", None)  # not in finally:
    try:
        if skip_if and renderer.evaluate(skip_if, judged, (*path, "skip_agent_if")):
            return "skip"
        if stop_if and renderer.evaluate(stop_if, judged, (*path, "stop_if")):
            return "stop"
    except RenderError as exc:
        raise _StepError(str(exc)) from None
    return None


def _report(
    run: NetworkRun, step_id: str, tool: str, result: Any, error: str | None, state: dict[str, Any] | None = None
) -> None:
    # Reported by the first execution to see the outcome, as the turn reports a tool call's.
    run.emit(events.TOOL_RESULT, not run.steps.fresh(step_id), step=step_id, tool=tool, result=result, error=error, state=state)


def _name(path: YamlPath) -> str:
    """``("agents", "a", "before", 0)`` -> ``agents.a.before[0]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


__all__ = ["CANCEL_FINISHED", "Cancellable", "End", "RunCancelled", "after", "before", "finish", "setup", "variables"]
