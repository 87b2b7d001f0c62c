"""The direct OpenAI-compatible path: which models take it, where they are sent with which
key, cost limits priced without litellm, and ``netrun run`` never importing litellm for
them (as a real subprocess against the fake server)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from netrun.models import close_clients
from netrun.models.factory import default_model_factory
from netrun.models.litellm_client import LitellmClient
from netrun.models.openai_client import OpenAIClient, _events
from netrun.models.openai_compat import PROVIDERS
from netrun.providers import LITELLM_PROVIDERS
from netrun.runtime.model import Completion, ModelClient, ModelError, Request
from netrun.spec.model import ModelSpec

from .fakes.http_server import FakeHttpServer
from .fakes.http_server import Reply as HttpReply
from .fakes.llm_server import FakeLLM, Reply, ToolCall

REPO = Path(__file__).resolve().parents[1]
REQUEST = Request("helper", 0, [{"role": "user", "content": "hi"}], [])


def call(model: ModelClient) -> Completion | ModelError:
    async def main() -> Completion | ModelError:
        try:
            return await model.complete(REQUEST)
        except ModelError as exc:
            return exc
        finally:
            await close_clients()

    return asyncio.run(main())


def make(spec: dict[str, Any], tmp_path: Path, environ: dict[str, str] | None = None) -> ModelClient:
    return default_model_factory(tmp_path, environ or {})(ModelSpec(**spec))


def test_which_models_are_called_directly(tmp_path: Path) -> None:
    assert set(PROVIDERS) <= LITELLM_PROVIDERS  # every prefix of the table is one litellm knows
    for model_id in ("openai/gpt-4o-mini", "groq/llama-3.3-70b", "openrouter/openai/gpt-4o", "hosted_vllm/llama"):
        assert isinstance(make({"id": model_id}, tmp_path), OpenAIClient), model_id
    assert isinstance(make({"id": "anthropic/claude-sonnet-4"}, tmp_path), LitellmClient)
    assert isinstance(make({"id": "openai/gpt-4o", "api": "litellm"}, tmp_path), LitellmClient)
    assert isinstance(make({"id": "ollama/llama3", "api": "openai", "api_base": "http://127.0.0.1:1/v1"}, tmp_path), OpenAIClient)


def test_the_providers_variables_give_the_endpoint_and_the_key(llm: FakeLLM, tmp_path: Path) -> None:
    llm.push(Reply(text="one"), Reply(text="two"), Reply(text="three"), Reply(text="four"))
    env = {"OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "sk-openai-1"}
    assert isinstance(call(make({"id": "openai/gpt-4o-mini"}, tmp_path, env)), Completion)
    env = {"GROQ_API_BASE": llm.base_url, "GROQ_API_KEY": "gsk-2"}
    assert isinstance(call(make({"id": "groq/llama-3.3-70b-versatile"}, tmp_path, env)), Completion)
    # A self-hosted server with no key variable gets litellm's placeholder key.
    assert isinstance(call(make({"id": "hosted_vllm/meta/llama", "api_base": llm.base_url}, tmp_path)), Completion)
    # The model's own api_key wins over the provider's variable.
    env = {"GROQ_API_BASE": llm.base_url, "GROQ_API_KEY": "gsk-2", "MINE": "gsk-mine"}
    assert isinstance(call(make({"id": "groq/llama", "api_key": "${MINE}"}, tmp_path, env)), Completion)
    assert llm.models == ["gpt-4o-mini", "llama-3.3-70b-versatile", "meta/llama", "llama"]
    keys = [h["authorization"] for h in llm.headers]
    assert keys == ["Bearer sk-openai-1", "Bearer gsk-2", "Bearer fake-api-key", "Bearer gsk-mine"]


def test_a_missing_endpoint_or_key_fails_at_once(llm: FakeLLM, tmp_path: Path) -> None:
    failed = call(make({"id": "hosted_vllm/llama"}, tmp_path))
    assert isinstance(failed, ModelError) and not failed.retriable
    assert str(failed) == "model hosted_vllm/llama: no endpoint: set model.api_base or HOSTED_VLLM_API_BASE"
    failed = call(make({"id": "groq/llama", "api_base": llm.base_url}, tmp_path))
    assert isinstance(failed, ModelError) and not failed.retriable
    assert "missing API key for groq (set model.api_key, or the provider's environment variable" in str(failed)
    assert llm.count == 0


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def _collect(*lines: str) -> list[dict[str, Any]]:
    return [chunk async for chunk in _events(_lines(*lines))]


def test_server_sent_events_are_framed_as_the_standard_says() -> None:
    chunks = asyncio.run(
        _collect(
            ": a comment, then an event split over two data lines",
            'data: {"a":',
            "data: 1}",
            "",
            "event: ignored-field",
            'data:{"b": 2}',
            "",
            "",
            'data: {"c": 3}',  # the last event, not ended by a blank line
        )
    )
    assert chunks == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert asyncio.run(_collect('data: {"a": 1}', "", "data: [DONE]", "", 'data: {"late": 1}', "")) == [{"a": 1}]


NETWORK = """\
name: priced
model: {{id: openai/gpt-4o-mini, api_base: "{base}", api_key: "${{FAKE_KEY}}"}}
limits: {{cost: 0.0005}}
state: {{n: number}}
agents:
  helper: {{description: counts, system: "Count", tools: [bump]}}
