"""Inngest's run limits a network can reach by its definition: validate warnings, with the sums.

Inngest fails a run past 1,000 steps (``pkg/consts/consts.go`` ``DefaultMaxStepLimit``) and a
step whose output is over 4 MB (``MaxStepOutputSize``). Neither is refused at sync, and a
network can run well below them, so they are warnings: the worst case the definition allows,
with the arithmetic, so the author sees which knob to turn.

Steps of a run, as the loop takes them (:mod:`netrun.runtime.network`, ``netrun serve``'s
handler): ``netrun.definition`` (1); with a thread (``history``, or a trigger whose ``thread``
names one), ``thread.load`` and ``thread.input`` (2); the ``setup:`` and ``finally:`` steps;
one ``send.completed``/``send.failed`` step when ``send:`` declares events; then per turn
``route.N`` (1, with LLM routing: it may retry up to 3 times when the model names an unknown
agent, not counted), the agent's ``before:`` and ``after:`` steps, ``turn.N.AGENT.infer`` (1),
one step per tool call, and with a thread ``turn.N.AGENT.thread`` (1). Each call, the model's
or a step's, takes one more step for its approval (durability rule 6 takes none on Inngest:
a cut-off call is told apart by its step's attempt). A model may ask for any number of tool calls in a turn; without
``limits.tool_calls`` the estimate is one call of each tool the agent offers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..diagnostics import YamlPath
from ..spec.agent import AgentSpec
from ..spec.function import MAX_STEP_OUTPUT, MAX_STEPS
from ..spec.lifecycle import StepBase
from ..spec.tools import HttpTool
from .mcp_approval import gated_calls

if TYPE_CHECKING:
    from .network import NetworkChecker

SAFE_OUTPUT = 4_000_000
"""The largest payload a step output may carry under MAX_STEP_OUTPUT with room for its JSON envelope."""
CHARS_PER_TOKEN = 4
"""netrun.history.base.estimate_tokens: how a window's tokens are counted."""


@dataclass
class _Turn:
    agent: str
    steps: int
    parts: str
    calls: int | None
    """``limits.calls`` of the agent: at most this many of its turns in a run."""


def check(c: NetworkChecker) -> None:
    if not c.broken:  # with parts dropped for schema errors the sum would be of another network
        _steps(c)
    _outputs(c)


def _touched(c: NetworkChecker, path: YamlPath) -> bool:
    """Whether a schema error dropped ``path``, a part of it or what holds it (a default stands there)."""
    return any(p[: len(path)] == path or path[: len(p)] == p for p in c.broken)


def _steps(c: NetworkChecker) -> None:
    spec = c.spec
    limits = spec.limits
    turns = spec.turn_limit
    thread = spec.history is not None or any(getattr(t, "thread", None) for t in _triggers(c))
    routing = 1 if c.llm_routing() else 0
    costs = sorted((_turn(c, name, agent, routing, thread) for name, agent in spec.agents.items()), key=lambda t: -t.steps)
    around = [(label, _lifecycle(c, steps)) for label, steps in (("setup", spec.setup), ("finally", spec.finally_))]
    sent = 1 if spec.send is not None and (spec.send.completed or spec.send.failed) else 0
    fixed = 1 + (2 if thread else 0) + sum(n for _, n in around) + sent
    total, left, terms = fixed, turns, []
    for t in costs:  # the worst case: the most expensive agents take every turn they may
        n = left if t.calls is None else min(left, t.calls)
        if n > 0:
            total += n * t.steps
            left -= n
            terms.append(f"{n} turn{'s' if n != 1 else ''} × {t.steps} steps of agent '{t.agent}' ({t.parts})")
    if total <= MAX_STEPS or not terms:
        return
    where: YamlPath = (
        ("max_iter",)
        if spec.max_iter
        else ("limits", "iterations")
        if limits and limits.iterations
        else ("agents", costs[0].agent)
    )
    c.warn(
        where,
        f"a run can take up to {total:,} Inngest steps, more than the {MAX_STEPS:,} Inngest allows in one run "
        f"(pkg/consts/consts.go DefaultMaxStepLimit): 1 (netrun.definition)"
        + (" + 2 (thread.load, thread.input)" if thread else "")
        + "".join(f" + {n} ({label} steps)" for label, n in around if n)
        + (" + 1 (send: events)" if sent else "")
        + "".join(f" + {term}" for term in terms)
        + f" = {total:,}; lower the iterations ({turns} now) or cap tool calls per turn "
        "with the agents' limits.tool_calls",
        "too-many-steps",
    )


