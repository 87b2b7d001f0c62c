"""Real models through litellm (imported on first use: it takes seconds to import)."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ..extras import missing_extra
from ..runtime.model import Completion, ModelError, Request, ToolRequest
from ..spec.model import ModelSpec
from . import prices
from .errors import model_error
from .settings import call_timeout, resolved

_litellm: Any = None
_PRICED: dict[str, bool] = {}
"""Model ids litellm has no price for: looking one up fails slowly, so it is asked once."""


def _lib() -> Any:
    global _litellm
    if _litellm is None:
        # Without this, importing litellm fetches a price list from the internet.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        # litellm's own pydantic models warn on every streamed chunk; the warnings are about
        # litellm, not about the user's network, and would drown the run's output.
        warnings.filterwarnings("ignore", message=".*ChatCompletionReasoningItem.*", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"litellm(\.|$)")
        try:
            from pydantic.warnings import PydanticDeprecatedSince211

            warnings.filterwarnings("ignore", category=PydanticDeprecatedSince211)
        except ImportError:  # pragma: no cover - older pydantic
            pass
        try:
            import litellm
        except ModuleNotFoundError as exc:  # the `models` extra is not installed: say which
            raise missing_extra(exc, "a model that is not OpenAI-compatible") or exc from None

        litellm.suppress_debug_info = True
        # Tool-call history sent to an agent with no tools: Anthropic and Bedrock need a tool
        # declared for it, which litellm adds (and merges same-role turns) when allowed to.
        litellm.modify_params = True
        litellm.telemetry = False
        _litellm = litellm
    return _litellm


async def close_litellm_clients() -> None:
    """Close the HTTP clients litellm caches per event loop (call before the loop ends)."""
    if _litellm is None:
        return
    try:
        await _litellm.close_litellm_async_clients()
        _litellm.in_memory_llm_clients_cache.flush_cache()
    except Exception:  # pragma: no cover - best effort at shutdown
        pass


class LitellmClient:
    """Calls one model through ``litellm.acompletion`` (fallbacks: :mod:`.fallbacks`)."""

    def __init__(self, spec: ModelSpec, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.environ = environ

    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        lib = _lib()
        # One retry policy: the step's. The SDK's own retries would repeat calls unseen.
        # Copies: litellm rewrites messages (and tools) in place for some providers, and these
        # are the run's own (its tools list is sent on every turn).
        messages = [dict(m) for m in request.messages]
        kwargs: dict[str, Any] = {"model": self.spec.id, "messages": messages, "max_retries": 0, **self.spec.params}
        if request.tools:
            kwargs["tools"] = [{**t, "function": dict(t["function"])} if "function" in t else dict(t) for t in request.tools]
            if request.tool_choice is not None:
                kwargs["tool_choice"] = request.tool_choice
        if self.spec.api_base:
            kwargs["api_base"] = resolved(self.spec, self.spec.api_base, self.environ)
        if self.spec.api_key:
            kwargs["api_key"] = resolved(self.spec, self.spec.api_key, self.environ)
        timeout = call_timeout(self.spec, request)
        if timeout is not None:
            kwargs["timeout"] = timeout
        started = time.perf_counter()
        try:
            if on_text is None:
                response = await lib.acompletion(**kwargs)
            else:
                chunks = []
                stream = await lib.acompletion(**kwargs, stream=True, stream_options={"include_usage": True})
                async for chunk in stream:
                    chunks.append(chunk)
                    delta = chunk.choices[0].delta.content if chunk.choices else None
                    if delta:
                        on_text(delta)
                response = lib.stream_chunk_builder(chunks, messages=messages)
        except Exception as exc:  # litellm maps every provider's errors onto its own classes
            raise self._error(exc) from None
        return self._completion(lib, response, time.perf_counter() - started)

    def _completion(self, lib: Any, response: Any, seconds: float) -> Completion:
        message = response.choices[0].message
        calls = [
            ToolRequest(c.id or f"call_{i}", c.function.name or "", c.function.arguments or "{}")
            for i, c in enumerate(message.tool_calls or [])
        ]
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = prices.declared(self.spec.price, prompt, completion) or 0.0
        if self.spec.price is None and _PRICED.get(self.spec.id, True):
            try:
                cost = float(lib.completion_cost(completion_response=response) or 0.0)
            except Exception:  # no price for this model: cost limits count 0 (and stop asking)
                _PRICED[self.spec.id] = False
        return Completion(
            text=message.content or "",
            tool_calls=calls,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost,
            seconds=seconds,
            model=self.spec.id,
            finish_reason=str(getattr(response.choices[0], "finish_reason", None) or ""),
        )

    def _error(self, exc: Exception) -> ModelError:
        """The provider's failure as a :class:`ModelError` (:func:`.errors.classify`)."""
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) and not isinstance(status, bool) else None
        return model_error(self.spec, self.environ, type(exc).__name__, status, str(exc), _headers(exc))


def _headers(exc: Exception) -> Any:
    """The response headers litellm keeps on its exception, if any (for ``Retry-After``)."""
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers
