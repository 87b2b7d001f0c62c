"""Real models through litellm (imported on first use: it takes seconds to import)."""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from .. import envrefs
from ..redact import Secrets
from ..runtime.model import Completion, ModelError, Request, ToolRequest
from ..runtime.retry_after import retry_after_headers
from ..spec.base import parse_duration
from ..spec.model import ModelSpec

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
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        _litellm = litellm
    return _litellm


async def close_clients() -> None:
    """Close the HTTP clients litellm caches per event loop (call before the loop ends)."""
    if _litellm is None:
        return
    try:
        await _litellm.close_litellm_async_clients()
        _litellm.in_memory_llm_clients_cache.flush_cache()
    except Exception:  # pragma: no cover - best effort at shutdown
        pass


class LitellmClient:
    """Calls one model (with fallbacks) through ``litellm.acompletion``."""

    def __init__(self, spec: ModelSpec, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.environ = environ

    def _resolve(self, text: str | None) -> str | None:
        if text is None:
            return None
        try:
            return envrefs.resolve(text, self.environ)
        except envrefs.MissingEnvError as exc:
            raise ModelError(f"model {self.spec.id}: {exc}", retriable=False) from None

    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        lib = _lib()
        # One retry policy: the step's. The SDK's own retries would repeat calls unseen.
        kwargs: dict[str, Any] = {"model": self.spec.id, "messages": request.messages, "max_retries": 0, **self.spec.params}
        if request.tools:
            kwargs["tools"] = request.tools
            if request.tool_choice is not None:
                kwargs["tool_choice"] = request.tool_choice
        if self.spec.api_base:
            kwargs["api_base"] = self._resolve(self.spec.api_base)
        if self.spec.api_key:
            kwargs["api_key"] = self._resolve(self.spec.api_key)
        timeouts = [
            t for t in (request.timeout, parse_duration(self.spec.timeout).total_seconds() if self.spec.timeout else None) if t
        ]
        if timeouts:
            kwargs["timeout"] = min(timeouts)
        if self.spec.fallbacks:
            kwargs["fallbacks"] = list(self.spec.fallbacks)
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
                response = lib.stream_chunk_builder(chunks, messages=request.messages)
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
        cost = 0.0
        if _PRICED.get(self.spec.id, True):
            try:
                cost = float(lib.completion_cost(completion_response=response) or 0.0)
            except Exception:  # no price for this model: cost limits count 0 (and stop asking)
                _PRICED[self.spec.id] = False
        return Completion(
            text=message.content or "",
            tool_calls=calls,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost=cost,
            seconds=seconds,
            model=self.spec.id,
        )

    def _error(self, exc: Exception) -> ModelError:
        """The provider's failure as a :class:`ModelError`: permanent ones (a missing or
        rejected key, an unknown model, a request the provider refuses) fail at once with the
        provider's reason; a rate limit carries its ``Retry-After``; the rest may be retried."""
        name = type(exc).__name__
        # Redacted before it is cut: a key crossing the cut would leak its first half. The
        # spec's references and the provider keys litellm reads from the environment count.
        text = Secrets.for_definition(self.spec.model_dump(mode="json"), self.environ).redact(str(exc))
        text = text.splitlines()[0][:300] if text else name
        reason = _reason(text) or name
        status = getattr(exc, "status_code", None)
        status = status if isinstance(status, int) and not isinstance(status, bool) else None
        model = f"model {self.spec.id}"
        provider = self.spec.id.split("/", 1)[0]
        key_hint = f"set model.api_key, or the provider's environment variable such as {provider.upper()}_API_KEY"
        if "api_key" in text.lower() and "must be set" in text.lower():
            return ModelError(f"{model}: missing API key for {provider} ({key_hint})", retriable=False)
        if status in (401, 403) or name in ("AuthenticationError", "PermissionDeniedError"):
            what = "the API key was rejected" if status != 403 and name != "PermissionDeniedError" else "access was denied"
            return ModelError(f"{model}: {what} (HTTP {status or 401}): {reason} ({key_hint})", retriable=False)
        if status == 429 or name == "RateLimitError":
            if "insufficient_quota" in text or "exceeded your current quota" in text.lower():  # billing: waiting does not help
                return ModelError(f"{model}: quota exhausted (HTTP 429): {reason}", retriable=False)
            wait = retry_after(exc)
            asked = f", retry after {wait:g} s" if wait is not None else ""
            return ModelError(f"{model}: rate limited (HTTP 429{asked}): {reason}", retriable=True, retry_after=wait)
        if status in PERMANENT_STATUSES or name in PERMANENT_ERRORS:
            return ModelError(
                f"{model}: {name} (HTTP {status}): {reason}" if status else f"{model}: {name}: {reason}", retriable=False
            )
        if name == "APIConnectionError" or "Connection" in name or "connection error" in text.lower():
            return ModelError(f"{model}: cannot reach the model ({text})", retriable=True)
        return ModelError(
            f"{model}: {name} (HTTP {status}): {reason}" if status else f"{model}: {name}: {reason}", retriable=True
        )


PERMANENT_STATUSES = (400, 401, 403, 404, 405, 413, 422)
"""HTTP statuses no retry can fix: a bad request, a rejected key, an unknown model."""
PERMANENT_ERRORS = (
    "AuthenticationError",
    "BadRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "UnsupportedParamsError",
    "ContextWindowExceededError",
    "ContentPolicyViolationError",
)
"""litellm's names for those failures (for errors raised before any HTTP status is known)."""
_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*|\w+(?:Error|Exception)(?::|\s+-)\s*)+")


def _reason(text: str) -> str:
    """The provider's own words: litellm's message without its ``litellm.XError: XError:
    OpenAIException -`` prefixes."""
    return _PREFIX.sub("", text).strip()


def retry_after(exc: Exception) -> float | None:
    """Seconds a provider asked to wait (``retry-after-ms``, ``retry-after`` in seconds or as
    an HTTP date) in the response headers litellm keeps on its exception, if any."""
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        return retry_after_headers(dict(headers))
    except (TypeError, ValueError):
        return None
