"""Check phase, the steps around agents and runs: ``setup:``, ``before:``, ``after:``, ``finally:``.

Each step names a declared tool (did-you-mean otherwise), passes it only arguments its
``parameters`` declare, writes only declared state fields (the same rules as a tool's
``save:``), and its templates and conditions read only what the scope table gives steps
(:data:`netrun.spec.scopes.STEP`, :data:`~netrun.spec.scopes.STEP_IF`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..diagnostics import YamlPath
from ..spec import NetworkSpec, scopes
from ..spec.lifecycle import StepBase
from ..spec.params import JsonSchema
from ..suggest import hint
from .tools import _writes

if TYPE_CHECKING:
    from .network import NetworkChecker

_CONDITIONS = ("if", "skip_agent_if", "stop_if")


def check(c: NetworkChecker) -> None:
    """Every lifecycle step of the network and of its agents."""
    spec = c.spec
    lists: list[tuple[YamlPath, Sequence[StepBase]]] = [(("setup",), spec.setup)]
    for name, agent in spec.agents.items():
        lists += [(("agents", name, "before"), agent.before), (("agents", name, "after"), agent.after)]
    lists.append((("finally",), spec.finally_))
    templates, conditions = c.scope(scopes.STEP), c.scope(scopes.STEP_IF)
    for where, steps in lists:
        for i, step in enumerate(steps):
            path: YamlPath = (*where, i)
            _tool(c, path, step)
            c.walk_templates((*path, "args"), step.args, templates)
            if step.save:
                c.walk_templates((*path, "save"), step.save, templates)
                _writes(c, (*path, "save"), step.save)
            for key in _CONDITIONS:
                source = getattr(step, "if_" if key == "if" else key, None)
                if source is not None:
                    c.template((*path, key), source, conditions, expression=True)


def step_tools(spec: NetworkSpec) -> set[str]:
    """The tools the network's steps call (a tool only a step calls is used: no warning)."""
    steps: list[StepBase] = [*spec.setup, *spec.finally_]
    for agent in spec.agents.values():
        steps += [*agent.before, *agent.after]
    return {step.tool for step in steps}


def _tool(c: NetworkChecker, path: YamlPath, step: StepBase) -> None:
    """The step's tool is declared, and the step's arguments are among its parameters."""
    tools = c.spec.tools
    tool = tools.get(step.tool)
    if tool is None:
        if not c.dropped("tools", step.tool):
            c.report(
                (*path, "tool"),
                f"unknown tool '{step.tool}'"
                + hint(step.tool, list(tools), "tools")
                + " (a step calls a tool declared under 'tools:')",
                "unknown-tool",
            )
        return
    params = tool.parameters
    if params is None:
        return
    names = list(params.properties or {}) if isinstance(params, JsonSchema) else list(params)
    if isinstance(params, JsonSchema) and params.properties is None:
        return  # a schema without properties takes any arguments
    for key in step.args:
        if key not in names:
            c.report(
                (*path, "args", key),
                f"tool '{step.tool}' has no parameter '{key}'" + hint(key, names, "parameters"),
                "unknown-argument",
                key=True,
            )


__all__ = ["check", "step_tools"]
