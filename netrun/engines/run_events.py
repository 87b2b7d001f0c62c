"""The events a run sends as it ends (``send: {completed: [...], failed: [...]}``), the same on every engine.

They go out through the engine's steps as the ``event`` tool's do (``Steps.send_event``):
one step per outcome, ``send.completed`` or ``send.failed``, whose events have ids made from
the run and the step. A run that crashes after sending replays the recorded step and sends
nothing again; an event delivered twice (a crash between sending and recording) starts no
run twice (the receiver keys the runs it starts by the event id, as Inngest drops an id it
has seen). The runs the events start are one deeper than the run (``limits.depth``), and
each event counts one toward ``limits.runs`` after the run's own tool calls: one past a
limit is not sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..redact import Secrets
from ..runtime import step_ids
from ..runtime.network import NetworkRun, RunError
from ..runtime.render import Renderer, RenderError
from ..runtime.steps import StepFailed, Steps
from ..spec import scopes
from ..spec.network import DEFAULT_DEPTH, DEFAULT_RUNS

if TYPE_CHECKING:
    from ..compile import Program
    from .execution import RunStart

COMPLETED_STEP = "send.completed"
"""The step that sends a completed run's events."""
FAILED_STEP = "send.failed"
"""The step that sends a failed run's events."""


def sendable(program: Program, depth: int, started: int, count: int) -> int:
    """How many of ``count`` events a run at ``depth`` that started ``started`` runs may send."""
    limits = program.spec.limits
    depth_limit = limits.depth if limits is not None and limits.depth is not None else DEFAULT_DEPTH
    runs_limit = limits.runs if limits is not None and limits.runs is not None else DEFAULT_RUNS
    if depth + 1 > depth_limit:
        return 0
    return max(0, min(count, runs_limit - started))


async def send_run_events(
    program: Program,
    steps: Steps,
    run: RunStart,
    loop: NetworkRun | None,
    outcome: Mapping[str, Any],
    environ: Mapping[str, str],
) -> None:
    """Send the events ``send.completed`` or ``send.failed`` declares for ``outcome`` (``status``,
    ``stop``, ``output``, ``error``), once.

    A completed run's event whose data cannot be rendered fails the run (:class:`RunError`,
    its message naming the event); a failed run's such event is left out (the run failed
    already, and the others still go). A send that fails for good fails a completed run too."""
    spec = program.spec.send
    failed = outcome.get("status") == "failed"
    declared = (spec.failed if failed else spec.completed) if spec is not None else []
    if not declared:
        return
    step_id = FAILED_STEP if failed else COMPLETED_STEP
    state = dict(loop.state) if loop is not None else program.initial_state(run.state)
    variables = scopes.variables(
        scopes.RUN_EVENTS,
        {"input": run.input, "state": state, "event": dict(run.event), "run": {"id": run.id}, "outcome": dict(outcome)},
    )
    secrets = Secrets.for_definition(run.definition, environ) if loop is None else loop.secrets
    renderer = Renderer()
    events: list[dict[str, Any]] = []
    for i, sent in enumerate(declared):
        try:
            data = renderer.render_typed(sent.data, variables)
        except RenderError as exc:
            if failed:
                continue
            raise RunError(f"send.completed[{i}].data: {secrets.redact(str(exc))}") from None
        if not isinstance(data, dict):
            data = {"value": data}
        if "approval_id" in data:  # only people answer approvals (as with the event tool)
            continue
        events.append({"name": sent.event, "data": secrets.redact_value(data)})
    started = loop.starts if loop is not None else 0
    events = events[: sendable(program, run.depth, started, len(events))]
    if not events:
        return
    for i, event in enumerate(events):
        event["id"] = step_ids.sent_event(run.id, f"{step_id}.{i}")
    try:
        await steps.send_event(step_id, events)
    except StepFailed as exc:
        if not failed:
            raise RunError(f"the run's send.completed events: {exc}") from None
