"""One agent turn: an inference, then the tool calls it asked for, side by side.

Each call is a step under the turn's ids (:class:`netrun.runtime.step_ids.Turn`) and every
kind of tool is run the same way (:func:`netrun.runtime.tooling.run_tool`); a call the
runtime refuses (over the turn's ``tool_calls`` limit, an unknown tool, arguments that do
not fit the schema) is an outcome for the model, attributed to the turn's inference.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .. import observe
from ..history.store import openai_message
from ..spec import scopes
from ..spec.base import parse_duration
from . import events, saving, step_ids
from .args import check_args, parse_arguments
from .inference import infer, messages
from .model import Request, ToolRequest
from .render import RenderError
from .results import AgentResult, RunError, ToolRecord, Usage, sent_arguments, turn_messages
from .thread_steps import append_reply
from .tooling import Tool, ToolContext, ToolOutcome, run_tool, starts_runs

if TYPE_CHECKING:
    from .network import NetworkRun


async def offered(run: NetworkRun, name: str, with_mcp: bool = True) -> dict[str, Tool]:
    """The tools an agent offers, by the function name the model sees. MCP tools only
    ``with_mcp``: listing them connects servers."""
    return await run.tools.offered(run.p.agents[name], run.mcp if with_mcp else None)


def tool_schema(tool: Tool) -> dict[str, Any]:
    """A tool as the model is shown it."""
    return {"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}}


def shown(run: NetworkRun, tools: dict[str, Tool]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The schemas of ``tools`` by name, and the list the model is sent (redacted: an MCP
    server's description may quote a secret). Made once per run for each set of tool objects
    (an agent offers the same ones every turn, unless an MCP server's list changed): the
    run's tools live as long as it does, so their ids name them."""
    key = tuple(id(t) for t in tools.values())
    held = run.tools_shown.get(key)
    if held is None:
        schemas = {k: tool_schema(v) for k, v in tools.items()}
        held = run.tools_shown[key] = (tuple(tools.values()), schemas, run.secrets.redact_value(list(schemas.values())))
    return held[1], held[2]


async def run_turn(run: NetworkRun, n: int, name: str) -> None:
    """Turn ``n``, taken by the agent ``name``: its result is appended to ``run.results``.
    Observed as an ``agent`` span when its inference is made now (a replayed turn was
    observed when it ran; a tool call it runs again is observed on its own)."""
    if not observe.observed() or run.steps.replaying(step_ids.Turn(n, name).infer):
        return await _turn(run, n, name)
    attributes = {"run_id": run.steps.run_id, "network": run.p.spec.name, "agent": name, "iteration": n}
    with observe.span("agent", name, attributes | {"description": run.p.agents[name].spec.description}) as marked:
        try:
            await _turn(run, n, name)
        except RunError as exc:
            if marked:
                marked.fail(str(exc))
            raise


