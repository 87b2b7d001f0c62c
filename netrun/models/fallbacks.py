"""A model with fallbacks: each model is tried in order until one answers.

netrun does this itself rather than litellm, so that every model of the chain is called by
its own client (a direct OpenAI-compatible one, or litellm) and the error of a chain that
fails still says what happened (litellm's own fallbacks end in a bare ``Exception``).
As with litellm, any failure moves on to the next model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..runtime.model import Completion, ModelClient, ModelError, Request


class Fallbacks:
    def __init__(self, clients: Sequence[ModelClient]) -> None:
        self.clients = list(clients)

    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        failures: list[ModelError] = []
        for client in self.clients:
            try:
                return await client.complete(request, on_text)
            except ModelError as exc:
                failures.append(exc)
        # Retrying the chain may help if any of its models may come back.
        retriable = [f for f in failures if f.retriable]
        waits = [f.retry_after for f in retriable if f.retry_after is not None]
        raise ModelError(
            "; then ".join(str(f) for f in failures),
            retriable=bool(retriable),
            retry_after=min(waits) if waits else None,
        )
