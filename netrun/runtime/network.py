"""The network loop: route, run an agent (one inference plus its tool calls), repeat.

Every side effect goes through ``steps`` under a deterministic id (:mod:`netrun.runtime.step_ids`:
``turn.3.triage.infer``, ``turn.3.triage.tool.0.set_category``, ``route.3``); state and
history are rebuilt from step outputs only. Replaying a run therefore takes the same path
and repeats nothing. The loop's parts: :mod:`~netrun.runtime.turn` (one agent turn and its
tool calls), :mod:`~netrun.runtime.inference` (one model call as a step),
:mod:`~netrun.runtime.thread_steps` (the thread), :mod:`~netrun.runtime.results`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import observe
from ..compile import Program
from ..history.thread import Thread
from ..redact import Secrets, redact_logs
from ..spec import scopes
from ..spec.base import parse_duration
from ..tools.registry import build_tools
from . import events, lifecycle, step_ids
from .inference import infer
from .model import Completion, Request
from .render import RenderError, renderer_for
from .results import AgentResult, RunError, RunResult, Usage
from .router import DEFAULT_ROUTER_PROMPT, Decision, llm_decision, rule_decision
from .steps import Steps
from .thread_steps import open_thread
from .turn import run_turn

Emit = Callable[[str, dict[str, Any]], None]


class NetworkRun:
    """One execution (or replay) of a program."""

    def __init__(
        self,
        program: Program,
        steps: Steps,
        *,
        input: str,
        state: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        environ: Mapping[str, str],
        emit: Emit | None = None,
        mcp: Any = None,
        stream: bool | Callable[[], bool] = True,
        thread: Thread | None = None,
        depth: int = 0,
        data_dir: Path | None = None,
        cancelled: Callable[[], str | None] | None = None,
    ) -> None:
        self.p = program
        self.renderer = renderer_for(program.spec.prompts)
        """Renders this network's templates with its prompt fragments (shared by its runs)."""
        self.steps: Steps = steps if cancelled is None else lifecycle.Cancellable(steps, cancelled)
        """The engine's steps; with ``cancelled`` (the engine's "was this run cancelled, and
        why"), a cancelled run's next new step raises :class:`lifecycle.RunCancelled`."""
        self.input = input
        self.state: dict[str, Any] = program.initial_state(state)
        self.event = dict(event or {})
        self.environ = environ
        self.secrets = Secrets.for_names(program.env_names, environ)
        """The run's ``${ENV}`` values: every text from a tool, a server or a model is redacted
        against them inside its step, before the journal, Inngest, the thread, the stream or the
        model sees it (:mod:`netrun.redact`)."""
        redact_logs(self.secrets)
        self.sink = emit
        """Where progress goes (:meth:`emit` redacts it first; streamed text is clean already)."""
        self.stream = stream
        """Stream the model's text as ``text.delta`` events (for a person watching)."""
        self.mcp = mcp
        """The run's MCP servers (:class:`netrun.tools.mcp.McpServers`), or None."""
        self.tools = build_tools(program)
        """The run's tools, built from the registry (with the program's stubs)."""
        self.usage = Usage()
        self.agent_usage: dict[str, Usage] = {}
        self.results: list[AgentResult] = []
        self.results_view: list[dict[str, Any]] = []
        """``results`` as templates see them, built once per result (not once per render)."""
        self.results_messages: list[dict[str, Any]] = []
        """``results`` as the next agents read them (OpenAI messages: each turn's assistant
        message, then a tool message per call), built once per result: the same strings on
        every later inference (their redaction is remembered, see :meth:`Secrets.redact`)."""
        self.call_ids: set[str] = set()
        """The tool call ids of the conversation (the thread's and this run's): each new one
        must differ (:func:`netrun.runtime.turn.call_ids`)."""
        self.route: list[str] = []
        self.thread = thread
        """The conversation this run belongs to (its earlier messages are ``history``)."""
        self.data_dir = data_dir
        """Where the engine keeps the run's files (tools' work folders go there too)."""
        self.depth = max(0, depth)
        """How many runs deep this run is (0: started from outside); stored with the run by
        its engine, so a resumed or replayed run decides the same as the first execution."""
        self.starts = 0
        """Calls of network and event tools so far (``limits.runs``): counted as each turn's
        calls are dispatched, in the model's order, so a replay counts the same."""
        self.history: list[dict[str, Any]] = []
        self.history_shown: dict[str, list[dict[str, Any]]] = {}
        """Per agent, the thread's messages as its window shows them to the model (built once)."""
        self.tools_shown: dict[tuple[int, ...], tuple[tuple[Any, ...], dict[str, Any], list[Any]]] = {}
        """The schemas and redacted list of each set of tools an agent offered (:func:`.turn.shown`);
        the tools are held too, so that their ids keep naming them."""
        self.turns: dict[str, int] = {}
        """Inference calls per caller so far (scripted replies are indexed by it)."""
        self.step_results: dict[str, Any] = {}
        """The results of the lifecycle steps named with ``as:`` (templates read them as
        ``steps.NAME``), rebuilt from their recorded outcomes on replay."""

    def emit(self, kind: str, replayed: bool = False, **data: Any) -> None:
        """Report progress; ``replayed`` marks what a resumed run re-reads from its journal."""
        if self.sink is not None:
            # Outcomes are redacted where they are made; this catches what an event quotes besides.
            self.sink(kind, self.secrets.redact_value({"run_id": self.steps.run_id, "replayed": replayed, **data}))

    # -- the loop ----------------------------------------------------------------------
    async def run(self) -> RunResult:
        """Run the loop to its end (the router stopped, a limit, a step's ``stop_if``); raises
        what ended it otherwise (a :class:`RunError`, :class:`~netrun.runtime.lifecycle.RunCancelled`,
        an engine's control flow). The ``finally:`` steps are not run here: the engine's execution
        decides the outcome first (its ``send:`` events may still fail a completed run), then
        calls :meth:`finish` with it, whatever it is, so both say the same."""
        return await self._loop()

    async def finish(self, outcome: Mapping[str, Any]) -> None:
        """The network's ``finally:`` steps, once the run has ended as ``outcome`` says."""
        await lifecycle.finish(self, outcome)

    async def _loop(self) -> RunResult:
        if self.thread is not None:
            await open_thread(self, self.thread)
        n = 0
        stop = "router"
        if await lifecycle.setup(self) == "stop":
            return self._result("setup", n)
        while True:
            limit = self._limit_reached(n)
            if limit:
                stop = limit
                break
            decision = await self._route(n)
            replayed = decision.agent is not None and self.steps.replaying(step_ids.Turn(n, decision.agent).infer)
            self.emit(events.ROUTED, replayed, iteration=n, agent=decision.agent, how=decision.how)
            if not replayed and observe.observed():
                observe.event("netrun.routed", iteration=n, agent=decision.agent, how=self.secrets.redact(decision.how))
            if decision.agent is None:
                stop = "router"
                break
            agent_limit = self._agent_limit(decision.agent)
            if agent_limit:
                stop = agent_limit
                break
            # The turn counts toward max_iter even when a before-step skips it: a router
            # that keeps picking a skipped agent ends at the limit.
            end = await lifecycle.before(self, n, decision.agent)
            if end == "stop":
                stop = f"before:{decision.agent}"
                break
            if end is None:
                await run_turn(self, n, decision.agent)
                end = await lifecycle.after(self, n, decision.agent)
            n += 1
            if end == "stop":
                stop = f"after:{decision.agent}"
                break
        return self._result(stop, n)

    def _result(self, stop: str, n: int) -> RunResult:
        output = next((r.text for r in reversed(self.results) if r.text), "")
        return RunResult(
            output, self.state, self.route, self.usage, stop, n, self.results, self.thread.id if self.thread else None
        )

    def _limit_reached(self, n: int) -> str | None:
        limits = self.p.spec.limits
        if n >= self.p.max_iter:
            return "max_iter"
        if limits is not None:
            if limits.tokens and self.usage.tokens >= limits.tokens:
                return "tokens"
            if limits.cost and self.usage.cost >= limits.cost:
                return "cost"
            if limits.time and self.usage.seconds >= parse_duration(limits.time).total_seconds():
                return "time"
        return None

    def _agent_limit(self, name: str) -> str | None:
        limits = self.p.agents[name].spec.limits
        if limits is None:
            return None
        used = self.agent_usage.get(name, Usage())
        if limits.calls and self.route.count(name) >= limits.calls:
            return f"agent_calls:{name}"
        if limits.tokens and used.tokens >= limits.tokens:
            return f"agent_tokens:{name}"
        if limits.cost and used.cost >= limits.cost:
            return f"agent_cost:{name}"
        return None

    def variables(self) -> dict[str, Any]:
        """What the loop knows between turns: the variables of router rules (the agent and
        router prompts add one name each, as the scope table says)."""
        last = self.results[-1] if self.results else None
        return scopes.variables(
            scopes.RULE_IF,
            {
                "input": self.input,
                "state": dict(self.state),
                "event": self.event,
                "network": {"name": self.p.spec.name, "description": self.p.spec.description},
                "results": list(self.results_view),
                "call_count": len(self.route),
                "last_agent": last.agent if last else None,
                "last_output": last.text if last else None,
                "steps": dict(self.step_results),
            },
        )

    async def _route(self, n: int) -> Decision:
        router = self.p.spec.router
        variables = self.variables()
        if router is not None and router.rules:
            try:
                found = rule_decision(router.rules, variables, self.renderer)
            except RenderError as exc:
                raise RunError(f"router rule: {exc}") from None
            if found is not None:
                i, rule = found
                return Decision(None if rule.stop else rule.agent, f"rule {i + 1}: {rule.if_}")
        fallback = router.fallback() if router is not None else "llm"
        if fallback == "stop":
            return Decision(None, "no rule matched (otherwise: stop)")
        if fallback != "llm":
            return Decision(fallback, "otherwise")
        system = (router.llm.system if router and router.llm and router.llm.system else None) or DEFAULT_ROUTER_PROMPT
        agents = {name: a.spec.description for name, a in self.p.agents.items()}
        counter = [0]

        async def call(request: Request) -> Completion:
            step_id = step_ids.route(n, counter[0])
            counter[0] += 1
            assert self.p.router_model is not None
            return await infer(self, step_id, self.p.router_model, request)

        try:
            decision, made = await llm_decision(
                renderer=self.renderer,
                call=call,
                turn=self.turns.get("router", 0),
                system=system,
                user=self.input,
                agents=agents,
                variables=variables,
            )
        except RenderError as exc:
            raise RunError(f"router: {exc}") from None
        self.turns["router"] = self.turns.get("router", 0) + len(made)
        for c in made:
            self.usage.add(c)
        return decision


# The results' types are imported from here by the engines and the tools (RunError above all).
__all__ = ["AgentResult", "Emit", "NetworkRun", "RunError", "RunResult", "Usage"]
