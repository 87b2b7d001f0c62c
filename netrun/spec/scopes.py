"""The scope table: every template and expression place of a network file, and the variables it sees.

It is written once, here, for both sides. ``netrun validate`` (:mod:`netrun.check.network`)
checks each place's variable names against :data:`PLACES`, and the runtime builds each
place's variables through :func:`variables`, which refuses a dict whose names are not the
table's. The two kept their own lists before and drifted apart (``input`` in
``wait_for_event.if``, ``agent`` in a system prompt: issue 11).

This module sits in ``spec/`` so that ``check/``, ``runtime/`` and ``engines/`` can all import
it; it imports nothing but the standard library. The README's "Templates and expressions"
tables are :func:`markdown`'s output (a test compares them).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Variable:
    """One variable a template may read."""

    name: str
    meaning: str
    """One line, as the README shows it."""
    fields: frozenset[str] | None = None
    """Its attributes when they are fixed (``run.id``); None when they are any, or declared."""
    declared: bool = False
    """Its attributes are declared by the file (``state`` fields, a tool's parameters):
    the checker supplies them per network."""


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("input", "the run's input text"),
        Variable("state", "the network state, with the fields declared under `state:`", declared=True),
        Variable("event", "the event that started the run (`name`, `data`, ...; `{}` for a run started from the CLI)"),
        Variable("network", "this network's `name` and `description`", frozenset({"name", "description"})),
        Variable("results", "each agent turn so far, in order: `agent`, `text`, `tool_calls`"),
        Variable("call_count", "how many agent turns the run has made"),
        Variable("last_agent", "the agent of the last turn (none before the first)"),
        Variable("last_output", "the text of the last turn (none before the first)"),
        Variable("agent", "the agent whose prompt this is: `name`, `description`", frozenset({"name", "description"})),
        Variable("agents", "the agents to choose from, each with `name` and `description`"),
        Variable("args", "the arguments the model passed, named by the tool's `parameters`", declared=True),
        Variable("run", "this run: its `id`", frozenset({"id"})),
        Variable("async", "the event awaited (`wait_for_event`) or the one that cancels (`cancel`)"),
        Variable("approval", "netrun's own approval wait: the call awaiting a decision (`id`, `tool`, `args`, `step`, `event`)"),
        Variable("thread_id", "the thread's id"),
        Variable("user", "the thread's user (none in `get` and `append`)"),
        Variable("messages", "the messages to append (a body value of exactly `{{ messages }}` is sent as the list)"),
        Variable("result", "the result of the tool call or step (in `save:`, never an error result: that saves nothing)"),
        Variable("steps", "the results of the run's lifecycle steps named with `as:`, by that name (the latest of each)"),
        Variable("outcome", "how the run ended (in `finally:` steps; none elsewhere): `status`, `stop`, `output`, `error`"),
    )
}

NETWORK = ("input", "state", "event", "network", "results", "call_count", "last_agent", "last_output", "steps")
"""What the network loop knows between turns: the variables of prompts and rules."""
TOOL = ("args", "state", "input", "event", "run")
"""What a tool call knows: its arguments and the run around it."""
EVENT = ("event",)
"""What Inngest (or the local engine in its place) knows before a run starts."""
THREAD = ("thread_id", "user")


@dataclass(frozen=True)
class Place:
    """Where templates or expressions appear, and what they see there."""

    key: str
    where: str
    """How the README names it."""
    kind: Literal["template", "expression"]
    paths: tuple[str, ...]
    """The fields in a network file, as YAML paths: ``*`` any key, ``[]`` any item (or the one
    mapping of a section that may be a mapping or a list, as ``trigger``)."""
    names: frozenset[str]
    later: frozenset[str] = frozenset()
    """The names the engine adds when it evaluates the place (a wait's ``event`` and
    ``async``, known only where the awaited event arrives): the run builds the rest."""

    @functools.cached_property
    def built(self) -> frozenset[str]:
        """The names the run itself provides (checked on every call of :func:`variables`)."""
        return self.names - self.later


def _place(
    key: str,
    where: str,
    kind: Literal["template", "expression"],
    paths: tuple[str, ...],
    names: tuple[str, ...],
    later: tuple[str, ...] = (),
) -> Place:
    unknown = set(names) - set(VARIABLES)
    assert not unknown, f"{key}: {unknown} are not in VARIABLES"
    return Place(key, where, kind, paths, frozenset(names), frozenset(later))


AGENT_SYSTEM = _place("agent.system", "agent `system`", "template", ("agents.*.system",), (*NETWORK, "agent"))
PROMPT = _place(
    "prompt",
    "`prompts` (checked alone; included, a prompt sees what the including template sees)",
    "template",
    ("prompts",),
    NETWORK,
)
RULE_IF = _place("router.rule.if", "router rule `if`", "expression", ("router.rules[].if",), NETWORK)
ROUTER_SYSTEM = _place("router.llm.system", "router `llm.system`", "template", ("router.llm.system",), (*NETWORK, "agents"))
TOOL_STATE = _place("tool.state", "tool `state` values", "template", ("tools.*.state",), TOOL)
TOOL_HTTP = _place(
    "tool.http",
    "tool `http` `url`, `query`, `headers`, `body`",
    "template",
    ("tools.*.http.url", "tools.*.http.query", "tools.*.http.headers", "tools.*.http.body"),
    TOOL,
)
TOOL_EVENT = _place("tool.event", "tool `event` `name`, `data`", "template", ("tools.*.event.name", "tools.*.event.data"), TOOL)
TOOL_NETWORK = _place("tool.network.input", "tool `network.input`", "template", ("tools.*.network.input",), TOOL)
WAIT_IF = _place(
    "tool.wait_for_event.if",
    "tool `wait_for_event.if`",
    "expression",
    ("tools.*.wait_for_event.if",),
    (*TOOL, "async"),
    later=("event", "async"),
)
TRIGGER_INPUT = _place("trigger.input", "`trigger` `input`", "template", ("trigger.input",), EVENT)
TRIGGER_IF = _place("trigger.if", "`trigger` `if`", "expression", ("trigger.if",), EVENT)
FUNCTION_KEY = _place(
    "function.key",
    "`function` keys: `concurrency[].key`, `throttle.key`, `rate_limit.key`, `debounce.key`, `singleton.key`, `priority.run`, `idempotency`",
    "expression",
    (
        "function.concurrency[].key",
        "function.throttle.key",
        "function.rate_limit.key",
        "function.debounce.key",
        "function.singleton.key",
        "function.priority.run",
        "function.idempotency",
    ),
    EVENT,
)
CANCEL_IF = _place("function.cancel.if", "`function` `cancel[].if`", "expression", ("function.cancel[].if",), ("event", "async"))
HISTORY = _place(
    "history.http",
    "`history.http` `create` and `get`: `url`, `headers`, `body`",
    "template",
    (
        "history.http.create.url",
        "history.http.create.headers",
        "history.http.create.body",
        "history.http.get.url",
        "history.http.get.headers",
        "history.http.get.body",
    ),
    THREAD,
)
HISTORY_APPEND = _place(
    "history.http.append",
    "`history.http` `append`: `url`, `headers`, `body`",
    "template",
    ("history.http.append.url", "history.http.append.headers", "history.http.append.body"),
    (*THREAD, "messages"),
)
APPROVAL_IF = _place(
    "approval.if",
    "(netrun's own condition of an approval wait)",
    "expression",
    (),
    ("run", "approval", "event", "async"),
    later=("event", "async"),
)
"""Not a place in the file: the condition netrun writes for a tool's approval wait, in the table
so that the engines' wait matching builds its variables the same way for both kinds of wait."""

TOOL_COMMAND = _place(
    "tool.command",
    "tool `command` `argv`, `stdin`, `env`",
    "template",
    ("tools.*.command.argv", "tools.*.command.stdin", "tools.*.command.env"),
    TOOL,
)
"""A command tool's templates: each ``argv`` item renders to one argument (with ``shell: true``,
the one script string, its inserted values shell-quoted), ``stdin`` and the ``env`` values."""

TOOL_SAVE = _place("tool.save", "tool `save` values", "template", ("tools.*.save",), (*TOOL, "result"))
"""A tool's ``save:`` writes, rendered once its call succeeded, on the state the turn's earlier
calls left (:mod:`netrun.runtime.saving`)."""

_STEP_LISTS = ("setup[]", "agents.*.before[]", "agents.*.after[]", "finally[]")
_STEP_NAMES = (*NETWORK, "run", "agent", "outcome", "result")
STEP = _place(
    "step",
    "lifecycle step (`setup`, `before`, `after`, `finally`) `args`, `save`",
    "template",
    tuple(f"{where}.{key}" for where in _STEP_LISTS for key in ("args", "save")),
    _STEP_NAMES,
)
"""A lifecycle step's templates (:mod:`netrun.runtime.lifecycle`). One place for the four
lists: ``agent`` is none in ``setup`` and ``finally``, ``outcome`` none outside ``finally``,
and ``result`` (the step's) none in ``args``, rendered before the call."""
STEP_IF = _place(
    "step.if",
    "lifecycle step `if`, `skip_agent_if`, `stop_if`",
    "expression",
    (
        *(f"{where}.if" for where in _STEP_LISTS),
        "agents.*.before[].skip_agent_if",
        *(f"{where}.stop_if" for where in _STEP_LISTS[:3]),
    ),
    _STEP_NAMES,
)
"""A lifecycle step's conditions: ``if`` before the call (``result`` none), ``skip_agent_if``
and ``stop_if`` on its result."""

TRIGGER_THREAD = _place("trigger.thread", "`trigger` `thread`, `user`", "template", ("trigger.thread", "trigger.user"), EVENT)
"""The thread and user a run started by an event belongs to (``{{ event.data.threadId }}``)."""
MODEL_FROM = _place("model.from", "`model.from` (network, agent)", "template", ("model.from", "agents.*.model.from"), EVENT)
"""The id of the model a run uses, chosen from the event within ``model.allowed``."""
RUN_EVENTS = _place(
    "send",
    "`send` `completed[].data`, `failed[].data`",
    "template",
    ("send.completed[].data", "send.failed[].data"),
    ("input", "state", "event", "run", "outcome"),
)
"""The events a run sends as it ends (:func:`netrun.engines.run_events.send_run_events`)."""

PLACES: tuple[Place, ...] = (
    AGENT_SYSTEM,
    PROMPT,
    RULE_IF,
    ROUTER_SYSTEM,
    TOOL_STATE,
    TOOL_HTTP,
    TOOL_EVENT,
    TOOL_NETWORK,
    WAIT_IF,
    TRIGGER_INPUT,
    TRIGGER_IF,
    FUNCTION_KEY,
    CANCEL_IF,
    HISTORY,
    HISTORY_APPEND,
    APPROVAL_IF,
    # issue 15 places, one line per piece of work (keep each where it is, to merge cleanly):
    # command tools:
    TOOL_COMMAND,
    # save (results into state):
    TOOL_SAVE,
    # lifecycle steps (before/after/setup/finally):
    STEP,
    STEP_IF,
    # events in and out:
    TRIGGER_THREAD,
    MODEL_FROM,
    RUN_EVENTS,
)


class ScopeError(RuntimeError):
    """The runtime built a place's variables with other names than the table's: a netrun bug
    (validate would accept templates the run cannot render, or reject ones it can)."""


def variables(place: Place, values: dict[str, Any]) -> dict[str, Any]:
    """``values``, checked to hold exactly the names the run provides at ``place``.

    Every runtime site that renders or evaluates a file's template builds its variables
    through here. The check is one comparison of key sets, cheap enough for every turn.
    """
    if values.keys() != place.built:
        missing, extra = sorted(place.built - values.keys()), sorted(values.keys() - place.built)
        raise ScopeError(f"the variables of {place.key} differ from the scope table: missing {missing}, extra {extra}")
    return values


def at_match(stored: Mapping[str, Any], trigger: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
    """The variables of a wait's ``if`` (:data:`WAIT_IF`, :data:`APPROVAL_IF`) when an event
    arrives: what the run stored as the wait began, and the two names the engine adds."""
    return {**stored, "event": dict(trigger), "async": dict(incoming)}


def markdown() -> str:
    """The README's tables: each place with its variables, then each variable's meaning."""
    rows = ["| where | variables |", "|---|---|"]
    for place in PLACES:
        if place.paths:
            rows.append(f"| {place.where} | {', '.join(f'`{n}`' for n in _ordered(place.names))} |")
    rows += ["", "| variable | meaning |", "|---|---|"]
    shown = {n for p in PLACES if p.paths for n in p.names}
    rows += [f"| `{v.name}` | {v.meaning} |" for v in VARIABLES.values() if v.name in shown]
    return "\n".join(rows) + "\n"


def _ordered(names: frozenset[str]) -> list[str]:
    order = list(VARIABLES)
    return sorted(names, key=order.index)
