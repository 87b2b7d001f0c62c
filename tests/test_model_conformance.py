"""Both model clients behave the same: litellm's (``LitellmClient``) and the direct
OpenAI-compatible one (``OpenAIClient``), against the fake OpenAI-compatible server over
real HTTP. Each test runs once per client and asserts the same expected values; the error
tests also assert that both clients word each failure identically.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netrun.models import close_clients
from netrun.models.factory import default_model_factory
from netrun.models.litellm_client import LitellmClient
from netrun.models.openai_client import OpenAIClient
from netrun.runtime.model import Completion, ModelClient, ModelError, Request
from netrun.spec.model import ModelSpec

from .fakes.llm_server import FakeLLM, Reply, ToolCall, tokens

KEY = "sk-conformance-5b7e21"
ENV = {"FAKE_KEY": KEY}
KINDS = ("litellm", "openai")
TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}} for n in ("lookup", "save")
]
# The history format of issue 14: an assistant message with tool calls, then the tool results.
HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "owls?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "owls"}'}}],
    },
    {"role": "tool", "tool_call_id": "call_9", "content": '{"found": "they hoot"}'},
]


def spec(base: str, **extra: Any) -> ModelSpec:
    return ModelSpec(id=extra.pop("id", "openai/fake"), api_base=base, api_key="${FAKE_KEY}", **extra)


def client(kind: str, model: ModelSpec) -> ModelClient:
    return LitellmClient(model, ENV) if kind == "litellm" else OpenAIClient(model, ENV)


def call(model: ModelClient, request: Request, on_text: Callable[[str], None] | None = None) -> Completion | ModelError:
    async def main() -> Completion | ModelError:
        try:
            return await model.complete(request, on_text)
        except ModelError as exc:
            return exc
        finally:
            await close_clients()

    return asyncio.run(main())


def request(**extra: Any) -> Request:
    return Request(**{"caller": "helper", "turn": 0, "messages": HISTORY, "tools": TOOLS, **extra})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_text_and_usage(kind: str, stream: bool, llm: FakeLLM) -> None:
    llm.push(Reply(text="Owls hoot at night."))
    deltas: list[str] = []
    done = call(client(kind, spec(llm.base_url)), request(), deltas.append if stream else None)
    assert isinstance(done, Completion), done
    assert done.text == "Owls hoot at night." and done.tool_calls == []
    sent = llm.requests[0]["messages"]
    assert (done.prompt_tokens, done.completion_tokens) == (tokens(json.dumps(sent, sort_keys=True)), tokens(done.text))
    assert done.model == "openai/fake" and done.seconds > 0
    if stream:  # one delta per streamed word, in order: text reaches on_text as it arrives
        assert deltas == ["Owls ", "hoot ", "at ", "night."]
    assert llm.requests[0].get("stream", False) is stream


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_parallel_tool_calls_keep_ids_and_arguments(kind: str, stream: bool, llm: FakeLLM) -> None:
    long = {"text": "a long argument streamed in many fragments " * 3}
    llm.push(Reply(text="Both.", tool_calls=[ToolCall("lookup", {"q": "owls"}, id="call_a"), ToolCall("save", long)]))
    done = call(client(kind, spec(llm.base_url)), request(), (lambda _t: None) if stream else None)
    assert isinstance(done, Completion), done
    assert [(c.id, c.name, json.loads(c.arguments)) for c in done.tool_calls] == [
        ("call_a", "lookup", {"q": "owls"}),
        ("call_1_1", "save", long),
    ]
    assert done.text == "Both." and done.completion_tokens > tokens("Both.")


@pytest.mark.parametrize("kind", KINDS)
def test_the_request_carries_messages_tools_choice_and_params(kind: str, llm: FakeLLM) -> None:
    llm.push(Reply(text="ok"), Reply(text="ok"))
    params = {"temperature": 0.2, "max_tokens": 50, "parallel_tool_calls": False}
    model = client(kind, spec(llm.base_url, params=params))
    choice = {"type": "function", "function": {"name": "save"}}
    assert isinstance(call(model, request(tool_choice=choice)), Completion)
    assert isinstance(call(model, request(tools=[], tool_choice="required"), lambda _t: None), Completion)
    plain, streamed = llm.requests
    assert plain["model"] == "fake" and plain["messages"] == sent_as(kind, HISTORY)
    assert plain["tools"] == TOOLS and plain["tool_choice"] == choice
    assert {k: plain[k] for k in params} == params and not plain.get("stream")
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    assert "tools" not in streamed and "tool_choice" not in streamed  # no tools: no choice either


def sent_as(kind: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each client sends of a history: the direct client sends it as it is; litellm
    drops an assistant message's ``"content": null`` (both are valid OpenAI)."""
    if kind == "openai":
        return messages
    return [{k: v for k, v in m.items() if not (k == "content" and v is None)} for m in messages]


