"""Models whose API is OpenAI's chat completions, called directly over HTTP (aiohttp: see :mod:`.http_pool`).

litellm costs about 4 ms of CPU per call and 2 s to import, and the openai SDK under it
walks the whole history on every call; a plain POST of the messages as they are costs
well under a millisecond. The request is what litellm would send (model, messages,
tools, tool_choice, the spec's params, ``stream_options`` when streaming), errors read
as litellm's do (:func:`.errors.classify`), and :mod:`.prices` prices the call.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp

from ..errors import NetrunError
from ..runtime.model import Completion, ModelError, Request, ToolRequest
from ..spec.model import ModelSpec
from . import prices
from .errors import classify, model_error, status_name
from .http_pool import DEFAULT_TIMEOUT, proxy_for, session
from .json_body import BodyEncoder
from .openai_compat import Endpoint, endpoint
from .settings import call_timeout


class _CallError(NetrunError, phase="run"):
    """What a failed call showed, before classification (never leaves this module)."""

    def __init__(self, name: str, text: str, status: int | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(text)
        self.name, self.text, self.status, self.headers = name, text, status, headers


_REASONING = re.compile(r"^(o\d|gpt-5)")
"""OpenAI's models that take ``max_completion_tokens`` instead of ``max_tokens``."""


class OpenAIClient:
    """Calls one model as OpenAI chat completions at its endpoint."""

    def __init__(self, spec: ModelSpec, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.environ = environ
        self._bodies = BodyEncoder()  # a run's history, encoded a message at a time
        self._where: tuple[Endpoint, dict[str, str]] | None = None

    def _endpoint(self) -> tuple[Endpoint, dict[str, str]]:
        """Where the calls go, and their headers: found at the first call (a client is made
        for each run, so a changed environment counts from the next run on)."""
        if self._where is None:
            where = endpoint(self.spec, self.environ)
            if where.key is None and where.needs_key:  # as litellm says it, before any request
                raise classify(self.spec.id, "AuthenticationError", None, "the api_key must be set")
            # The openai SDK's (and litellm's) way to add headers of one's own.
            self._where = where, {**_headers(where), **(self.spec.params.get("extra_headers") or {})}
        return self._where

    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        where, headers = self._endpoint()
        params = dict(self.spec.params)
        params.pop("extra_headers", None)
        extra_body = params.pop("extra_body", None) or {}
        body: dict[str, Any] = {"model": where.model, "messages": request.messages, **params, **extra_body}
        if self.spec.id.startswith("openai/") and _REASONING.match(where.model) and "max_tokens" in body:
            # OpenAI's reasoning models refuse max_tokens; litellm renames it for them too.
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))
        if request.tools:
            body["tools"] = request.tools
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
        if on_text is not None:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        timeout = call_timeout(self.spec, request) or DEFAULT_TIMEOUT
        started = time.perf_counter()
        try:
            encoded = self._bodies.encode(body)
            if on_text is None:
                data = await self._post(where, encoded, timeout, headers)
            else:
                data = await self._stream(where, encoded, timeout, on_text, headers)
            return self._completion(data, time.perf_counter() - started)
        except _CallError as exc:
            raise self._error(exc) from None
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors
            raise self._error(_CallError("Timeout", f"Request timed out after {timeout:g} s.", 408)) from None
        except aiohttp.ClientConnectionError:  # refused, reset, DNS: the model may be back soon (litellm's words)
            raise self._error(_CallError("APIConnectionError", "Connection error.")) from None
        except aiohttp.ClientError as exc:  # a garbled answer (bad encoding, a broken stream)
            raise self._error(_CallError("APIError", f"{type(exc).__name__}: {exc}")) from None
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            # An answer of the wrong shape (a list where an object belongs, a null index):
            # the provider's fault, classified as such (a fallback may answer instead).
            raise self._error(
                _CallError("APIError", f"the model's answer has the wrong shape ({type(exc).__name__}: {exc})")
            ) from None

    async def _post(self, where: Endpoint, body: bytes, timeout: float, headers: dict[str, str]) -> dict[str, Any]:
        async with _send(where, body, timeout, headers) as response:
            content = await response.read()
            if response.status >= 300:
                raise _http_error(response.status, content, response.headers)
        text = content.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            raise _CallError("APIError", f"the model's answer is not JSON: {text}", response.status) from None
        if not isinstance(data, dict) or not data.get("choices"):
            raise _CallError("APIError", f"the model's answer has no choices: {text}", response.status)
        return data

    async def _stream(
        self, where: Endpoint, body: bytes, timeout: float, on_text: Callable[[str], None], headers: dict[str, str]
    ) -> dict[str, Any]:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage: dict[str, Any] | None = None
        model = where.model
        answered, finish = False, ""
        async with _send(where, body, timeout, headers) as response:
            if response.status >= 300:
                raise _http_error(response.status, await response.read(), response.headers)
            async for chunk in _events(_lines(response.content.iter_any())):
                if isinstance(chunk.get("error"), dict):  # a failure after the stream began
                    raise _CallError("APIError", str(chunk["error"].get("message") or chunk["error"]))
                model = chunk.get("model") or model
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    answered, finish = True, choice.get("finish_reason") or finish
                    delta = choice.get("delta") or {}
                    content = delta.get("content")
                    if isinstance(content, str) and content:
                        text.append(content)
                        on_text(content)
                    for part in delta.get("tool_calls") or []:
                        index = part.get("index")
                        call = calls.setdefault(index if isinstance(index, int) else 0, {"id": "", "name": "", "arguments": ""})
                        call["id"] = part.get("id") or call["id"]
                        function = part.get("function") or {}
                        # The name is the last one given (some servers repeat it in every
                        # delta, as litellm's chunk builder allows); arguments accumulate.
                        call["name"] = function.get("name") or call["name"]
                        call["arguments"] += function.get("arguments") or ""
        if not answered:  # a server that ignored `stream` (or sent nothing): no answer at all
            raise _CallError("APIError", "the model streamed no answer (no event with choices)", response.status)
        tool_calls = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(calls.items())
        ]
        message = {"role": "assistant", "content": "".join(text), "tool_calls": tool_calls}
        return {"model": model, "choices": [{"message": message, "finish_reason": finish}], "usage": usage}

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
            cost=prices.cost(self.spec.id, prompt, completion, answered_by=data.get("model"), price=self.spec.price),
            seconds=seconds,
            model=self.spec.id,
            finish_reason=str(data["choices"][0].get("finish_reason") or ""),
        )

    def _error(self, exc: _CallError) -> ModelError:
        return model_error(self.spec, self.environ, exc.name, exc.status, exc.text, exc.headers)


