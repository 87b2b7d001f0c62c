"""Agents: a system prompt template, a model and the tools the model may call."""

from pydantic import Field

from .base import Duration, Name, Spec, Template
from .history import Window
from .lifecycle import AfterStep, BeforeStep
from .model import ModelOption


class AgentLimits(Spec):
    """Limits on one agent within a run; a limit reached stops the run with that reason."""

    calls: int | None = Field(default=None, gt=0)
    """How many times the router may pick this agent."""
    tokens: int | None = Field(default=None, gt=0)
    """Tokens (prompt + completion) this agent may use."""
    cost: float | None = Field(default=None, gt=0)
    """Cost in USD this agent may spend."""
    tool_calls: int | None = Field(default=None, gt=0)
    """Tool calls the agent may make in one turn; the rest are refused to the model."""
    time: Duration | None = None
    """How long one inference call of this agent may take (it counts as a failed call)."""


class AgentSpec(Spec):
    """An agent: one inference call per turn, plus the tool calls the model asks for."""

    description: str | None = None
    """What the agent does; the LLM router picks agents by their descriptions."""
    system: Template
    """The system prompt, a template over ``input``, ``state``, ``network``, ``results`` and ``event``."""
    model: ModelOption | None = None
    """The model; defaults to the network's ``model``."""
    tools: list[str] = []
    """Tools by name: a declared tool, ``server.tool`` for one MCP tool, or ``server.*`` for all of a server's."""
    mcp_servers: list[Name] = []
    """MCP servers whose tools (after include/exclude) are all offered to this agent."""
    tool_choice: str | None = None
    """``auto`` (default), ``required``, ``none``, or the name of one tool the model must call."""
    limits: AgentLimits | None = None
    """Limits for this agent."""
    history: Window | None = None
    """How much of the thread's earlier messages this agent is shown (default: the network's
    ``history.window``, else all)."""
    before: list[BeforeStep] = []
    """Steps run each time the router picks this agent, before its inference (in order): their
    results can be saved to state or read by the prompt as ``steps.NAME``, and can skip the
    agent's turn (``skip_agent_if``) or stop the run (``stop_if``)."""
    after: list[AfterStep] = []
    """Steps run once this agent's turn (its inference and tool calls) is done, in order."""