ERRORS: dict[str, tuple[Reply | None, bool, float | None, str]] = {
    "429": (Reply(status=429, retry_after=2, error="Rate limit reached"), True, 2.0, "rate limited (HTTP 429, retry after 2 s)"),
    "quota": (Reply(status=429, error="You exceeded your current quota, check billing"), False, None, "quota exhausted"),
    "401": (Reply(status=401, error=f"Incorrect API key provided: {KEY}"), False, None, "the API key was rejected (HTTP 401)"),
    "400": (
        Reply(status=400, error="messages[3]: unknown role"),
        False,
        None,
        "BadRequestError (HTTP 400): messages[3]: unknown",
    ),
    "404": (Reply(status=404, error="no such model"), False, None, "NotFoundError (HTTP 404): no such model"),
    "500": (Reply(status=500, error="overloaded"), True, None, "InternalServerError (HTTP 500): overloaded"),
    "refused": (None, True, None, "cannot reach the model"),
    "timeout": (Reply(text="late", delay=3), True, None, "Timeout"),
}


def _fail(kind: str, case: str, llm: FakeLLM, stream: bool) -> ModelError:
    reply = ERRORS[case][0]
    base = "http://127.0.0.1:9/v1" if reply is None else llm.base_url  # nothing listens on port 9
    if reply is not None:
        llm.push(reply)
    failed = call(client(kind, spec(base)), request(timeout=0.5), (lambda _t: None) if stream else None)
    assert isinstance(failed, ModelError), failed
    return failed


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", ERRORS)
def test_errors_are_classified_and_worded_the_same(case: str, stream: bool, llm: FakeLLM) -> None:
    _, retriable, wait, words = ERRORS[case]
    seen = {kind: _fail(kind, case, llm, stream) for kind in KINDS}
    for kind, failed in seen.items():
        assert (failed.retriable, failed.retry_after) == (retriable, wait), (kind, str(failed))
        assert str(failed).startswith("model openai/fake: ") and words in str(failed), (kind, str(failed))
        assert KEY not in str(failed)
    if case != "timeout":  # litellm's timeout text is its own; the classification is the same
        assert str(seen["litellm"]) == str(seen["openai"])


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_key_variable_fails_before_any_request(kind: str, llm: FakeLLM) -> None:
    model = LitellmClient(spec(llm.base_url), {}) if kind == "litellm" else OpenAIClient(spec(llm.base_url), {})
    failed = call(model, request())
    assert isinstance(failed, ModelError) and not failed.retriable
    assert "environment variable FAKE_KEY is not set" in str(failed) and llm.count == 0


@pytest.mark.parametrize("kind", KINDS)
def test_fallbacks_are_tried_in_order(kind: str, llm: FakeLLM, tmp_path: Path) -> None:
    llm.push(Reply(status=500, error="down"), Reply(status=503, error="also down"), Reply(text="third time"))
    make = default_model_factory(tmp_path, ENV)
    model = make(spec(llm.base_url, api=kind, fallbacks=["openai/second", "openai/third"]))
    done = call(model, request(), lambda _t: None)
    assert isinstance(done, Completion) and done.text == "third time", done
    assert llm.models == ["fake", "second", "third"]
    llm.push(Reply(status=500, error="down"), Reply(status=400, error="refused"))
    failed = call(make(spec(llm.base_url, api=kind, fallbacks=["openai/second"])), request())
    assert isinstance(failed, ModelError) and failed.retriable  # the first may come back
    assert "InternalServerError (HTTP 500): down; then model openai/second: BadRequestError (HTTP 400): refused" in str(failed)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_both_clients_price_a_call_the_same(stream: bool, llm: FakeLLM) -> None:
    llm.push(Reply(text="priced " * 20), Reply(text="priced " * 20))
    costs = []
    for kind in KINDS:
        model = client(kind, spec(llm.base_url, id="openai/gpt-4o-mini"))
        done = call(model, request(messages=HISTORY[:2]), (lambda _t: None) if stream else None)
        assert isinstance(done, Completion), done
        costs.append(done.cost)
    assert costs[0] > 0 and costs[0] == pytest.approx(costs[1], rel=1e-9)
