"""The network loop: route, run an agent (one inference plus its tool calls), repeat.

Every side effect goes through ``steps`` under a deterministic id (``turn.3.triage.infer``,
``turn.3.triage.tool.0.set_category``, ``route.3``); state and history are rebuilt from
step outputs only. Replaying a run therefore takes the same path and repeats nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..compile import Program
from ..errors import NetrunError
from ..history.store import window
from ..history.thread import Thread
from ..redact import Secrets, redact_logs
from ..spec import scopes
from ..spec.base import parse_duration
from ..spec.history import Window
from ..tools.registry import build_tools
from .approvals import APPROVAL_EVENT  # noqa: F401 - netrun.testing.run imports it from here
from .args import check_args, parse_arguments
from .model import Completion, ModelError, Request
from .render import RenderError
from .router import DEFAULT_ROUTER_PROMPT, Decision, llm_decision, rule_decision
from .steps import StepFailed, Steps
from .tooling import Tool, ToolContext, ToolOutcome, run_tool, starts_runs

Emit = Callable[[str, dict[str, Any]], None]


@dataclass
class ToolRecord:
    id: str
    name: str
    args: Any
    result: Any = None
    error: str | None = None


@dataclass
class AgentResult:
    agent: str
    text: str
    tool_calls: list[ToolRecord] = field(default_factory=list)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, c: Completion) -> None:
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        self.cost += c.cost
        self.seconds += c.seconds


@dataclass
class RunResult:
    output: str
    state: dict[str, Any]
    route: list[str]
    usage: Usage
    stop_reason: str
    iterations: int
    results: list[AgentResult]
    thread_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"]["tokens"] = self.usage.tokens
        return data


class RunError(NetrunError, phase="run"):
    """The run cannot go on (a model that fails for good, a template that cannot render)."""


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
    ) -> None:
        self.p = program
        self.steps = steps
        self.input = input
        self.state: dict[str, Any] = program.initial_state(state)
        self.event = dict(event or {})
        self.environ = environ
        self.secrets = Secrets.for_names(program.env_names, environ)
        """The run's ``${ENV}`` values: every text from a tool, a server or a model is redacted
        against them inside its step, before the journal, Inngest, the thread, the stream or the
        model sees it (:mod:`netrun.redact`)."""
        redact_logs(self.secrets)
        self._emit = emit
        self.stream = stream
        """Stream the model's text as ``text.delta`` events (for a person watching)."""
        self.mcp = mcp
        """The run's MCP servers (:class:`netrun.tools.mcp.McpServers`), or None."""
        self.tools = build_tools(program)
        """The run's tools, built from the registry (with the program's stubs)."""
        self.usage = Usage()
        self.agent_usage: dict[str, Usage] = {}
        self.results: list[AgentResult] = []
        self._results_view: list[dict[str, Any]] = []
        self._results_text: list[str] = []
        """``results`` as the next agents read them, built once per result: the same strings on
        every later inference (their redaction is remembered, see :meth:`Secrets.redact`)."""
        """``results`` as templates see them, built once per result (not once per render)."""
        self.route: list[str] = []
        self.thread = thread
        """The conversation this run belongs to (its earlier messages are ``history``)."""
        self.depth = max(0, depth)
        """How many runs deep this run is (0: started from outside); stored with the run by
        its engine, so a resumed or replayed run decides the same as the first execution."""
        self.starts = 0
        """Calls of network and event tools so far (``limits.runs``): counted as each turn's
        calls are dispatched, in the model's order, so a replay counts the same."""
        self.history: list[dict[str, Any]] = []
        self.turns: dict[str, int] = {}
        """Inference calls per caller so far (scripted replies are indexed by it)."""

    def emit(self, kind: str, replayed: bool = False, **data: Any) -> None:
        """Report progress; ``replayed`` marks what a resumed run re-reads from its journal."""
        if self._emit is not None:
            # Outcomes are redacted where they are made; this catches what an event quotes besides.
            self._emit(kind, self.secrets.redact_value({"run_id": self.steps.run_id, "replayed": replayed, **data}))

    # -- the loop ----------------------------------------------------------------------
    async def run(self) -> RunResult:
        try:
            return await self._loop()
        except RunError as exc:  # its message may quote a store's or a model's error text
            raise RunError(self.secrets.redact(str(exc))) from None

    async def _loop(self) -> RunResult:
        if self.thread is not None:
            await self._open_thread(self.thread)
        n = 0
        stop = "router"
        while True:
            limit = self._limit_reached(n)
            if limit:
                stop = limit
                break
            decision = await self._route(n)
            self.emit("routed", self.steps.replaying(f"turn.{n}.{decision.agent}.infer"), iteration=n, agent=decision.agent, how=decision.how)
            if decision.agent is None:
                stop = "router"
                break
            agent_limit = self._agent_limit(decision.agent)
            if agent_limit:
                stop = agent_limit
                break
            await self._turn(n, decision.agent)
            n += 1
        output = next((r.text for r in reversed(self.results) if r.text), "")
        return RunResult(output, self.state, self.route, self.usage, stop, n, self.results, self.thread.id if self.thread else None)

    # -- the thread ----------------------------------------------------------------------
    async def _open_thread(self, thread: Thread) -> None:
        """Load the thread's earlier messages, then append this run's input: two steps, so a
        replay reads the same history and the input is stored once (its id is fixed)."""

        async def load() -> list[dict[str, Any]]:
            await thread.store.create(thread.id, thread.user)
            messages = list(thread.given) if thread.given is not None else await thread.store.get(thread.id)
            # Memoized as the step's output: keep only what some agent's window can show
            # (a long thread would otherwise make a large step, and Inngest caps them at 4 MB).
            windows = [self._window(name) for name in self.p.agents]
            if any(w is None for w in windows):
                return messages
            return messages[min(len(messages) - len(window(messages, w)) for w in windows):]

        self.history = await self._thread_step("thread.load", load) or []
        message = {"id": f"{self.steps.run_id}:input", "role": "user", "content": self.input, "run_id": self.steps.run_id}
        await self._thread_step("thread.input", lambda: thread.store.append(thread.id, [message]))

    async def _thread_step(self, step_id: str, fn: Callable[[], Any]) -> Any:
        """A store call as a step: retried when the store says a retry may help (both
        backends honour ``HistoryError.retriable``); a failure for good fails the run."""

        async def clean() -> Any:
            try:
                return self.secrets.redact_value(await fn())
            except Exception as exc:  # the step records its text: a store's error may quote its URL
                raise self.secrets.scrub(exc) from None

        try:
            return await self.steps.run(step_id, clean)
        except StepFailed as exc:
            raise RunError(f"thread {self.thread.id if self.thread else '?'}: {exc.message}") from None

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
        return scopes.variables(scopes.RULE_IF, {
            "input": self.input,
            "state": dict(self.state),
            "event": self.event,
            "network": {"name": self.p.spec.name, "description": self.p.spec.description},
            "results": list(self._results_view),
            "call_count": len(self.route),
            "last_agent": last.agent if last else None,
            "last_output": last.text if last else None,
        })

    async def _route(self, n: int) -> Decision:
        router = self.p.spec.router
        variables = self.variables()
        if router is not None and router.rules:
            try:
                found = rule_decision(router.rules, variables, self.p.renderer)
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
            step_id = f"route.{n}" + (f".{counter[0]}" if counter[0] else "")
            counter[0] += 1
            assert self.p.router_model is not None
            return await self._infer(step_id, self.p.router_model, request)

        try:
            decision, made = await llm_decision(
                renderer=self.p.renderer, call=call, turn=self.turns.get("router", 0),
                system=system, user=self.input, agents=agents, variables=variables,
            )
        except RenderError as exc:
            raise RunError(f"router: {exc}") from None
        self.turns["router"] = self.turns.get("router", 0) + len(made)
        for c in made:
            self.usage.add(c)
        return decision

    async def _infer(self, step_id: str, model: Any, request: Request | None) -> Completion:
        """One inference as a step; ``request`` is None only when the step is replayed."""
        replay = self.steps.replaying(step_id)

        async def call() -> dict[str, Any]:
            if request is None:
                raise StepFailed(step_id, "internal error: an inference to run has no request")
            streaming = self.stream() if callable(self.stream) else self.stream
            # A secret may be split across two deltas: the stream redactor holds back a tail.
            # What it passes on is clean already: straight out (a delta is made per token).
            sink, run_id = self._emit, self.steps.run_id
            deltas = None if replay or sink is None or not streaming else self.secrets.stream(
                lambda t: sink("text.delta", {"run_id": run_id, "replayed": False, "caller": request.caller, "text": t}))
            # What the model is sent is redacted too (a thread's history, an MCP server's tool
            # descriptions): the request body leaves the machine.
            clean = dataclasses.replace(request, messages=self.secrets.redact_value(request.messages),
                                        tools=self.secrets.redact_value(request.tools))
            try:
                completion = (await model.complete(clean, None if deltas is None else deltas.write)).to_json()
            except ModelError as exc:
                self.secrets.scrub(exc)  # a provider's error may quote the key or the URL
                if exc.retriable:
                    raise
                raise StepFailed(step_id, str(exc)) from None
            except Exception as exc:  # recorded as the step's error text: redacted first
                raise self.secrets.scrub(exc) from None
            finally:
                if deltas is not None:
                    deltas.flush()
            return self.secrets.redact_value(completion)  # type: ignore[no-any-return]

        try:
            data = await self.steps.run(step_id, call)
        except StepFailed as exc:
            raise RunError(exc.message) from None
        except ModelError as exc:
            raise RunError(str(exc)) from None
        return Completion.from_json(data)

    # -- one agent turn ----------------------------------------------------------------
    async def _offered(self, name: str, with_mcp: bool = True) -> dict[str, Tool]:
        """The tools an agent offers, by the function name the model sees. MCP tools only
        ``with_mcp``: listing them connects servers."""
        return await self.tools.offered(self.p.agents[name], self.mcp if with_mcp else None)

    def _schema(self, name: str, tool: Tool) -> dict[str, Any]:
        return {"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}}

    def _window(self, agent: str) -> Window | None:
        """How much of the thread ``agent`` sees: its own window, else the network's."""
        spec = self.p.spec
        return self.p.agents[agent].spec.history or (spec.history.window if spec.history else None)

    def _messages(self, system: str, agent: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        if self.history:
            messages += [{"role": m["role"], "content": m["content"]} for m in window(self.history, self._window(agent))]
        messages.append({"role": "user", "content": self.input})
        messages += [{"role": "assistant", "content": text} for text in self._results_text]
        return messages

    async def _turn(self, n: int, name: str) -> None:
        agent = self.p.agents[name]
        self.route.append(name)
        prefix = f"turn.{n}.{name}"
        replayed = self.steps.replaying(f"{prefix}.infer")
        self.emit("agent.started", replayed, iteration=n, agent=name)
        offered = await self._offered(name, with_mcp=not replayed)
        schemas = {k: self._schema(k, v) for k, v in offered.items()}
        tools = list(schemas.values())
        choice = agent.spec.tool_choice
        tool_choice: Any = None
        if choice in ("auto", "required", "none"):
            tool_choice = choice
        elif choice:
            tool_choice = {"type": "function", "function": {"name": choice}}
        turn = self.turns.get(name, 0)
        self.turns[name] = turn + 1
        turn_time = agent.spec.limits.time if agent.spec.limits else None
        request = None  # a replayed inference needs no prompt: rendering it would cost every replay
        if not replayed:
            try:
                variables = scopes.variables(scopes.AGENT_SYSTEM, self.variables() | {"agent": {"name": name, "description": agent.spec.description}})
                system = self.p.renderer.render(agent.spec.system, variables)
            except RenderError as exc:
                raise RunError(f"agent {name}: system prompt: {exc}") from None
            request = Request(name, turn, self._messages(system, name), tools, tool_choice if tools else None,
                              timeout=parse_duration(turn_time).total_seconds() if turn_time else None)
        completion = await self._infer(f"{prefix}.infer", agent.model, request)
        self.usage.add(completion)
        self.agent_usage.setdefault(name, Usage()).add(completion)
        if replayed and agent.mcp_refs and any(
            not self.steps.replaying(f"{prefix}.tool.{i}.{c.name}") for i, c in enumerate(completion.tool_calls)
        ):
            offered = await self._offered(name)  # a tool call to run again may need an MCP server
            schemas = {k: self._schema(k, v) for k, v in offered.items()}
        result = AgentResult(name, completion.text)
        limit = agent.spec.limits.tool_calls if agent.spec.limits and agent.spec.limits.tool_calls else None
        calls = completion.tool_calls
        # Each call that may start a run takes the next number (limits.runs) before any runs:
        # parallel calls (and their approvals) finish in any order, a replay numbers the same.
        starts: list[int | None] = []
        for i, c in enumerate(calls):
            starting = starts_runs(offered.get(c.name)) and not (limit is not None and i >= limit)
            starts.append(self.starts if starting else None)
            self.starts += int(starting)
        outcomes = await self.steps.parallel([
            functools.partial(self._tool, f"{prefix}.tool.{i}.{c.name}", c.name, c.arguments, offered, schemas,
                              refused=limit is not None and i >= limit, start=starts[i])
            for i, c in enumerate(calls)
        ]) if calls else []
        sources = [f"{prefix}.infer"]
        for c, (args, outcome, source) in zip(calls, outcomes, strict=True):
            self.state.update(outcome.state_patch)
            result.tool_calls.append(ToolRecord(c.id, c.name, args, outcome.result, outcome.error))
            sources.append(source)
        self.results.append(result)
        self._results_view.append(asdict(result))
        self._results_text.append(_result_text(result))
        if self.thread is not None:
            thread = self.thread
            reply = {"id": f"{self.steps.run_id}:{prefix}", "role": "assistant", "agent": name, "content": self._results_text[-1],
                     "run_id": self.steps.run_id}
            await self._thread_step(f"{prefix}.thread", lambda: thread.store.append(thread.id, [reply]))
        seen = not any(self.steps.fresh(step) for step in sources)
        self.emit("agent.finished", seen, iteration=n, agent=name, text=completion.text)

    async def _tool(
        self, step_id: str, name: str, arguments: str, offered: dict[str, Tool], schemas: dict[str, dict[str, Any]], refused: bool,
        start: int | None = None,
    ) -> tuple[Any, ToolOutcome, str]:
        """Run one tool call; returns the arguments (as shown), the outcome, and the id of the
        step the outcome comes from (the turn's inference for an outcome no step produced)."""
        args, problem = parse_arguments(arguments)
        shown = args if args is not None else arguments
        replayed = self.steps.replaying(step_id)
        self.emit("tool.called", replayed, step=step_id, tool=name, args=shown)
        tool = offered.get(name)
        source = step_id
        if tool is None and replayed:
            # Recorded in the journal: its outcome stands, even though the tool itself (an
            # MCP server's, not connected on a replayed turn) is not at hand now.
            outcome = await run_tool(None, args or {}, self._context(step_id))
        elif refused:
            outcome, source = ToolOutcome.failure("refused: this agent's tool_calls limit for one turn is reached"), _infer_step(step_id)
        elif tool is None:
            outcome, source = ToolOutcome.failure(f"unknown tool '{name}'; offered: {', '.join(offered) or 'none'}"), _infer_step(step_id)
        elif problem is not None or args is None:
            outcome, source = ToolOutcome.failure(problem or "invalid arguments"), _infer_step(step_id)
        else:
            schema = schemas[name]["function"]["parameters"]  # as the model was shown it
            problems = check_args(args, schema)
            bad = "; ".join(problems) if problems else None
            if bad is not None:
                outcome, source = ToolOutcome.failure(bad), _infer_step(step_id)
            else:
                # Every kind the same way (an approval, a wait, a child run are the tool's own
                # steps); an outcome from another step than the call's says which.
                outcome = await run_tool(tool, args, self._context(step_id, start))
                source = outcome.step or step_id
        # The time the call ran in its step counts toward limits.time (as recorded: a replay counts the same).
        self.usage.seconds += outcome.seconds
        # Outcomes no step made (or that a step of an older version recorded) are cleaned here.
        outcome = ToolOutcome(**self.secrets.redact_value(dataclasses.asdict(outcome)))
        # Reported by the first execution to see the outcome (on Inngest, the call after the
        # one that ran the step: that call ended when the step did).
        self.emit("tool.result", not self.steps.fresh(source), step=step_id, tool=name, result=outcome.result, error=outcome.error)
        return shown, outcome, source

    def _context(self, step_id: str, start: int | None = None) -> ToolContext:
        """The one context every tool is called with (``start``: the call's number under
        ``limits.runs``, for the tools that start runs)."""
        spec = self.p.spec
        return ToolContext(self.steps.run_id, step_id, self.input, dict(self.state), self.event, self.environ, self.p.base_dir,
                           steps=self.steps, secrets=self.secrets, renderer=self.p.renderer, emit=self.emit, network=spec.name,
                           limits=spec.limits, depth=self.depth, start=start)


def _infer_step(tool_step: str) -> str:
    """``turn.3.a.tool.0.x`` -> ``turn.3.a.infer``: the inference that asked for the call."""
    return tool_step.split(".tool.", 1)[0] + ".infer"


def _result_text(r: AgentResult) -> str:
    """An agent's turn as the next agents (and later runs of the thread) read it."""
    lines = [f"[{r.agent}] {r.text}" if r.text else f"[{r.agent}]"]
    for t in r.tool_calls:
        outcome = f"error: {t.error}" if t.error else json.dumps(t.result, default=str)[:2000]
        lines.append(f"called {t.name}({json.dumps(t.args, default=str)}) -> {outcome}")
    return "\n".join(lines)
