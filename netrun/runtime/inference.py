"""One model call as a step: the messages an agent is sent, the call, what is recorded.

Everything that leaves the machine or reaches the journal is redacted against the run's
secrets: the request (a thread's history, an MCP server's tool descriptions), the streamed
text, the completion and a provider's error text. A replayed inference reads its recorded
completion: it renders no prompt and streams nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from .. import observe
from ..history.store import openai_message, paired, window
from . import events
from .model import Completion, ModelError, Request
from .results import RunError
from .steps import StepFailed
from .thread_steps import window_of

if TYPE_CHECKING:
    from .network import NetworkRun


def messages(run: NetworkRun, system: str, agent: str) -> list[dict[str, Any]]:
    """What ``agent`` is sent, in OpenAI's chat format: its system prompt, the thread as its
    window shows it, the run's input and the turns of this run so far (each an assistant
    message with its tool calls, then their ``tool`` messages)."""
    sent: list[dict[str, Any]] = [{"role": "system", "content": run.secrets.redact(system)}]
    if run.history:
        shown = run.history_shown.get(agent)
        if shown is None:  # the thread does not change during the run: once per agent, redacted once
            window_ = window(run.history, window_of(run.p, agent))
            shown = run.history_shown[agent] = run.secrets.redact_value(paired([openai_message(m) for m in window_]))
        sent += shown
    sent.append({"role": "user", "content": run.secrets.redact(run.input)})
    sent += run.results_messages  # each redacted once, as its turn ended
    return sent


async def infer(run: NetworkRun, step_id: str, model: Any, request: Request | None, *, clean: bool = False) -> Completion:
    """One inference as a step; ``request`` is None only when the step is replayed.
    ``clean``: the request's messages and tools are redacted already (:func:`messages` makes
    the messages so, piece by piece as the run goes: redacting the whole history on every
    call would cost each call more than the one before; :func:`.turn.shown` the tools, once
    per run)."""
    replay = run.steps.replaying(step_id)
    secrets = run.secrets

    async def call() -> dict[str, Any]:
        if request is None:
            raise StepFailed(step_id, "internal error: an inference to run has no request")
        streaming = run.stream() if callable(run.stream) else run.stream
        # A secret may be split across two deltas: the stream redactor holds back a tail.
        # What it passes on is clean already: straight out (a delta is made per token).
        sink, run_id = run.sink, run.steps.run_id
        deltas = (
            None
            if replay or sink is None or not streaming
            else secrets.stream(
                lambda t: sink(events.TEXT_DELTA, {"run_id": run_id, "replayed": False, "caller": request.caller, "text": t})
            )
        )
        # What the model is sent is redacted too (a thread's history, an MCP server's tool
        # descriptions): the request body leaves the machine.
        sent = (
            request
            if clean
            else dataclasses.replace(
                request, messages=secrets.redact_value(request.messages), tools=secrets.redact_value(request.tools)
            )
        )
        watched = _chat_attributes(run, step_id, model, sent) if observe.observed() else None
        with observe.span("chat", request.caller, watched) as marked:
            try:
                completion = (await model.complete(sent, None if deltas is None else deltas.write)).to_json()
            except ModelError as exc:
                secrets.scrub(exc)  # a provider's error may quote the key or the URL
                if marked:
                    marked.fail(str(exc))
                if exc.retriable:
                    raise
                raise StepFailed(step_id, str(exc)) from None
            except Exception as exc:  # recorded as the step's error text: redacted first
                scrubbed = secrets.scrub(exc)
                if marked:
                    marked.fail(str(scrubbed) or type(scrubbed).__name__)
                raise scrubbed from None
            finally:
                if deltas is not None:
                    deltas.flush()
            completion = secrets.redact_value(completion)
            if marked:
                marked.set(completion=completion)
        return completion  # type: ignore[no-any-return]

    try:
        data = await run.steps.run(step_id, call)
    except StepFailed as exc:
        raise RunError(exc.message) from None
    except ModelError as exc:
        raise RunError(str(exc)) from None
    done = Completion.from_json(data)
    if not done.cost and done.prompt_tokens + done.completion_tokens and _limits_cost(run):
        _unpriced(done.model or step_id)
    return done


_UNPRICED: set[str] = set()
"""The models this process warned of: once each, not once per call."""


def _limits_cost(run: NetworkRun) -> bool:
    """Whether the network, or any of its agents, limits what its calls cost."""
    spec = run.p.spec
    return bool(spec.limits and spec.limits.cost) or any(a.limits is not None and a.limits.cost for a in spec.agents.values())


def _unpriced(model: str) -> None:
    """A cost limit that counts nothing is a limit that never stops a run: say so, once."""
    if model in _UNPRICED:
        return
    _UNPRICED.add(model)
    logging.getLogger("netrun.cost").warning(
        "model %s has no known price: its calls add $0 to this network's cost limits. Declare what it costs on the "
        "model (price: {input: 0.15, output: 0.60}, dollars per million tokens), or install netrun-agents[models] "
        "for litellm's price table of hosted models",
        model,
    )


def _chat_attributes(run: NetworkRun, step_id: str, model: Any, request: Request) -> dict[str, Any]:
    """What a ``chat`` span starts with: the run, the step, the model asked for and the request
    as sent (redacted; an observer records its messages only when told to)."""
    spec = getattr(model, "spec", None)
    return {
        "run_id": run.steps.run_id,
        "network": run.p.spec.name,
        "step": step_id,
        "agent": request.caller,
        "model": getattr(spec, "id", None) or type(model).__name__,
        "params": dict(getattr(spec, "params", None) or {}),  # temperature, max_tokens ... as declared
        "request": request,
    }


__all__ = ["infer", "messages"]
