"""The YAML's concurrency limits, held by the local engine as Inngest holds them.

``function.concurrency`` is a limit, or up to two limits with a ``key`` (an expression over
the trigger event: one queue per tenant) and a ``scope``: ``fn`` counts the runs of this
network, ``env``/``account`` count every network's runs that share the key's value. A run
takes a slot of each of its limits while it executes and gives them back when it ends or
suspends (a run waiting for a human holds nothing, as on Inngest). Runs over a limit queue
in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..runtime.render import RenderError, evaluate

Slot = tuple[str, ...]


def slots(network: str, definition: Mapping[str, Any], event: Mapping[str, Any]) -> list[tuple[Slot, int]]:
    """The (slot, limit) pairs a run of ``network`` occupies, for its trigger ``event``."""
    function = definition.get("function") or {}
    limits = function.get("concurrency")
    if limits is None:
        return []
    if isinstance(limits, int):
        limits = [{"limit": limits}]
    found = []
    for i, limit in enumerate(limits):
        key = limit.get("key")
        value = ""
        if key:
            try:
                value = repr(evaluate(key, {"event": dict(event)}))
            except RenderError:
                value = "None"  # Inngest puts events whose key cannot be evaluated in one queue
        scope = limit.get("scope") or "fn"
        slot = (scope, key or "", value) if scope != "fn" else ("fn", network, str(i), value)
        found.append((slot, int(limit["limit"])))
    return found


class ConcurrencyGate:
    def __init__(self) -> None:
        self._used: dict[Slot, int] = {}
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, wanted: list[tuple[Slot, int]]) -> AsyncIterator[None]:
        """Take one slot of every limit in ``wanted`` at once (never some of them, so two
        runs cannot each hold half of what the other needs), for the duration."""
        if not wanted:
            yield
            return
        async with self._changed:
            await self._changed.wait_for(lambda: all(self._used.get(s, 0) < limit for s, limit in wanted))
            for s, _ in wanted:
                self._used[s] = self._used.get(s, 0) + 1
        try:
            yield
        finally:
            async with self._changed:
                for s, _ in wanted:
                    self._used[s] -= 1
                    if not self._used[s]:
                        del self._used[s]
                self._changed.notify_all()

    def in_use(self) -> dict[Slot, int]:
        return dict(self._used)