async def _turn(run: NetworkRun, n: int, name: str) -> None:
    agent = run.p.agents[name]
    run.route.append(name)
    turn = step_ids.Turn(n, name)
    replayed = run.steps.replaying(turn.infer)
    run.emit(events.AGENT_STARTED, replayed, iteration=n, agent=name)
    tools_offered = await offered(run, name, with_mcp=not replayed)
    schemas, tools = shown(run, tools_offered)
    choice = agent.spec.tool_choice
    tool_choice: Any = None
    if choice in ("auto", "required", "none"):
        tool_choice = choice
    elif choice:
        tool_choice = {"type": "function", "function": {"name": choice}}
    count = run.turns.get(name, 0)
    run.turns[name] = count + 1
    turn_time = agent.spec.limits.time if agent.spec.limits else None
    request = None  # a replayed inference needs no prompt: rendering it would cost every replay
    if not replayed:
        try:
            variables = scopes.variables(
                scopes.AGENT_SYSTEM, run.variables() | {"agent": {"name": name, "description": agent.spec.description}}
            )
            system = run.renderer.render(agent.spec.system, variables)
        except RenderError as exc:
            raise RunError(f"agent {name}: system prompt: {exc}") from None
        request = Request(
            name,
            count,
            messages(run, system, name),
            tools,
            tool_choice if tools else None,
            timeout=parse_duration(turn_time).total_seconds() if turn_time else None,
        )
    completion = await infer(run, turn.infer, agent.model, request, clean=True)
    run.usage.add(completion)
    run.agent_usage.setdefault(name, Usage()).add(completion)
    if (
        replayed
        and agent.mcp_refs
        and any(not run.steps.replaying(turn.tool(i, c.name)) for i, c in enumerate(completion.tool_calls))
    ):
        tools_offered = await offered(run, name)  # a tool call to run again may need an MCP server
        schemas, _ = shown(run, tools_offered)
    result = AgentResult(name, completion.text)
    limit = agent.spec.limits.tool_calls if agent.spec.limits and agent.spec.limits.tool_calls else None
    calls = completion.tool_calls
    # Each call that may start a run takes the next number (limits.runs) before any runs:
    # parallel calls (and their approvals) finish in any order, a replay numbers the same.
    starts: list[int | None] = []
    for i, c in enumerate(calls):
        starting = starts_runs(tools_offered.get(c.name)) and not (limit is not None and i >= limit)
        starts.append(run.starts if starting else None)
        run.starts += int(starting)
    outcomes = (
        await run.steps.parallel(
            [
                functools.partial(
                    call_tool,
                    run,
                    turn.tool(i, c.name),
                    c.name,
                    c.arguments,
                    tools_offered,
                    schemas,
                    refused=limit is not None and i >= limit,
                    start=starts[i],
                    call_id=c.id,
                )
                for i, c in enumerate(calls)
            ]
        )
        if calls
        else []
    )
    sources = [turn.infer]
    sent: list[str] = []
    # Results reported once saved (below): by the first execution past all the turn's calls,
    # the one that sees any of their outcomes first (on Inngest, the request after the last).
    saved_seen = not any(run.steps.fresh(source) for _, _, source in outcomes)
    for i, (c, call_id, (args, outcome, source)) in enumerate(zip(calls, call_ids(run, n, calls), outcomes, strict=True)):
        # In the model's order, each on the state the previous call left (none is lost), from
        # recorded outputs only, outside any step (durability rule 2): a replay writes the same.
        writes = _writes(run, c.name, tools_offered)
        outcome = saving.save_outcome(
            run.state, writes, outcome, _call_values(run, args), run.p.spec.state, run.renderer, run.secrets.redact_value
        )
        if writes:  # reported once saved: a state tool's result is what it wrote
            step = turn.tool(i, c.name)
            run.emit(
                events.TOOL_RESULT,
                saved_seen,
                step=step,
                tool=c.name,
                result=outcome.result,
                error=outcome.error,
                state=dict(run.state),
            )
        result.tool_calls.append(ToolRecord(call_id, c.name, args, outcome.result, outcome.error))
        sent.append(sent_arguments(c.arguments))
        sources.append(source)
    run.results.append(result)
    run.results_view.append(result.to_json())
    failed = next(((c.name, o.fail_run) for c, (_, o, _) in zip(calls, outcomes, strict=True) if o.fail_run), None)
    if failed is not None:  # a tool said the run cannot go on (netrun.FailRun): journaled, so a replay fails the same
        raise RunError(f"tool {failed[0]} failed the run: {failed[1]}")
    said = turn_messages(result, sent)
    run.results_messages += [run.secrets.redact_value(openai_message(m)) for m in said]  # once: messages() relies on it
    if run.thread is not None:
        await append_reply(run, run.thread, turn, said)
    seen = not any(run.steps.fresh(step) for step in sources)
    usage = {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
    run.emit(events.AGENT_FINISHED, seen, iteration=n, agent=name, text=completion.text, usage=usage)


def call_ids(run: NetworkRun, n: int, calls: list[ToolRequest]) -> list[str]:
    """The id each call of turn ``n`` has in the conversation: the model's, unless it gave
    none or one the conversation holds already (a server that numbers the calls of each
    reply, ``call_0``, ...): a tool message must answer one call only. Made from what is
    journaled, in order, so a replay names them the same."""
    ids = []
    for i, c in enumerate(calls):
        call_id = c.id
        if not call_id or call_id in run.call_ids:
            call_id = f"call_{n}_{i}"
            while call_id in run.call_ids:
                call_id += "_"
        run.call_ids.add(call_id)
        ids.append(call_id)
    return ids


async def call_tool(
    run: NetworkRun,
    step_id: str,
    name: str,
    arguments: str,
    offered: dict[str, Tool],
    schemas: dict[str, dict[str, Any]],
    refused: bool,
    start: int | None = None,
    call_id: str = "",
) -> tuple[Any, ToolOutcome, str]:
    """Run one tool call; returns the arguments (as shown), the outcome, and the id of the
    step the outcome comes from (the turn's inference for an outcome no step produced)."""
    args, problem = parse_arguments(arguments)
    shown = args if args is not None else arguments
    replayed = run.steps.replaying(step_id)
    run.emit(events.TOOL_CALLED, replayed, step=step_id, tool=name, args=shown)
    tool = offered.get(name)
    source = step_id
    if tool is None and replayed:
        # Recorded in the journal: its outcome stands, even though the tool itself (an
        # MCP server's, not connected on a replayed turn) is not at hand now.
        outcome = await run_tool(None, args or {}, context(run, step_id))
    elif refused:
        outcome, source = (
            ToolOutcome.failure("refused: this agent's tool_calls limit for one turn is reached"),
            step_ids.inference_of(step_id),
        )
    elif tool is None:
        outcome, source = (
            ToolOutcome.failure(f"unknown tool '{name}'; offered: {', '.join(offered) or 'none'}"),
            step_ids.inference_of(step_id),
        )
    elif problem is not None or args is None:
        outcome, source = ToolOutcome.failure(problem or "invalid arguments"), step_ids.inference_of(step_id)
    else:
        schema = schemas[name]["function"]["parameters"]  # as the model was shown it
        problems = check_args(args, schema)
        bad = "; ".join(problems) if problems else None
        if bad is not None:
            outcome, source = ToolOutcome.failure(bad), step_ids.inference_of(step_id)
        else:
            # Every kind the same way (an approval, a wait, a child run are the tool's own
            # steps); an outcome from another step than the call's says which.
            outcome = await run_tool(tool, args, context(run, step_id, start, call_id))
            source = outcome.step or step_id
    # The time the call ran in its step counts toward limits.time (as recorded: a replay counts the same).
    run.usage.seconds += outcome.seconds
    # Outcomes no step made (or that a step of an older version recorded) are cleaned here.
    outcome = outcome.redacted(run.secrets)
    if _writes(run, name, offered):
        return shown, outcome, source  # its result is reported once the turn has saved it
    # Reported by the first execution to see the outcome (on Inngest, the call after the
    # one that ran the step: that call ended when the step did).
    run.emit(
        events.TOOL_RESULT,
        not run.steps.fresh(source),
        step=step_id,
        tool=name,
        result=outcome.result,
        error=outcome.error,
        state=None,
    )
    return shown, outcome, source


def _writes(run: NetworkRun, name: str, offered: dict[str, Tool]) -> tuple[saving.Writes, ...]:
    """What a call of ``name`` writes into the state: a declared tool's ``state:``/``save:``, or
    an MCP tool's (its server's ``save:``; not a declared tool's whose name it took)."""
    declared = run.tools.declared.get(name)
    if declared is not None and offered.get(name) is declared:
        return run.tools.writes.get(name, ())
    return saving.mcp_writes(run.p.spec.mcp_servers, name) if run.p.spec.mcp_servers else ()  # an MCP tool's save:


def _call_values(run: NetworkRun, args: Any) -> dict[str, Any]:
    """A call's variables at the tool places, but ``state`` and ``result`` (the saving adds them)."""
    return {
        "args": dict(args) if isinstance(args, dict) else {},
        "input": run.input,
        "event": dict(run.event),
        "run": {"id": run.steps.run_id},
    }


def context(run: NetworkRun, step_id: str, start: int | None = None, call_id: str = "") -> ToolContext:
    """The one context every tool is called with (``start``: the call's number under
    ``limits.runs``, for the tools that start runs; ``call_id``: the model's id of the call)."""
    spec = run.p.spec
    return ToolContext(
        run.steps.run_id,
        step_id,
        run.input,
        dict(run.state),
        run.event,
        run.environ,
        run.p.base_dir,
        steps=run.steps,
        secrets=run.secrets,
        renderer=run.renderer,
        emit=run.emit,
        network=spec.name,
        limits=spec.limits,
        depth=run.depth,
        start=start,
        data_dir=run.data_dir,
        call_id=call_id,
    )


__all__ = ["call_ids", "call_tool", "context", "offered", "run_turn", "tool_schema"]
