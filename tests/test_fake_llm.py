"""The fake OpenAI-compatible server (tests/fakes/llm_server.py), exercised through litellm over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.fakes.llm_server import FakeLLM, Reply, ToolCall, fake_llm, tokens

REPO = Path(__file__).resolve().parents[1]
# litellm's streaming code sets off two pydantic warnings (a lazily built schema with a ReadOnly TypedDict item, once;
# a deprecated instance attribute, on every chunk). Under filterwarnings=error they become exceptions inside the
# stream, which litellm reports as MidStreamFallbackError.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Item 'summary' on TypedDict class 'ChatCompletionReasoningItem':UserWarning"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211:litellm"),
]

MESSAGES = [{"role": "user", "content": "hi"}]  # JSON (sorted keys) is 35 characters: 9 prompt tokens
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "set_category",
            "description": "Set the ticket's category.",
            "parameters": {"type": "object", "properties": {"category": {"type": "string"}}, "required": ["category"]},
        },
    }
]


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    """litellm, imported only when these tests run (it takes seconds)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # else it downloads a price list at import
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def run(litellm: ModuleType, coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run, then close and forget litellm's clients: it caches one per event loop and never closes them."""

    async def main() -> Any:
        try:
            return await coro
        finally:
            await litellm.close_litellm_async_clients()
            litellm.in_memory_llm_clients_cache.flush_cache()

    return asyncio.run(main())


def call(litellm: ModuleType, llm: FakeLLM | str, **kwargs: Any) -> Any:
    """One litellm.acompletion against the fake (or a base URL); no retries unless asked (the openai SDK retries twice by default)."""
    base_url = llm if isinstance(llm, str) else llm.base_url
    args = {"model": "openai/fake", "api_base": base_url, "api_key": "sk-test", "messages": MESSAGES, "max_retries": 0}
    return run(litellm, litellm.acompletion(**{**args, **kwargs}))


def stream(litellm: ModuleType, llm: FakeLLM, **kwargs: Any) -> list[Any]:
    async def collect() -> list[Any]:
        response = await litellm.acompletion(
            model="openai/fake", api_base=llm.base_url, api_key="sk-test", messages=MESSAGES, max_retries=0, stream=True, **kwargs
        )
        return [chunk async for chunk in response]

    return run(litellm, collect())


def test_plain_text_with_usage(litellm: ModuleType, llm: FakeLLM) -> None:
    llm.push(Reply(text="hello there world"))
    response = call(litellm, llm)
    assert response.choices[0].message.content == "hello there world"
    assert response.choices[0].message.tool_calls is None
    assert response.choices[0].finish_reason == "stop"
    assert response.id == "chatcmpl-fake-1"
    assert response.model == "fake"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (9, 5, 14)
    assert llm.requests[0]["messages"] == MESSAGES


def test_tool_calls_arrive_with_json_arguments(litellm: ModuleType, llm: FakeLLM) -> None:
    llm.push(Reply(tool_calls=[ToolCall("set_category", {"category": "billing"})]))
    response = call(litellm, llm, tools=TOOLS)
    message = response.choices[0].message
    assert message.content is None
    assert response.choices[0].finish_reason == "tool_calls"
    [tool_call] = message.tool_calls
    assert (tool_call.id, tool_call.type, tool_call.function.name) == ("call_1_0", "function", "set_category")
    assert isinstance(tool_call.function.arguments, str)
    assert json.loads(tool_call.function.arguments) == {"category": "billing"}
    assert response.usage.completion_tokens == tokens('set_category{"category": "billing"}')
    assert [t["function"]["name"] for t in llm.requests[0]["tools"]] == ["set_category"]


def test_responder_answers_from_the_request(litellm: ModuleType, llm: FakeLLM) -> None:
    def responder(request: dict[str, Any]) -> Reply:
        offered = [t["function"]["name"] for t in request.get("tools", [])]
        if offered:
            return Reply(tool_calls=[ToolCall(offered[0], {"echo": request["messages"][-1]["content"]})])
        return Reply(text=f"no tools, {len(request['messages'])} message(s)")

    llm.push(responder, responder)
    with_tools = call(litellm, llm, tools=TOOLS, messages=[{"role": "user", "content": "route me"}])
    assert json.loads(with_tools.choices[0].message.tool_calls[0].function.arguments) == {"echo": "route me"}
    assert call(litellm, llm).choices[0].message.content == "no tools, 1 message(s)"
    assert llm.remaining == 0


def test_streamed_text_is_rebuilt(litellm: ModuleType, llm: FakeLLM) -> None:
    llm.push(Reply(text="one two three four"))
    chunks = stream(litellm, llm, stream_options={"include_usage": True})
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["one ", "two ", "three ", "four"]
    rebuilt = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    assert rebuilt.choices[0].message.content == "one two three four"
    assert rebuilt.choices[0].finish_reason == "stop"
    assert (rebuilt.usage.prompt_tokens, rebuilt.usage.completion_tokens) == (9, 5)
    assert llm.requests[0]["stream"] is True


def test_streamed_tool_calls_are_rebuilt(litellm: ModuleType, llm: FakeLLM) -> None:
    args = {"category": "billing and invoices", "priority": 2}
    llm.push(Reply(text="Routing.", tool_calls=[ToolCall("set_category", args), ToolCall("close", {}, id="call_x")]))
    chunks = stream(litellm, llm, tools=TOOLS)
    rebuilt = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    message = rebuilt.choices[0].message
    assert message.content == "Routing."
    assert [(t.id, t.function.name) for t in message.tool_calls] == [("call_1_0", "set_category"), ("call_x", "close")]
    assert [json.loads(t.function.arguments) for t in message.tool_calls] == [args, {}]
    assert rebuilt.choices[0].finish_reason == "tool_calls"


def test_http_500_surfaces_as_a_litellm_exception(litellm: ModuleType, llm: FakeLLM) -> None:
    llm.push(Reply(status=500, error="upstream exploded"), Reply(text="never reached"))
    with pytest.raises(litellm.InternalServerError) as caught:
        call(litellm, llm)
    assert caught.value.status_code == 500
    assert "upstream exploded" in str(caught.value)
    assert (llm.count, llm.remaining) == (1, 1)


def test_http_429_and_retry_after(litellm: ModuleType, llm: FakeLLM) -> None:
    llm.push(Reply(status=429, retry_after=0.3))
    with pytest.raises(litellm.RateLimitError) as caught:
        call(litellm, llm)
    assert caught.value.status_code == 429
    # With retries allowed, the openai SDK under litellm waits for retry-after, then asks again.
    llm.push(Reply(status=429, retry_after=0.3), Reply(text="finally"))
    started = time.perf_counter()
    assert call(litellm, llm, max_retries=1).choices[0].message.content == "finally"
    assert time.perf_counter() - started >= 0.3
    assert llm.count == 3


def test_script_exhaustion_is_an_error(litellm: ModuleType, llm: FakeLLM) -> None:
    with pytest.raises(litellm.InternalServerError, match="script exhausted"):
        call(litellm, llm, max_retries=2)  # x-should-retry: false stops the openai SDK's retries
    assert llm.count == 1
    raw = httpx.post(f"{llm.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert raw.status_code == 500
    assert raw.json()["error"]["message"] == "fake LLM: script exhausted (request #2 has no scripted reply)"


def test_request_log_counts_calls_and_models(litellm: ModuleType, llm: FakeLLM) -> None:
    llm.push(Reply(text="a"), Reply(text="b"))
    call(litellm, llm, model="openai/model-a")
    call(litellm, llm, model="openai/model-b", messages=[*MESSAGES, {"role": "assistant", "content": "a"}])
    assert llm.count == 2
    assert llm.models == ["model-a", "model-b"]
    assert [len(r["messages"]) for r in llm.requests] == [1, 2]
    llm.clear_log()
    assert (llm.count, llm.requests) == (0, [])


def test_delays_are_per_reply_or_server_wide(litellm: ModuleType) -> None:
    script = (Reply(text="slow", delay=0.3), Reply(text="default"), Reply(text="instant", delay=0))
    with fake_llm(*script, delay=0.2) as llm:
        elapsed = []
        for _ in script:
            started = time.perf_counter()
            call(litellm, llm)
            elapsed.append(time.perf_counter() - started)
    slow, default, instant = elapsed
    assert slow >= 0.3
    assert default >= 0.2
    assert instant < 0.2, elapsed  # delay=0 overrides the server's default


def test_wait_for_sees_requests_in_flight(llm: FakeLLM) -> None:
    llm.push(Reply(text="late", delay=0.3))
    answers: list[str] = []
    worker = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{llm.base_url}/chat/completions", json={"messages": []}).text)
    )
    worker.start()
    llm.wait_for(1, timeout=5)
    assert (llm.count, answers) == (1, [])  # logged on arrival, still in its delay
    worker.join(timeout=5)
    assert json.loads(answers[0])["choices"][0]["message"]["content"] == "late"
    with pytest.raises(TimeoutError, match="1 request"):
        llm.wait_for(2, timeout=0.05)


def test_concurrent_calls_overlap_and_are_all_logged(litellm: ModuleType) -> None:
    with fake_llm(delay=0.25, fallback=lambda request: Reply(text=request["messages"][0]["content"])) as llm:

        async def many() -> list[Any]:
            return await asyncio.gather(
                *(
                    litellm.acompletion(
                        model="openai/fake",
                        api_base=llm.base_url,
                        api_key="k",
                        messages=[{"role": "user", "content": str(i)}],
                        max_retries=0,
                    )
                    for i in range(20)
                )
            )

        started = time.perf_counter()
        responses = run(litellm, many())
        elapsed = time.perf_counter() - started
    assert [r.choices[0].message.content for r in responses] == [str(i) for i in range(20)]
    assert sorted(r.id for r in responses) == sorted(f"chatcmpl-fake-{n}" for n in range(1, 21))
    assert llm.count == 20
    assert elapsed < 2.5  # the delays overlap: 20 sequential calls would take 5 s


def test_raw_sse_format(llm: FakeLLM) -> None:
    llm.push(Reply(text="Hi", tool_calls=[ToolCall("set_category", {"category": "billing"})]))
    body = {"model": "gpt-x", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    response = httpx.post(f"{llm.base_url}/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {(c["object"], c["model"], c["id"]) for c in chunks} == {("chat.completion.chunk", "gpt-x", "chatcmpl-fake-1")}
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2] == {
        "tool_calls": [{"index": 0, "id": "call_1_0", "type": "function", "function": {"name": "set_category", "arguments": ""}}]
    }
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:-1]]
    assert len(fragments) > 1
    assert all(d["tool_calls"][0].keys() == {"index", "function"} for d in deltas[3:-1])
    assert json.loads("".join(fragments)) == {"category": "billing"}
    assert deltas[-1] == {}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 1 + 9, "total_tokens": 19}


