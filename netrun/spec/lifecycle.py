"""Steps around agents and runs: a declared tool called by the network itself, not by a model.

Four lists hold them: an agent's ``before:`` (before its inference) and ``after:`` (once its
turn is done), and the network's ``setup:`` (before the router first runs) and ``finally:``
(once the run has ended, completed or failed). Each step calls one declared tool with
``args`` rendered from templates; its result can be written into the state (``save:``, the
same writes as a tool's ``save:``), shown to later templates as ``steps.NAME`` (``as:``),
and judged to skip the agent's turn or stop the run. :mod:`netrun.runtime.lifecycle` runs them.
"""

from typing import Any

from pydantic import Field

from .base import Expression, Name, Spec
from .tools import Saves


class StepBase(Spec):
    """What every step has: the tool it calls, its arguments, a condition, and where its result goes."""

    tool: Name
    """A declared tool (under ``tools:``) of any kind: http, python, command, event, state, ..."""
    args: dict[str, Any] = {}
    """The tool's arguments; string values are templates (a single ``{{ expr }}`` keeps its type).
    They are checked against the tool's ``parameters`` before the call."""
    if_: Expression | None = Field(default=None, alias="if")
    """Run the step only when this expression holds (otherwise it is skipped, and records nothing)."""
    save: Saves = {}
    """State field -> the value to write, as a tool's ``save:``; string values are templates over
    the step's ``result`` (or ``set``, ``append``, ``merge`` mappings)."""
    as_: Name | None = Field(default=None, alias="as")
    """A name for the step's result: later templates (agent prompts, router rules, other steps)
    read it as ``steps.NAME``."""
    non_retriable: bool = False
    """``true``: a failure (an error result) fails at once; ``false`` (the default): the step is
    retried as any step is (``function.retries``) before it fails, unless its tool is not
    idempotent (a ``command`` or ``python`` tool without ``idempotent: true``: running it again
    may repeat what it did), which fails at once too. A python function can still ask for a
    retry itself (``netrun.RetryStep``)."""


class SetupStep(StepBase):
    """A step of ``setup:``, before the router first runs; a failure fails the run."""

    stop_if: Expression | None = None
    """Over the step's ``result``: when it holds, the run stops here (completed, stop reason
    ``setup``); no agent runs, ``finally:`` still does."""


class BeforeStep(StepBase):
    """A step of an agent's ``before:``, run each time the router picks the agent, before its inference."""

    skip_agent_if: Expression | None = None
    """Over the step's ``result``: when it holds, the agent's turn is skipped (no inference; the
    turn still counts toward ``max_iter``) and the router is asked again."""
    stop_if: Expression | None = None
    """Over the step's ``result``: when it holds, the run stops before the agent's inference."""


class AfterStep(StepBase):
    """A step of an agent's ``after:``, run once the agent's turn (inference and tool calls) is done."""

    stop_if: Expression | None = None
    """Over the step's ``result``: when it holds, the run stops after this turn."""


class FinallyStep(StepBase):
    """A step of ``finally:``, once the run has ended (completed, failed, or a limit reached);
    templates see ``outcome``. A failure is reported and does not change the run's outcome."""


__all__ = ["AfterStep", "BeforeStep", "FinallyStep", "SetupStep", "StepBase"]
