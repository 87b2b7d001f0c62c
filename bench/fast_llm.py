"""A minimal OpenAI-compatible chat server for throughput benchmarks (aiohttp, one process).

The test fake (``tests/fakes/llm_server.py``: FastAPI under uvicorn, with a script, a request
log and token counting) costs the server about a millisecond of CPU per request. With 200
concurrent runs that is the bottleneck: a raw aiohttp client loop against it takes 2.5x the
ideal on its own, so a client's overhead cannot be seen under it. This server answers every
request the same way (one call of the tool ``step`` with ``{"note": "x"}``, after ``delay``),
as JSON or as an SSE stream shaped like OpenAI's, and does nothing else.

    python bench/fast_llm.py 0.1     # prints its base URL, serves until stdin closes
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

CALL = {"id": "call_1", "type": "function", "function": {"name": "step", "arguments": '{"note": "x"}'}}
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def _chunk(delta: dict[str, object], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, object] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = b"".join(
    (
        _chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"index": 0, **CALL, "function": {"name": "step", "arguments": ""}}],
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"note": "x"}'}}]}),
        _chunk({}, finish="tool_calls"),
    )
)
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [CALL]}, "finish_reason": "tool_calls"}
        ],
        "usage": USAGE,
    }
).encode()


def app(delay: float) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if delay:
            await asyncio.sleep(delay)
        if not body.get("stream"):
            return web.Response(body=ANSWER, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        usage = _chunk({}, usage=USAGE) if (body.get("stream_options") or {}).get("include_usage") else b""
        await response.write(STREAM + usage + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    application = web.Application()
    application.router.add_post("/v1/chat/completions", chat)
    return application


async def serve(delay: float) -> None:
    runner = web.AppRunner(app(delay), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes the pipe
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve(float(sys.argv[1]) if len(sys.argv) > 1 else 0.0))