router:
  rules: [{{if: "call_count < 50", agent: helper}}]
tools:
  bump: {{parameters: {{}}, state: {{n: "{{{{ (state.n or 0) + 1 }}}}"}}}}
"""


def _run(network: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAKE_KEY": "sk-test-1", "NETRUN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    args = [sys.executable, *flags, "-m", "netrun", "run", str(network), "-i", "go", "--json"]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_netrun_run_calls_an_openai_model_without_importing_litellm_and_stops_at_its_cost_limit(
    llm: FakeLLM, tmp_path: Path
) -> None:
    # Each call: ~400 prompt tokens of gpt-4o-mini's price; the limit is passed after a few.
    llm.fallback = lambda body: Reply(text="more " * 200, tool_calls=[ToolCall("bump", {})])
    try:
        network = tmp_path / "priced.yaml"
        network.write_text(NETWORK.format(base=llm.base_url))
        done = _run(network, tmp_path, "-X", "importtime")
    finally:
        llm.fallback = None
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["status"] == "completed" and result["result"]["stop_reason"] == "cost", result
    assert 1 < llm.count < 50 and result["result"]["usage"]["cost"] >= 0.0005
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "netrun.models.openai_client" in imported  # the direct client made the calls
    assert not {m for m in imported if m.split(".")[0] in ("litellm", "openai")}


def _answered_by(*replies: HttpReply, stream: bool = False, key: str = "sk-abcdefghijklmnop") -> tuple[Any, list[Any]]:
    """One call of the direct client against a scripted server: the completion or the
    ModelError it raised, and the requests the server saw (on every path)."""
    with FakeHttpServer() as server:
        server.script("/v1/chat/completions", *replies)
        server.script("*", HttpReply(200, {"choices": [{"message": {"content": "elsewhere"}}]}))
        spec = ModelSpec(id="openai/m", api_base=f"{server.url}/v1", api_key="${K}")
        client = OpenAIClient(spec, {"K": key})

        async def call() -> Any:
            try:
                return await client.complete(
                    Request("a", 0, [{"role": "user", "content": "hi"}], []), (lambda t: None) if stream else None
                )
            except ModelError as exc:
                return exc
            finally:
                await close_clients()

        return asyncio.run(call()), list(server.hits)


def _sse(*events: Any) -> HttpReply:
    body = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return HttpReply(200, body.encode(), headers={"Content-Type": "text/event-stream"})


def test_a_redirect_is_not_followed_with_the_key() -> None:
    """A 3xx from the endpoint is an error: following it would send the Authorization
    header (the key) wherever the answer points."""
    answer, hits = _answered_by(HttpReply(307, b"", headers={"Location": "/elsewhere"}))
    assert isinstance(answer, ModelError) and not answer.retriable
    assert [h.path for h in hits] == ["/v1/chat/completions"]


def test_an_error_text_is_redacted_before_it_is_cut() -> None:
    key = "sk-" + "k" * 40
    answer, _ = _answered_by(HttpReply(200, ("x" * 190 + key).encode()), key=key)
    assert isinstance(answer, ModelError) and "sk-k" not in str(answer) and "***" in str(answer)


@pytest.mark.parametrize(
    ("reply", "stream"),
    [
        (HttpReply(200, {"choices": ["oops"]}), False),
        (HttpReply(200, {"choices": [{"message": {"content": "x", "tool_calls": [{"function": 3}]}}]}), False),
        (_sse({"choices": [{"delta": {"tool_calls": "nope"}}]}, "[DONE]"), True),
        (HttpReply(200, {"choices": [{"message": {"content": "not streamed"}}]}), True),  # ignored `stream`
    ],
)
def test_an_answer_of_the_wrong_shape_is_a_model_error(reply: HttpReply, stream: bool) -> None:
    """Not a Python error out of the client: a ModelError, so a fallback may answer and the
    run's error names the model."""
    answer, _ = _answered_by(reply, stream=stream)
    assert isinstance(answer, ModelError), answer
    assert "model openai/m" in str(answer)