def _turn(c: NetworkChecker, name: str, agent: AgentSpec, routing: int, thread: bool) -> _Turn:
    spec = c.spec
    approvals = {t for t, tool in spec.tools.items() if tool.approval is not None and tool.approval != "none"}
    cap = agent.limits.tool_calls if agent.limits else None
    if cap is not None:
        calls, note = cap, "limits.tool_calls"
        gated = any(ref in approvals or _mcp_gated(c, ref) for ref in agent.tools)
        extra = cap if gated or any(_mcp_gated(c, f"{s}.*") for s in agent.mcp_servers) else 0
    else:
        calls, extra = 0, 0
        for ref in agent.tools:
            server, dot, tool = ref.partition(".")
            calls += _server_tools(c, server) if dot and tool == "*" else 1
            extra += 1 if ref in approvals else _mcp_gated(c, ref)  # one wait step per gated call
        calls += sum(_server_tools(c, s) for s in agent.mcp_servers)
        extra += sum(_mcp_gated(c, f"{s}.*") for s in agent.mcp_servers)
        note = f"one call of each of its {calls} tool{'s' if calls != 1 else ''}, as limits.tool_calls is not set"
    parts = [f"{routing} routing call"] if routing else []
    lifecycle = _lifecycle(c, agent.before) + _lifecycle(c, agent.after)
    if lifecycle:
        parts.append(f"{lifecycle} before:/after: step{'s' if lifecycle != 1 else ''}")
    parts.append("1 inference")
    if calls:
        parts.append(f"{calls} tool call{'s' if calls != 1 else ''} ({note})")
    if extra:
        parts.append(f"{extra} approval{'s' if extra != 1 else ''}")
    if thread:
        parts.append("1 thread append")
    steps = routing + lifecycle + 1 + calls + extra + int(thread)
    return _Turn(name, steps, " + ".join(parts), agent.limits.calls if agent.limits else None)


def _triggers(c: NetworkChecker) -> list[object]:
    trigger = c.spec.trigger
    return [] if trigger is None else list(trigger) if isinstance(trigger, list) else [trigger]


def _lifecycle(c: NetworkChecker, steps: Sequence[StepBase]) -> int:
    """The Inngest steps of a list of lifecycle steps: each one's call and its approval."""
    total = 0
    for step in steps:
        tool = c.spec.tools.get(step.tool)
        approval = tool is not None and tool.approval is not None and tool.approval != "none"
        total += 1 + int(approval)
    return total


def _mcp_gated(c: NetworkChecker, ref: str) -> int:
    """How many calls of the MCP reference ``ref`` (``server.tool``, ``server.*``) may wait for approvals."""
    server, dot, tool = ref.partition(".")
    return gated_calls(c.spec.mcp_servers.get(server), tool) if dot else 0


def _server_tools(c: NetworkChecker, server: str) -> int:
    """Tools an MCP server offers, as far as the file says (its include list), else 1."""
    found = c.spec.mcp_servers.get(server)
    return len(found.include) if found is not None and found.include else 1


def _outputs(c: NetworkChecker) -> None:
    spec = c.spec
    limit = f"Inngest fails a step whose output is over {MAX_STEP_OUTPUT:,} bytes (4 MB, pkg/consts/consts.go MaxStepOutputSize)"
    for name, tool in spec.tools.items():
        if isinstance(tool, HttpTool) and tool.http.max_bytes > SAFE_OUTPUT and not _touched(c, ("tools", name)):
            c.warn(
                ("tools", name, "http", "max_bytes"),
                f"a response of up to {tool.http.max_bytes:,} bytes is the output of "
                f"this tool's step, and {limit}; keep max_bytes at most {SAFE_OUTPUT:,}",
                "step-output-too-large",
                key=False,
            )
    for name, server in spec.mcp_servers.items():
        if server.max_bytes > SAFE_OUTPUT and not _touched(c, ("mcp_servers", name)):
            c.warn(
                ("mcp_servers", name, "max_bytes"),
                f"a tool result of up to {server.max_bytes:,} bytes is the output of the "
                f"call's step, and {limit}; keep max_bytes at most {SAFE_OUTPUT:,}",
                "step-output-too-large",
                key=False,
            )
    if spec.history is None:
        return
    # thread.load memoizes the messages the widest window shows (all, for an agent without one).
    reported: set[YamlPath] = set()
    for name, agent in spec.agents.items():
        window = agent.history or spec.history.window
        base: YamlPath = (
            ("agents", name, "history") if agent.history else ("history", "window") if spec.history.window else ("history",)
        )
        if base in reported or _touched(c, base):
            continue
        reported.add(base)
        if window is None:
            c.warn(
                base,
                f"agent '{name}' is shown the whole thread, so the thread.load step returns every message of it, and a "
                f"thread grows with every run: {limit}; set history.window.tokens (at most "
                f"{SAFE_OUTPUT // CHARS_PER_TOKEN:,}, {CHARS_PER_TOKEN} characters a token)",
                "step-output-too-large",
            )
        elif window.tokens is None:
            c.warn(
                base,
                "this window bounds how many messages the thread.load step returns, not their size: "
                f"{limit}; set tokens too (at most {SAFE_OUTPUT // CHARS_PER_TOKEN:,}, {CHARS_PER_TOKEN} characters a token)",
                "step-output-too-large",
            )
        elif window.tokens * CHARS_PER_TOKEN > SAFE_OUTPUT:
            c.warn(
                (*base, "tokens"),
                f"{window.tokens:,} tokens are about {window.tokens * CHARS_PER_TOKEN:,} characters "
                f"({CHARS_PER_TOKEN} a token) in the thread.load step's output, and {limit}; keep tokens at most "
                f"{SAFE_OUTPUT // CHARS_PER_TOKEN:,}",
                "step-output-too-large",
                key=False,
            )
