"""`netrun run` against the fake OpenAI-compatible server over HTTP, through each model
client: litellm (``api: litellm``) and the direct OpenAI-compatible one (the default for
``openai/``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .fakes.llm_server import FakeLLM, Reply, ToolCall

NETWORK = """\
name: answers
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_KEY}}", api: {api}}}
state: {{answer: string}}
agents:
  helper: {{description: answers, system: "Answer {{{{ input }}}}", tools: [save]}}
router:
  rules: [{{if: state.answer, stop: true}}, {{if: "call_count < 3", agent: helper}}]
tools:
  save: {{parameters: {{text: {{type: string}}}}, state: {{answer: "{{{{ args.text }}}}"}}}}
"""

SCRIPT = [
    Reply(text="Let me think. ", tool_calls=[]),
    Reply(text="Owls hoot.", tool_calls=[ToolCall("save", {"text": "they hoot"})]),
]


@pytest.fixture
def llm():
    with FakeLLM() as server:
        yield server


@pytest.fixture(params=["litellm", "openai"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def network(tmp_path: Path, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch, api: str) -> Path:
    monkeypatch.setenv("FAKE_KEY", "sk-test-123")
    monkeypatch.setenv("NETRUN_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "answers.yaml"
    path.write_text(NETWORK.format(base=llm.base_url, api=api))
    return path


def test_progress_streams_and_the_run_completes(netrun_cli, network, llm) -> None:
    llm.set_script(SCRIPT)
    result = netrun_cli("run", str(network), "-i", "owls?")
    assert result.exit_code == 0, result.output
    assert "│ Let me think." in result.output
    assert "⚙ save(" in result.output and "✓ done in 2 turns" in result.output
    assert llm.count == 2
    assert all(r.get("stream") for r in llm.requests)  # streamed, as the terminal shows it
    assert "sk-test-123" not in result.output


def test_a_failing_inference_is_retried_as_a_step(netrun_cli, network, llm) -> None:
    llm.set_script([Reply(status=500, error="boom"), *SCRIPT])
    result = netrun_cli("run", str(network), "-i", "owls?", "--json")
    assert json.loads(result.output)["status"] == "completed", result.output
    assert llm.count == 3  # one failure, then the two calls: the SDK's own retries are off


def test_an_unreachable_model_fails_clearly(netrun_cli, tmp_path, monkeypatch, api) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    monkeypatch.setenv("NETRUN_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "answers.yaml"
    path.write_text(NETWORK.format(base="http://127.0.0.1:9/v1", api=api))  # nothing listens on port 9
    result = netrun_cli("run", str(path), "-i", "owls?")
    assert result.exit_code == 1
    assert "failed: model openai/fake: cannot reach the model" in result.output
    assert "Traceback" not in result.output


def test_a_missing_api_key_fails_clearly(netrun_cli, network, llm, monkeypatch) -> None:
    monkeypatch.delenv("FAKE_KEY")
    result = netrun_cli("run", str(network), "-i", "owls?")
    assert result.exit_code == 1
    assert "failed: model openai/fake: environment variable FAKE_KEY is not set" in result.output
    assert llm.count == 0


def test_record_then_replay_offline_and_a_mismatch(netrun_cli, network, llm, tmp_path) -> None:
    llm.set_script(SCRIPT)
    replies = tmp_path / "answers.replies.yaml"
    recorded = json.loads(netrun_cli("run", str(network), "-i", "owls?", "--record", str(replies), "--json").output)
    assert yaml.safe_load(replies.read_text())["helper"][1]["tool_calls"] == [{"name": "save", "args": {"text": "they hoot"}}]
    llm.stop()  # offline from here on
    replayed = json.loads(netrun_cli("run", str(network), "-i", "owls?", "--replay", str(replies), "--json").output)
    assert replayed["result"]["state"] == recorded["result"]["state"] == {"answer": "they hoot"}
    assert replayed["result"]["route"] == recorded["result"]["route"]
    # The network changed since the recording: the replay says where it diverges.
    network.write_text(network.read_text().replace("tools: [save]", "tools: []"))
    result = netrun_cli("run", str(network), "-i", "owls?", "--replay", str(replies))
    assert result.exit_code == 1
    assert "replay mismatch at helper call #1: recorded with tools save, now offered (none)" in result.output
    llm.start = lambda: llm  # already stopped; the fixture's exit must not fail