def test_a_streamed_tool_call_takes_its_last_name_and_a_missing_index_is_0() -> None:
    """Some servers repeat the name in every delta (litellm's chunk builder keeps the last)."""
    answer, _ = _answered_by(
        _sse(
            {"choices": [{"delta": {"tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": '{"q"'}}]}}]},
            {"choices": [{"delta": {"tool_calls": [{"function": {"name": "lookup", "arguments": ": 1}"}}]}}]},
            "[DONE]",
        ),
        stream=True,
    )
    assert not isinstance(answer, ModelError), answer
    (call,) = answer.tool_calls
    assert (call.id, call.name, call.arguments) == ("c1", "lookup", '{"q": 1}')


def test_a_fallback_of_another_provider_gets_its_own_endpoint_and_key() -> None:
    """The model's key and api_base stay with its provider: a groq fallback of an openai
    model is sent to groq's endpoint with groq's key (the model's would leak to it)."""
    from netrun.models.factory import default_model_factory

    with FakeHttpServer() as first, FakeHttpServer() as second:
        first.script("/v1/chat/completions", HttpReply(500, {"error": {"message": "down"}}))
        second.script("/v1/chat/completions", HttpReply(200, {"choices": [{"message": {"content": "from groq"}}]}))
        environ = {"K": "sk-openai-secret", "GROQ_API_KEY": "gsk-groq", "GROQ_API_BASE": f"{second.url}/v1"}
        spec = ModelSpec(
            id="openai/a", api_base=f"{first.url}/v1", api_key="${K}", fallbacks=["groq/b"], params={"temperature": 0}
        )
        client = default_model_factory(Path("."), environ)(spec)

        async def call() -> Completion:
            try:
                return await client.complete(Request("a", 0, [{"role": "user", "content": "hi"}], []))
            finally:
                await close_clients()

        assert asyncio.run(call()).text == "from groq"
        (hit,) = second.hits
    assert hit.headers["authorization"] == "Bearer gsk-groq"
    assert hit.json()["model"] == "b" and hit.json()["temperature"] == 0  # its parameters go along


def test_params_reach_the_endpoint_as_openai_s_api_takes_them() -> None:
    """max_tokens is max_completion_tokens for OpenAI's reasoning models (they refuse the
    former; litellm renames it too); extra_headers and extra_body are merged in, not sent."""
    with FakeHttpServer() as server:
        server.script("/v1/chat/completions", HttpReply(200, {"choices": [{"message": {"content": "ok"}}]}))
        for model in ("o3-mini", "gpt-4o"):
            spec = ModelSpec(
                id=f"openai/{model}",
                api_base=f"{server.url}/v1",
                params={"max_tokens": 5, "extra_headers": {"X-Team": "ops"}, "extra_body": {"user": "u1"}},
            )

            async def call(spec: ModelSpec = spec) -> Completion:
                try:
                    return await OpenAIClient(spec, {"OPENAI_API_KEY": "sk-x"}).complete(
                        Request("a", 0, [{"role": "user", "content": "hi"}], [])
                    )
                finally:
                    await close_clients()

            assert asyncio.run(call()).text == "ok"
        reasoning, chat = (h.json() for h in server.hits)
        headers = server.hits[0].headers
    assert reasoning["max_completion_tokens"] == 5 and "max_tokens" not in reasoning
    assert chat["max_tokens"] == 5 and "max_completion_tokens" not in chat
    assert reasoning["user"] == "u1" and "extra_body" not in reasoning and "extra_headers" not in reasoning
    assert headers["x-team"] == "ops"


