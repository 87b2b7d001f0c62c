"""Routers: state rules, the LLM routing agent, and rules that fall back to it.

Rules are pure: given the same state they pick the same agent, so they need no step. The
routing agent is an inference call, made inside a step like any other, so a replay takes
the recorded decision instead of asking the model again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..diagnostics import YamlPath
from ..spec import scopes
from .model import Completion, Request
from .render import Renderer
from .results import sent_arguments

STOP = None
_ATTEMPTS = 3  # an unknown agent name is fed back to the routing agent this many times

DEFAULT_ROUTER_PROMPT = """You are the router of an agent network called {{ network.name }}. \
Decide which agent should work next on the user's request, or finish when the request \
is fully handled.

Agents:
{% for a in agents %}- {{ a.name }}: {{ a.description or "(no description)" }}
{% endfor %}
{% if results %}Work so far:
{% for r in results %}- {{ r.agent }}: {{ r.text or "(no text)" }}
{% endfor %}{% else %}No agent has worked on the request yet.
{% endif %}
Call select_agent with the name of the next agent, or finish when nothing is left to do."""


@dataclass(frozen=True)
class Decision:
    agent: str | None
    """The next agent, or None to stop."""
    how: str
    """Why: ``rule N: <if>``, ``otherwise``, ``llm: <reason>``, or the routing failure."""


def rule_decision(rules: list[Any], variables: dict[str, Any], renderer: Renderer) -> tuple[int, Any] | None:
    """The first rule whose ``if`` holds, with its index. A rule whose ``if`` fails raises
    :class:`~netrun.runtime.render.RenderError` naming it (``router.rules[2].if: ...``): at
    run time the expression text alone does not say which of several rules it was."""
    for i, rule in enumerate(rules):
        if renderer.evaluate(rule.if_, variables, place=("router", "rules", i, "if")):
            return i, rule
    return None


def router_tools(agents: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": "select_agent",
                "description": "Run this agent next.",
                "parameters": {
                    "type": "object",
                    "properties": {"agent": {"type": "string", "enum": agents}, "reason": {"type": "string"}},
                    "required": ["agent"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "finish",
                "description": "The request is fully handled: stop the network.",
                "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}},
            },
        },
    ]


async def llm_decision(
    *,
    renderer: Renderer,
    call: Callable[[Request], Any],
    turn: int,
    system: str,
    user: str,
    agents: dict[str, str | None],
    variables: dict[str, Any],
) -> tuple[Decision, list[Completion]]:
    """Ask the routing agent; feed an unknown agent name back to it instead of failing.

    ``call`` makes one inference through a step and returns its Completion. Returns the
    decision and the completions made (for usage accounting).
    """
    listed = [{"name": n, "description": d} for n, d in agents.items()]
    # netrun's own prompt has no place in the file: an error there names the router
    place: YamlPath = ("router",) if system == DEFAULT_ROUTER_PROMPT else ("router", "llm", "system")
    prompt = renderer.render(system, scopes.variables(scopes.ROUTER_SYSTEM, {**variables, "agents": listed}), place)
    messages: list[dict[str, Any]] = [{"role": "system", "content": prompt}, {"role": "user", "content": user}]
    tools = router_tools(list(agents))
    made: list[Completion] = []
    for attempt in range(_ATTEMPTS):
        completion: Completion = await call(Request("router", turn + attempt, messages, tools, "required"))
        made.append(completion)
        chosen = completion.tool_calls[0] if completion.tool_calls else None
        if chosen is None or chosen.name == "finish":
            reason = _arg(chosen.arguments, "reason") if chosen else completion.text
            return Decision(STOP, f"llm: finish{': ' + reason if reason else ''}"), made
        name = _arg(chosen.arguments, "agent")
        if chosen.name == "select_agent" and name in agents:
            reason = _arg(chosen.arguments, "reason")
            return Decision(name, f"llm{': ' + reason if reason else ''}"), made
        problem = f"unknown agent '{name}'" if chosen.name == "select_agent" else f"unknown tool '{chosen.name}'"
        messages = [
            *messages,
            {
                "role": "assistant",
                "content": completion.text or None,
                "tool_calls": [
                    {
                        "id": chosen.id,
                        "type": "function",
                        "function": {"name": chosen.name, "arguments": sent_arguments(chosen.arguments)},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": chosen.id,
                "content": f"error: {problem}; choose one of: {', '.join(agents)}, or call finish",
            },
        ]
    return Decision(STOP, f"llm: no valid agent after {_ATTEMPTS} attempts"), made


def _arg(arguments: str, key: str) -> str | None:
    try:
        value = json.loads(arguments or "{}").get(key)
    except (ValueError, AttributeError):
        return None
    return str(value) if value is not None else None
