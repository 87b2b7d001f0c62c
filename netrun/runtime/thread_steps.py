"""A run's thread as steps: load its earlier messages, append the input and each reply
(a turn's assistant message and its tool messages, in one append).

Each store call is a step under a fixed id (:mod:`netrun.runtime.step_ids`), so a replay
reads the same history and nothing is appended twice; what a store returns or raises is
redacted inside the step, before the journal records it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..history.store import window
from ..history.thread import Thread
from ..spec.history import Window
from . import step_ids
from .results import RunError
from .steps import StepFailed

if TYPE_CHECKING:
    from ..compile import Program
    from .network import NetworkRun


def window_of(program: Program, agent: str) -> Window | None:
    """How much of the thread ``agent`` sees: its own window, else the network's."""
    spec = program.spec
    return program.agents[agent].spec.history or (spec.history.window if spec.history else None)


async def open_thread(run: NetworkRun, thread: Thread) -> None:
    """Load the thread's earlier messages, then append this run's input: two steps, so a
    replay reads the same history and the input is stored once (its id is fixed)."""

    async def load() -> list[dict[str, Any]]:
        await thread.store.create(thread.id, thread.user)
        messages = list(thread.given) if thread.given is not None else await thread.store.get(thread.id)
        # Memoized as the step's output: keep only what some agent's window can show
        # (a long thread would otherwise make a large step, and Inngest caps them at 4 MB).
        windows = [window_of(run.p, name) for name in run.p.agents]
        if any(w is None for w in windows):
            return messages
        return messages[min(len(messages) - len(window(messages, w)) for w in windows) :]

    run.history = await thread_step(run, step_ids.THREAD_LOAD, load) or []
    run.call_ids.update(
        str(c["id"]) for m in run.history for c in m.get("tool_calls") or () if isinstance(c, dict) and c.get("id")
    )
    run_id = run.steps.run_id
    message = {"id": step_ids.input_message(run_id), "role": "user", "content": run.input, "run_id": run_id}
    await thread_step(run, step_ids.THREAD_INPUT, lambda: thread.store.append(thread.id, [message]))


async def append_reply(run: NetworkRun, thread: Thread, turn: step_ids.Turn, said: list[dict[str, Any]]) -> None:
    """Append the reply of ``turn`` (as the next agents read it: its assistant message, then
    a tool message per call) to the thread, each with its id and the run's."""
    run_id = run.steps.run_id
    reply_id = step_ids.reply_message(run_id, turn)
    ids = [reply_id, *(step_ids.tool_message(reply_id, i) for i in range(len(said) - 1))]
    stored = [{"id": i, **m, "agent": turn.agent, "run_id": run_id} for i, m in zip(ids, said, strict=True)]
    await thread_step(run, turn.thread, lambda: thread.store.append(thread.id, stored))


async def thread_step(run: NetworkRun, step_id: str, fn: Callable[[], Any]) -> Any:
    """A store call as a step: retried when the store says a retry may help (both
    backends honour ``HistoryError.retriable``); a failure for good fails the run."""

    async def clean() -> Any:
        try:
            return run.secrets.redact_value(await fn())
        except Exception as exc:  # the step records its text: a store's error may quote its URL
            raise run.secrets.scrub(exc) from None

    try:
        return await run.steps.run(step_id, clean)
    except StepFailed as exc:
        raise RunError(f"thread {run.thread.id if run.thread else '?'}: {exc.message}") from None


__all__ = ["append_reply", "open_thread", "thread_step", "window_of"]