def test_openai_s_organization_and_project_are_sent_as_the_sdk_sends_them() -> None:
    with FakeHttpServer() as server:
        server.script("/v1/chat/completions", HttpReply(200, {"choices": [{"message": {"content": "ok"}}]}))
        environ = {"OPENAI_API_KEY": "sk-x", "OPENAI_ORG_ID": "org-1", "OPENAI_PROJECT_ID": "proj-2"}

        async def call() -> Completion:
            try:
                spec = ModelSpec(id="openai/gpt-4o", api_base=f"{server.url}/v1")
                return await OpenAIClient(spec, environ).complete(Request("a", 0, [{"role": "user", "content": "hi"}], []))
            finally:
                await close_clients()

        assert asyncio.run(call()).text == "ok"
        (hit,) = server.hits
    assert hit.headers["openai-organization"] == "org-1" and hit.headers["openai-project"] == "proj-2"


def test_a_429_whose_code_says_insufficient_quota_is_permanent() -> None:
    """OpenAI marks billing 429s by ``code`` (the message may say nothing of quota): waiting
    does not help, so the run is not retried."""
    body = {"error": {"message": "Request limit reached", "type": "insufficient_quota", "code": "insufficient_quota"}}
    answer, _ = _answered_by(HttpReply(429, body, headers={"retry-after": "1"}))
    assert isinstance(answer, ModelError) and not answer.retriable and "quota exhausted" in str(answer)


def test_the_direct_client_goes_through_the_environment_s_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``HTTP_PROXY`` and ``NO_PROXY`` are honoured as httpx and the openai SDK honour them
    (netrun looks them up itself, once per endpoint for a loop's session, instead of
    aiohttp's thread hop per request): the proxy here answers for an endpoint that does not resolve,
    so the call succeeds only through it; with ``NO_PROXY`` naming that host it goes direct."""
    answer = {"choices": [{"message": {"role": "assistant", "content": "via the proxy"}, "finish_reason": "stop"}]}
    with FakeHttpServer() as proxy:
        proxy.script("*", HttpReply(200, answer))
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        spec = {"id": "openai/fake", "api_base": "http://model.invalid/v1", "api_key": "${K}"}
        done = call(make(spec, tmp_path, {"K": "sk-test"}))
        assert isinstance(done, Completion) and done.text == "via the proxy"
        assert [h.target for h in proxy.hits] == ["http://model.invalid/v1/chat/completions"]
        monkeypatch.setenv("NO_PROXY", "model.invalid")
        assert isinstance(call(make(spec, tmp_path, {"K": "sk-test"})), ModelError)  # direct: the host does not resolve
        assert len(proxy.hits) == 1


def test_a_loop_that_ends_without_close_clients_closes_its_session(recwarn: pytest.WarningsRecorder) -> None:
    """Code that calls a model in its own ``asyncio.run`` and never calls ``close_clients``
    (a script on the engine, a test) does not leave the loop's session and its connections
    open: they are closed as the loop shuts down, not warned of when collected."""
    import gc

    from netrun.models.http_pool import session

    answer = {"choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]}
    with FakeHttpServer() as server:
        server.script("*", HttpReply(200, answer))
        client = OpenAIClient(ModelSpec(id="openai/m", api_base=f"{server.url}/v1", api_key="${K}"), {"K": "sk-test"})

        async def main() -> tuple[Completion, Any]:
            return await client.complete(REQUEST), session()

        done, used = asyncio.run(main())
    assert done.text == "hello"
    assert used.closed
    del used
    gc.collect()
    assert not [w for w in recwarn if "Unclosed" in str(w.message)], [str(w.message) for w in recwarn]


def test_close_clients_right_after_the_session_is_made_leaves_no_failed_task(caplog: pytest.LogCaptureFixture) -> None:
    """The session's closer starts in a task of its own: closed before that task ran, the
    task must not fail later ("Task exception was never retrieved")."""
    import gc

    from netrun.models.http_pool import session

    async def main() -> Any:
        made = session()
        await close_clients()
        return made

    with caplog.at_level("ERROR", logger="asyncio"):
        closed = asyncio.run(main())
        gc.collect()
    assert closed.closed
    assert not [r for r in caplog.records if r.name == "asyncio"], [r.getMessage() for r in caplog.records]
