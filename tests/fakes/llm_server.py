"""A scripted, OpenAI-compatible chat completions server for tests and benchmarks.

What it fakes, over real HTTP on 127.0.0.1 (so litellm and the openai SDK run unmodified):

- ``POST /v1/chat/completions``: JSON answers, or SSE chunks ending in ``data: [DONE]`` when
  ``"stream": true``. Tool calls stream the way OpenAI streams them (a first fragment with the
  id, the name and empty arguments, then argument fragments), then a chunk with
  ``finish_reason``, then a usage chunk if ``stream_options.include_usage`` is set.
- ``usage`` counts are deterministic: one token per 4 characters (rounded up) of the JSON of the
  request's ``messages`` (prompt) and of the reply's text and tool calls (completion).
- ``GET /v1/models`` lists one model, ``fake``; the chat endpoint accepts any model name.
- Test hooks: ``GET /_log`` (every request body, in order), ``POST /_script`` (replace the script
  with a JSON list of replies).

Each request pops the next item of a script: a ``Reply`` or a responder ``(request) -> Reply``.
A reply may fail its request (``status``/``retry_after``) or wait first (``delay``). When the
script is empty the server uses its ``fallback`` responder if it has one, else answers HTTP 500
"script exhausted".

What it does not fake: validation of requests, ``n > 1``, logprobs, refusals, JSON mode or
structured outputs, embeddings, the Responses API, authentication (any API key works).

In-process::

    with FakeLLM([Reply(text="hi"), Reply(tool_calls=[ToolCall("f", {"x": 1})])]) as llm:
        ...  # litellm.acompletion(model="openai/fake", api_base=llm.base_url, api_key="sk-test", ...)
        assert llm.count == 2

As a process (prints ``listening on http://127.0.0.1:PORT/v1`` once it accepts connections)::

    python -m tests.fakes.llm_server --port 0 --script replies.json [--delay 0.05] [--fallback-text ok]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .server_thread import ServerThread, config, listen

Json = dict[str, Any]


@dataclass
class ToolCall:
    """A tool call in a reply; ``arguments`` is a dict (sent as JSON text) or raw text."""

    name: str
    arguments: Json | str = field(default_factory=dict)
    id: str | None = None  # default: call_<request number>_<index>


@dataclass
class Reply:
    """One scripted answer. ``status`` other than 200 fails the request with an OpenAI-style error."""

    text: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    status: int = 200
    retry_after: float | None = None  # seconds, sent as the retry-after header
    delay: float | None = None  # seconds to wait before answering; None: the server's default
    error: str | None = None  # error message when status != 200
    finish_reason: str | None = None  # default: "tool_calls" if there are tool calls, else "stop"
    pace: float = 0.0  # seconds between streamed chunks (text that visibly streams in, for a watcher)

    @classmethod
    def from_json(cls, data: Json) -> Reply:
        calls = [ToolCall(c["name"], c.get("arguments", {}), c.get("id")) for c in data.get("tool_calls", [])]
        return cls(**{**data, "tool_calls": calls})


Responder = Callable[[Json], Reply]
ScriptItem = Reply | Responder


def tokens(text: str) -> int:
    """The fake tokenizer: one token per 4 characters, rounded up."""
    return (len(text) + 3) // 4


def pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class FakeLLMState:
    """The script and the request log, shared by the app (event loop thread) and the test (any thread)."""

    def __init__(self, script: Iterable[ScriptItem] = (), delay: float = 0.0, fallback: Responder | None = None) -> None:
        self._lock = threading.Condition()
        self._script: deque[ScriptItem] = deque(script)
        self._log: list[Json] = []
        self._headers: list[dict[str, str]] = []
        self.delay = delay
        self.fallback = fallback

    def take(self, body: Json, headers: dict[str, str] | None = None) -> tuple[int, ScriptItem | None]:
        """Log a request; return its number (from 1) and its script item (None: exhausted)."""
        with self._lock:
            self._log.append(body)
            self._headers.append(headers or {})
            self._lock.notify_all()
            item = self._script.popleft() if self._script else self.fallback
            return len(self._log), item

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Block until at least ``count`` requests have arrived (they may still be in their delay)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._log) >= count, timeout):
                raise TimeoutError(f"fake LLM: {len(self._log)} request(s) after {timeout} s, expected {count}")

    def set_script(self, items: Iterable[ScriptItem]) -> None:
        with self._lock:
            self._script = deque(items)

    def push(self, *items: ScriptItem) -> None:
        with self._lock:
            self._script.extend(items)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._headers.clear()

    def reset(self, *items: ScriptItem) -> None:
        """Forget the log (request numbers restart at 1) and set a new script: reuse one server across tests."""
        with self._lock:
            self._log.clear()
            self._headers.clear()
            self._script = deque(items)

    @property
    def requests(self) -> list[Json]:
        """A copy of every chat completion request body received, in order."""
        with self._lock:
            return list(self._log)

    @property
    def headers(self) -> list[dict[str, str]]:
        """The HTTP headers of each request (lower-case names), in the order of :attr:`requests`."""
        with self._lock:
            return list(self._headers)

    @property
    def models(self) -> list[str]:
        return [r.get("model", "") for r in self.requests]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._log)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._script)


def _error(status: int, message: str, retry_after: float | None = None, final: bool = False) -> JSONResponse:
    """An OpenAI-style error. ``final``: tell the openai SDK not to retry (x-should-retry: false)."""
    kind = {429: "rate_limit_error", 400: "invalid_request_error"}.get(status, "server_error")
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    if final:
        headers["x-should-retry"] = "false"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": str(status)}}, status, headers)


def _tool_calls(reply: Reply, n: int) -> list[Json]:
    return [
        {
            "id": call.id or f"call_{n}_{i}",
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments),
            },
        }
        for i, call in enumerate(reply.tool_calls)
    ]


def _usage(body: Json, reply: Reply, calls: list[Json]) -> Json:
    prompt = tokens(json.dumps(body.get("messages", []), sort_keys=True))
    completion = tokens(reply.text or "") + sum(tokens(c["function"]["name"] + c["function"]["arguments"]) for c in calls)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(body: Json, reply: Reply, n: int) -> Json:
    calls = _tool_calls(reply, n)
    message: Json = {"role": "assistant", "content": reply.text}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(reply)}],
        "usage": _usage(body, reply, calls),
    }


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _chunks(body: Json, reply: Reply, n: int) -> Iterator[Json]:
    """The chat.completion.chunk objects OpenAI would stream for this reply."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head = {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
    }

    def chunk(delta: Json, finish: str | None = None) -> Json:
        extra = {"usage": None} if include_usage else {}
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}

    calls = _tool_calls(reply, n)
    yield chunk({"role": "assistant", "content": "" if reply.text is not None else None})
    for word in re.findall(r"\S*\s*", reply.text or ""):
        if word:
            yield chunk({"content": word})
    for i, call in enumerate(calls):
        first = {
            "index": i,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        yield chunk({"tool_calls": [first]})
        for fragment in pieces(call["function"]["arguments"]):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": fragment}}]})
    yield chunk({}, _finish(reply))
    if include_usage:
        yield {**head, "choices": [], "usage": _usage(body, reply, calls)}


def create_app(state: FakeLLMState) -> FastAPI:
    app = FastAPI(title="fake OpenAI-compatible LLM")

    @app.get("/v1/models")
    async def models() -> Json:
        return {"object": "list", "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "netrun-tests"}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        try:
            body = await request.json()
        except ValueError as exc:
            return _error(400, f"fake LLM: request body is not JSON: {exc}", final=True)
        n, item = state.take(body, dict(request.headers))
        if item is None:  # a test bug, not a transient fault: no retries
            return _error(500, f"fake LLM: script exhausted (request #{n} has no scripted reply)", final=True)
        try:
            reply = item if isinstance(item, Reply) else item(body)
        except Exception as exc:  # a broken responder is a test bug too: say so in the answer
            return _error(500, f"fake LLM: responder raised {exc!r}", final=True)
        delay = state.delay if reply.delay is None else reply.delay
        if delay > 0:
            await asyncio.sleep(delay)
        if reply.status != 200:
            return _error(reply.status, reply.error or f"fake LLM: scripted HTTP {reply.status}", reply.retry_after)
        if not body.get("stream"):
            return JSONResponse(_completion(body, reply, n))
        chunks = list(_chunks(body, reply, n))

        async def sse() -> AsyncIterator[str]:  # async: Starlette would run a plain iterator in a thread pool
            for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
                if reply.pace:
                    await asyncio.sleep(reply.pace)
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.get("/_log")
    async def log() -> Json:
        return {"count": state.count, "requests": state.requests}

    @app.post("/_script")
    async def script(request: Request) -> JSONResponse:
        try:
            replies = [Reply.from_json(r) for r in await request.json()]
        except (TypeError, KeyError, ValueError) as exc:
            return _error(400, f"fake LLM: bad script: {exc!r}", final=True)
        state.set_script(replies)
        return JSONResponse({"remaining": state.remaining})

    return app


def _server(state: FakeLLMState) -> uvicorn.Server:
    return uvicorn.Server(config(create_app(state), lifespan="off"))


class FakeLLM(FakeLLMState):
    """The fake server in a background thread (its own event loop) on a free port of 127.0.0.1."""

    port: int
    base_url: str  # http://127.0.0.1:PORT/v1, set by start()

    def start(self) -> FakeLLM:
        self._thread = ServerThread(lambda port: create_app(self), name="fake-llm", lifespan="off", timeout=10)
        self.port = self._thread.port
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def stop(self) -> None:
        self._thread.stop(timeout=10)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def fake_llm(*script: ScriptItem, delay: float = 0.0, fallback: Responder | None = None) -> Iterator[FakeLLM]:
    """``with fake_llm(Reply(text="hi")) as llm:`` -- a started FakeLLM, stopped on exit."""
    with FakeLLM(script, delay, fallback) as server:
        yield server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI-compatible LLM server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port, printed on start")
    parser.add_argument("--script", help='JSON file: a list of replies, e.g. [{"text": "hi"}, {"status": 500}]')
    parser.add_argument("--delay", type=float, default=0.0, help="default seconds to wait before each answer")
    parser.add_argument("--fallback-text", help="answer this text once the script is exhausted (instead of HTTP 500)")
    args = parser.parse_args(argv)
    replies = json.loads(Path(args.script).read_text(encoding="utf-8")) if args.script else []
    fallback = (lambda _body: Reply(text=args.fallback_text)) if args.fallback_text is not None else None
    state = FakeLLMState((Reply.from_json(r) for r in replies), args.delay, fallback)
    sock = listen(args.port)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    _server(state).run(sockets=[sock])


if __name__ == "__main__":
    main()