def _send(where: Endpoint, body: bytes, timeout: float, headers: dict[str, str]) -> Any:
    """The POST of one call (``async with``): plain or streamed, the same request."""
    proxy, proxy_auth = proxy_for(where.url)
    return session().post(
        where.url,
        data=body,
        proxy=proxy,
        proxy_auth=proxy_auth,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
        allow_redirects=False,  # a redirect must not carry the key elsewhere (it is an error)
    )


def _headers(where: Endpoint) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **where.headers}
    if where.key:
        headers["Authorization"] = f"Bearer {where.key}"
    return headers


def _http_error(status: int, content: bytes, headers: Mapping[str, str]) -> _CallError:
    """The provider's own message: ``error.message`` of an OpenAI-style body, else the body.
    A redirect is refused for good: followed, it would carry the key wherever it points."""
    if status < 400:
        where = headers.get("Location") or "elsewhere"
        return _CallError(
            "BadRequestError",
            f"the endpoint redirects (HTTP {status}) to {where}: set api_base to the address it points to "
            "(netrun follows no redirect with the key)",
            status,
        )
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


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The lines of a byte stream, however the network cut it (no limit on a line's length:
    one event may carry a long tool call's arguments)."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            yield line.removesuffix(b"\r").decode("utf-8", "replace")
    if pending:
        yield pending.removesuffix(b"\r").decode("utf-8", "replace")


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
        raise _CallError("APIError", f"the model streamed text that is not JSON: {payload}") from None
    return chunk if isinstance(chunk, dict) else {}
