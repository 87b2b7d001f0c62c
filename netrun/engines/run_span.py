"""A run's execution as a ``run`` span (:mod:`netrun.observe`): every engine's executions,
from the one function they all go through (:func:`netrun.engines.execution.execute`).

One span per execution, not per run: a run that parks to wait and resumes, or that Inngest
calls once per step, is several executions; each joins the trace the run was started in
(``options["trace"]``, the W3C context recorded with the run), so a trace shows the whole
run however many processes and requests it took.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from .. import observe


class _Started(Protocol):
    """What of a run's start the span reads (:class:`~netrun.engines.execution.RunStart`)."""

    @property
    def id(self) -> str: ...
    @property
    def options(self) -> Any: ...
    @property
    def definition(self) -> Any: ...
    @property
    def depth(self) -> int: ...


E = TypeVar("E")
R = TypeVar("R", bound=_Started)
P = ParamSpec("P")


def traced(execute: Callable[Concatenate[R, P], Awaitable[E]]) -> Callable[Concatenate[R, P], Awaitable[E]]:
    """``execute`` observed as a ``run`` span, when anything observes (else called as it is)."""

    @functools.wraps(execute)
    async def observed(run: R, /, *args: P.args, **kwargs: P.kwargs) -> E:
        if not observe.observed():
            return await execute(run, *args, **kwargs)
        definition = run.definition if isinstance(run.definition, dict) else {}
        network = str(definition.get("name") or "")
        options = run.options if isinstance(run.options, dict) else {}
        trace = options.get("trace")
        attributes: dict[str, Any] = {"run_id": run.id, "network": network, "depth": run.depth}
        if options.get("inngest_run_id"):  # an execution Inngest called for: its run id and attempt
            attributes["inngest_run_id"] = str(options["inngest_run_id"])
        with observe.span("run", network, attributes, parent=trace if isinstance(trace, dict) else None) as marked:
            ended = await execute(run, *args, **kwargs)
            if marked:
                # Completed, Failed or Cancelled (execution's outcomes: not imported, it imports this)
                marked.set(status=type(ended).__name__.lower())
                message = getattr(ended, "message", None)
                if type(ended).__name__ == "Failed" and message:
                    marked.fail(str(message))
            return ended

    return observed


__all__ = ["traced"]
