"""The YAML's concurrency limits and singleton keys, held by the local engine as Inngest holds them.

``function.concurrency`` is a limit, or up to two limits with a ``key`` (an expression over
the trigger event: one queue per tenant) and a ``scope``: ``fn`` counts the steps of this
network's runs, ``env``/``account`` count the steps of every network's runs that share the
key's value. As on Inngest the limit is on steps executing at once (an inference, a tool
call), not on runs: a run takes a slot of each of its limits for each step and gives it back
when the step ends, so a run between steps, waiting for a human or sleeping holds nothing.
Steps over a limit queue in arrival order (a run's next step queues behind the steps that
were waiting before it); a run whose first step waits shows as ``queued``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..runtime.render import RenderError, evaluate
from ..spec import scopes

Slot = tuple[str, ...]


def slots(network: str, definition: Mapping[str, Any], event: Mapping[str, Any]) -> list[tuple[Slot, int]]:
    """The (slot, limit) pairs a run of ``network`` occupies, for its trigger ``event``."""
    function = definition.get("function") or {}
    limits = function.get("concurrency")
    if limits is None:
        return []
    if isinstance(limits, int):
        limits = [{"limit": limits}]
    found: list[tuple[Slot, int]] = []
    for i, limit in enumerate(limits):
        key = limit.get("key")
        value = key_value(key, event)  # Inngest puts events whose key cannot be evaluated in one queue
        scope = limit.get("scope") or "fn"
        slot = (scope, key or "", value) if scope != "fn" else ("fn", network, str(i), value)
        found.append((slot, int(limit["limit"])))
    return found


class ConcurrencyGate:
    def __init__(self) -> None:
        self._used: dict[Slot, int] = {}
        self._waiting: list[tuple[list[tuple[Slot, int]], asyncio.Future[None]]] = []

    @property
    def queued(self) -> int:
        """Steps waiting for a slot now (read by the server's metrics)."""
        return len(self._waiting)

    def _free(self, wanted: list[tuple[Slot, int]]) -> bool:
        return all(self._used.get(s, 0) < limit for s, limit in wanted)

    def _take(self, wanted: list[tuple[Slot, int]]) -> None:
        for s, _ in wanted:
            self._used[s] = self._used.get(s, 0) + 1

    def _queued_ahead(self, wanted: list[tuple[Slot, int]]) -> bool:
        """Whether a step that queued earlier waits for one of these slots (it goes first)."""
        slots_ = {s for s, _ in wanted}
        return any(slots_.intersection(s for s, _ in other) for other, _ in self._waiting)

    @contextlib.asynccontextmanager
    async def hold(self, wanted: list[tuple[Slot, int]]) -> AsyncIterator[None]:
        """Take one slot of every limit in ``wanted`` at once (never some of them, so two
        steps cannot each hold half of what the other needs), for the duration."""
        if not wanted:
            yield
            return
        if self._free(wanted) and not self._queued_ahead(wanted):
            self._take(wanted)
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (wanted, granted)
            self._waiting.append(entry)
            try:
                await granted
            except BaseException:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                elif granted.done() and not granted.cancelled():  # granted as it was cancelled: give it back
                    self._give_back(wanted)
                raise
        try:
            yield
        finally:
            self._give_back(wanted)

    def _give_back(self, wanted: list[tuple[Slot, int]]) -> None:
        for s, _ in wanted:
            self._used[s] -= 1
            if not self._used[s]:
                del self._used[s]
        # Grant in arrival order; a waiter that cannot go yet keeps its place, and holds back
        # the later ones that want one of its slots.
        blocked: set[Slot] = set()
        for entry in list(self._waiting):
            want, granted = entry
            names = {s for s, _ in want}
            if not names & blocked and self._free(want):
                self._waiting.remove(entry)
                self._take(want)
                granted.set_result(None)
            else:
                blocked |= names


def key_value(key: str | None, event: Mapping[str, Any]) -> str:
    """The value a flow-control ``key`` (of a concurrency limit, of ``singleton``) gives a
    run started by ``event``: runs with the same value share a queue or a singleton slot;
    ``""`` without a key. Events whose key cannot be evaluated share the value ``None``."""
    if not key:
        return ""
    try:
        return repr(evaluate(key, scopes.variables(scopes.FUNCTION_KEY, {"event": dict(event)})))
    except RenderError:
        return "None"
