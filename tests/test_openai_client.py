"""The direct OpenAI-compatible path: which models take it, where they are sent with which
key, cost limits priced without litellm, and ``netrun run`` never importing litellm for
them (as a real subprocess against the fake server)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
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

from .fakes.llm_server import FakeLLM, Reply, ToolCall

REPO = Path(__file__).resolve().parents[1]
REQUEST = Request("helper", 0, [{"role": "user", "content": "hi"}], [])


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


@pytest.fixture
def llm(server: FakeLLM) -> FakeLLM:
    server.reset()
    return server


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


def test_concurrent_calls_spread_over_clients_of_at_most_per_client_calls() -> None:
    """httpcore's pool costs O(N^2) in the calls one client carries at once (200 concurrent
    runs burned 12 s of CPU on 1,000 calls): a lease takes a client with room, else opens one;
    a client that went idle is leased again (its connections kept alive)."""
    import contextlib

    from netrun.models import close_clients
    from netrun.models.http_pool import PER_CLIENT, lease

    async def scenario() -> tuple[list[int], bool, bool]:
        async with contextlib.AsyncExitStack() as stack:
            held = [await stack.enter_async_context(lease("http://127.0.0.1:9/v1")) for _ in range(2 * PER_CLIENT + 3)]
            first = held[0]
        async with lease("http://127.0.0.1:9/v1") as again:
            reused = again is first
        async with lease("https://example.invalid/v1") as secure:
            apart = secure is not first  # TLS endpoints have their own clients
        await close_clients()
        counts: dict[int, int] = {}
        for client in held:
            counts[id(client)] = counts.get(id(client), 0) + 1
        return sorted(counts.values()), reused, apart

    counts, reused, apart = asyncio.run(scenario())
    assert counts == [3, PER_CLIENT, PER_CLIENT] and reused and apart
