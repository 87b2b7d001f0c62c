"""Routers: state rules, the LLM routing agent, or rules that fall back to it."""

from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from .base import Expression, Name, Spec, Template
from .model import ModelRef


class RuleSpec(Spec):
    """When ``if`` holds, run ``agent`` next, or ``stop``."""

    if_: Expression = Field(alias="if")
    """An expression over ``state``, ``input``, ``event``, ``call_count``, ``last_agent`` and ``last_output``."""
    agent: Name | None = None
    """The agent to run next."""
    stop: Literal[True] | None = None
    """``true``: the run ends here."""

    @model_validator(mode="after")
    def _one_outcome(self) -> "RuleSpec":
        if (self.agent is None) == (self.stop is None):
            raise PydanticCustomError("rule_outcome", "a rule needs exactly one of 'agent: NAME' or 'stop: true'")
        return self


class LlmRouterSpec(Spec):
    """The routing agent: a model picks the next agent by name and description, or finishes."""

    model: ModelRef | None = None
    """Its model; defaults to the network's ``model``."""
    system: Template | None = None
    """Its prompt; the default lists the agents and the results so far."""


class RouterSpec(Spec):
    """How the next agent is chosen after each turn."""

    rules: list[RuleSpec] = []
    """State rules, tried in order; the first whose ``if`` holds decides."""
    otherwise: str | None = None
    """When no rule matches: ``llm`` (ask the routing agent), ``stop``, or an agent name.
    Default: ``llm`` when ``llm`` is configured or there are no rules, else ``stop``."""
    llm: LlmRouterSpec | None = None
    """Settings of the LLM routing agent."""

    def fallback(self) -> str:
        if self.otherwise is not None:
            return self.otherwise
        return "llm" if self.llm is not None or not self.rules else "stop"
