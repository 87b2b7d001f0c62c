"""Models whose API is OpenAI's chat completions, called directly over httpx.

litellm costs about 4 ms of CPU per call and 2 s to import, and the openai SDK under it
walks the whole history on every call; a plain POST of the messages as they are costs
well under a millisecond. The request is what litellm would send (model, messages,
tools, tool_choice, the spec's params, ``stream_options`` when streaming), errors read
as litellm's do (:func:`.errors.classify`), and :mod:`.prices` prices the call.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from ..errors import NetrunError
from ..redact import Secrets
from ..runtime.model import Completion, ModelError, Request, ToolRequest
from ..spec.base import parse_duration
from ..spec.model import ModelSpec
from . import prices
from .errors import classify, status_name
from .http_pool import DEFAULT_TIMEOUT, lease
from .openai_compat import Endpoint, endpoint


class _CallError(NetrunError, phase="run"):
    """What a failed call showed, before classification (never leaves this module)."""

    def __init__(self, name: str, text: str, status: int | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(text)
        self.name, self.text, self.status, self.headers = name, text, status, headers


class OpenAIClient:
    """Calls one model as OpenAI chat completions at its endpoint."""

    def __init__(self, spec: ModelSpec, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.environ = environ
        self._spec_timeout = parse_duration(spec.timeout).total_seconds() if spec.timeout else None

    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        where = endpoint(self.spec, self.environ)
        if where.key is None and where.needs_key:  # as litellm says it, before any request
            raise classify(self.spec.id, "AuthenticationError", None, "the api_key must be set")
        body: dict[str, Any] = {"model": where.model, "messages": request.messages, **self.spec.params}
        if request.tools:
            body["tools"] = request.tools
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
        if on_text is not None:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        timeouts = [t for t in (request.timeout, self._spec_timeout) if t]
        timeout = min(timeouts) if timeouts else DEFAULT_TIMEOUT
        started = time.perf_counter()
        try:
            if on_text is None:
                data = await self._post(where, body, timeout)
            else:
                data = await self._stream(where, body, timeout, on_text)
        except _CallError as exc:
            raise self._error(exc) from None
        except httpx.TimeoutException:
            raise self._error(_CallError("Timeout", f"Request timed out after {timeout:g} s.", 408)) from None
        except httpx.TransportError:  # refused, reset, DNS: the model may be back soon (litellm's words)
            raise self._error(_CallError("APIConnectionError", "Connection error.")) from None
        except httpx.HTTPError as exc:  # a garbled answer (bad encoding, a broken stream)
            raise self._error(_CallError("APIError", f"{type(exc).__name__}: {exc}")) from None
        return self._completion(data, time.perf_counter() - started)

    async def _post(self, where: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        async with lease(where.url) as http:
            response = await http.post(where.url, json=body, headers=_headers(where), timeout=timeout)
        if response.status_code >= 400:
            raise _http_error(response.status_code, response.content, response.headers)
        try:
            data = response.json()
        except ValueError:
            raise _CallError("APIError", f"the model's answer is not JSON: {response.text[:200]}", response.status_code) from None
        if not isinstance(data, dict) or not data.get("choices"):
            raise _CallError("APIError", f"the model's answer has no choices: {response.text[:200]}", response.status_code)
        return data

    async def _stream(
        self, where: Endpoint, body: dict[str, Any], timeout: float, on_text: Callable[[str], None]
    ) -> dict[str, Any]:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage: dict[str, Any] | None = None
        model = where.model
        async with (
            lease(where.url) as http,
            http.stream("POST", where.url, json=body, headers=_headers(where), timeout=timeout) as response,
        ):
            if response.status_code >= 400:
                raise _http_error(response.status_code, await response.aread(), response.headers)
            async for chunk in _events(response.aiter_lines()):
                if isinstance(chunk.get("error"), dict):  # a failure after the stream began
                    raise _CallError("APIError", str(chunk["error"].get("message") or chunk["error"]))
                model = chunk.get("model") or model
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        text.append(delta["content"])
                        on_text(delta["content"])
                    for part in delta.get("tool_calls") or []:
                        call = calls.setdefault(int(part.get("index", len(calls))), {"id": "", "name": "", "arguments": ""})
                        call["id"] = part.get("id") or call["id"]
                        function = part.get("function") or {}
                        call["name"] += function.get("name") or ""
                        call["arguments"] += function.get("arguments") or ""
        tool_calls = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(calls.items())
        ]
        message = {"role": "assistant", "content": "".join(text), "tool_calls": tool_calls}
        return {"model": model, "choices": [{"message": message}], "usage": usage}

    def _completion(self, data: dict[str, Any], seconds: float) -> Completion:
        message = data["choices"][0].get("message") or {}
        calls = [
            ToolRequest(
                c.get("id") or f"call_{i}",
                (c.get("function") or {}).get("name") or "",
                (c.get("function") or {}).get("arguments") or "{}",
            )
            for i, c in enumerate(message.get("tool_calls") or [])
        ]
        usage = data.get("usage") or {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        return Completion(
            text=message.get("content") or "",
            tool_calls=calls,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=prices.cost(self.spec.id, prompt, completion, answered_by=data.get("model")),
            seconds=seconds,
            model=self.spec.id,
        )

    def _error(self, exc: _CallError) -> ModelError:
        # Redacted before classify cuts it: the spec's references and the provider keys count.
        text = Secrets.for_definition(self.spec.model_dump(mode="json"), self.environ).redact(exc.text)
        return classify(self.spec.id, exc.name, exc.status, text, exc.headers)


def _headers(where: Endpoint) -> dict[str, str]:
    return {"Authorization": f"Bearer {where.key}"} if where.key else {}


def _http_error(status: int, content: bytes, headers: Mapping[str, str]) -> _CallError:
    """The provider's own message: ``error.message`` of an OpenAI-style body, else the body."""
    text = content.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
            if error.get("code") == "insufficient_quota" or error.get("type") == "insufficient_quota":
                text += " (insufficient_quota)"
        elif isinstance(error, str):
            text = error
        elif isinstance(data.get("message"), str):
            text = data["message"]
    return _CallError(status_name(status), text or f"HTTP {status}", status, headers)


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON of each server-sent event's ``data`` until ``[DONE]`` (the SSE framing:
    ``data:`` lines joined by newlines, a blank line ends an event, ``:`` lines are comments)."""
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:  # a blank line ends the event; other fields and comments pass
            chunk = _chunk(data)
            data = []
            if chunk is None:
                return
            yield chunk
    if data and (chunk := _chunk(data)) is not None:  # a last event the server did not end
        yield chunk


def _chunk(data: list[str]) -> dict[str, Any] | None:
    """One event's JSON object; None at ``[DONE]``."""
    payload = "\n".join(data)
    if payload.strip() == "[DONE]":
        return None
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise _CallError("APIError", f"the model streamed text that is not JSON: {payload[:200]}") from None
    return chunk if isinstance(chunk, dict) else {}
