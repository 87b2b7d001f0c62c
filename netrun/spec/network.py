"""The network file: the top-level model, and the fragment files it may include."""

from typing import Annotated

from pydantic import ConfigDict, Field, Tag

from .agent import AgentSpec
from .base import Duration, Name, Spec, Template, by_shape, one_of
from .function import FunctionSpec
from .history import HistorySpec
from .lifecycle import FinallyStep, SetupStep
from .mcp import McpServerSpec
from .model import ModelOption
from .params import StateField
from .router import RouterSpec
from .tools import ToolSpec
from .trigger import RunEvents, TriggerSpec


class Limits(Spec):
    """Run-wide limits; the first one reached stops the run and is recorded as the reason."""

    iterations: int | None = Field(default=None, gt=0)
    """Agent turns per run (``max_iter`` is the same limit)."""
    tokens: int | None = Field(default=None, gt=0)
    """Tokens (prompt + completion, all agents and the router) per run."""
    cost: float | None = Field(default=None, gt=0)
    """Cost in USD per run."""
    time: Duration | None = None
    """Time spent in model and tool calls per run, summed (waiting for events does not
    count); recorded with each step, so a resumed run counts the same."""
    depth: int | None = Field(default=None, ge=0)
    """How deep runs may start runs (default 3): a run started from outside (CLI, REST,
    an outside event, a schedule) is at depth 0; a network tool's child run, and a run
    started by an event a run sent, is one deeper than that run. A network tool call or an
    event tool call of this network that would start a run deeper than this is refused,
    an error for the model, and starts nothing. The limit of the network whose tool makes
    the call applies. 0: this network's runs start no other runs."""
    runs: int | None = Field(default=None, ge=0)
    """How many runs one run of this network may start itself (default 10): each call of a
    network tool and each event an event tool sends counts one (an event counts once, however
    many networks it triggers), in the order the model asked for them, refused or not; the
    count is rebuilt from the journal when a run resumes or replays, so a restart buys no
    more. A call past the limit is refused, an error for the model, and starts nothing. With
    ``depth`` it bounds the runs below one run started from outside: at most
    ``runs + runs^2 + ... + runs^depth`` (1,110 with the defaults) runs of each network an
    event triggers. 0: no network or event tool call runs."""


DEFAULT_MAX_ITER = 10
"""Agent turns per run when neither ``max_iter`` nor ``limits.iterations`` says."""

DEFAULT_DEPTH = 3
"""``limits.depth`` when the network does not set it: room for delegation chains (a run's
child calling its own child), while runs that start each other (a -> b -> a, an event that
triggers its own network) stop after a few runs instead of multiplying without end."""


def depth_of(value: object) -> int:
    """A depth as stored with a run or carried in an event: a positive whole number, else 0
    (outside input, or a run recorded before depths were)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


DEFAULT_RUNS = 10
"""``limits.runs`` when the network does not set it: with :data:`DEFAULT_DEPTH`, at most
10 + 100 + 1,000 runs below one run started from outside, however the model fans out (a
depth alone bounds chains, not a run that starts k runs per turn: k^depth)."""


Triggers = Annotated[
    Annotated[TriggerSpec, Tag("map")] | Annotated[Annotated[list[TriggerSpec], Field(min_length=1)], Tag("list")],
    one_of("trigger is a mapping with 'event' or 'cron', or a list of them", by_shape),
]


class Shared(Spec):
    """The sections a fragment file may share with the networks that include it."""

    # Only its subclasses validate anything; building a validator for it (and, until a
    # fragment is met, for FragmentSpec) would only slow every `netrun validate` down.
    model_config = ConfigDict(defer_build=True)

    include: list[str] = []
    """Fragment files (``*.fragment.yaml``) whose agents, tools, MCP servers, prompts and
    state are added to this file's; paths are relative to this file."""
    state: dict[Name, StateField] = {}
    """Declared state fields: their types, defaults and enums."""
    prompts: dict[Name, Template] = {}
    """Prompt fragments, used in templates with ``{% include "NAME" %}``."""
    agents: dict[Name, AgentSpec] = {}
    """The agents, by name."""
    tools: dict[Name, ToolSpec] = {}
    """Declared tools, by name."""
    mcp_servers: dict[Name, McpServerSpec] = {}
    """MCP servers, by name; agents use their tools as ``server.tool``."""


class FragmentSpec(Shared):
    """A fragment file (``*.fragment.yaml``): agents, tools, MCP servers, prompts and state
    shared by the networks that include it."""


class NetworkSpec(Shared):
    """An agent network: agents, a router, tools, limits and how it runs."""

    model_config = ConfigDict(defer_build=False)

    name: Name
    """The network's name; unique among your networks, and its Inngest function id."""
    description: str | None = None
    """What the network does."""
    trigger: Triggers | None = None
    """The event(s) or schedule that start a run (none: runs start only from the CLI or API)."""
    model: ModelOption | None = None
    """The default model of agents and the router (or a choice from the event's data)."""
    max_iter: int | None = Field(default=None, gt=0)
    """At most this many agent turns per run (AgentKit's ``maxIter``)."""
    limits: Limits | None = None
    """Run-wide limits: iterations, tokens, cost, wall time, and how deep runs may start runs."""
    agents: Annotated[dict[Name, AgentSpec], Field(min_length=1)]
    """The agents, by name."""
    router: RouterSpec | None = None
    """How the next agent is chosen (default: the LLM routing agent)."""
    function: FunctionSpec | None = None
    """Inngest function settings: retries, concurrency, throttle, ..."""
    history: HistorySpec | None = None
    """Where conversations (threads) are kept: a run with a thread id loads the thread's
    messages before its first agent and appends its input and each agent's reply."""
    setup: list[SetupStep] = []
    """Steps run once, before the router first runs (in order): a failure fails the run
    (``non_retriable: true``: at once, without the step's retries)."""
    finally_: list[FinallyStep] = Field(default=[], alias="finally")
    """Steps run once the run has ended, whatever the outcome (completed, failed, a limit
    reached): cleanup, notifications. Their templates see ``outcome``."""
    send: RunEvents | None = None
    """Events sent once as the run ends: ``completed`` and ``failed`` lists of ``{event, data}``
    (not ``on:``, which YAML 1.1 tools read as ``true``)."""

    @property
    def turn_limit(self) -> int:
        """At most this many agent turns per run: ``max_iter``, else ``limits.iterations``,
        else :data:`DEFAULT_MAX_ITER`."""
        limits = self.limits
        return self.max_iter or (limits.iterations if limits and limits.iterations else None) or DEFAULT_MAX_ITER