def test_models_endpoint(llm: FakeLLM) -> None:
    response = httpx.get(f"{llm.base_url}/models")
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["fake"]


def test_separate_process_with_log_and_script(litellm: ModuleType, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps([{"text": "from a file"}, {"tool_calls": [{"name": "set_category", "arguments": {"category": "x"}}]}])
    )
    command = [
        sys.executable,
        "-m",
        "tests.fakes.llm_server",
        "--port",
        "0",
        "--script",
        str(script),
        "--delay",
        "0.01",
        "--fallback-text",
        "default answer",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("listening on http://127.0.0.1:"), line
        base_url = line.split()[-1]
        assert call(litellm, base_url).choices[0].message.content == "from a file"
        tool_call = call(litellm, base_url, tools=TOOLS).choices[0].message.tool_calls[0]
        assert json.loads(tool_call.function.arguments) == {"category": "x"}
        root = base_url.removesuffix("/v1")
        assert httpx.post(f"{root}/_script", json=[{"text": "replaced"}, {"status": 503}]).json() == {"remaining": 2}
        assert call(litellm, base_url).choices[0].message.content == "replaced"
        with pytest.raises(litellm.ServiceUnavailableError):
            call(litellm, base_url)
        assert call(litellm, base_url).choices[0].message.content == "default answer"  # script exhausted
        assert httpx.post(f"{root}/_script", json=[{"txt": "typo"}]).status_code == 400
        log = httpx.get(f"{root}/_log").json()
        assert log["count"] == 5
        assert [r["model"] for r in log["requests"]] == ["fake"] * 5
        assert "tools" in log["requests"][1] and "tools" not in log["requests"][0]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
