"""Traces (netrun/tracing): runs of `netrun run` and `netrun serve` as real subprocesses,
exporting over OTLP/HTTP to a real receiver (tests/otlp_receiver.py) that decodes the
protobuf; the model is the fake OpenAI-compatible server, the HTTP tool's far side a real
HTTP server that records the headers it got."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from netrun import tracing

from .fakes.http_server import FakeHttpServer, Hit
from .fakes.http_server import Reply as HttpReply
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.server_thread import free_port
from .otlp_receiver import OtlpReceiver, Received

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-TRACE-4242"

NETWORK = """\
name: traced
state: {{done: {{type: boolean}}}}
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_KEY}}", params: {{temperature: 0.2, max_tokens: 64}}}}
agents:
  helper: {{description: Looks things up, system: "Help with the lookup.", tools: [lookup, broken, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: helper}}]
tools:
  lookup:
    description: Looks a thing up.
    http: {{method: GET, url: "{tool}/lookup", headers: {{Authorization: "Bearer ${{SECRET_TOKEN}}"}}, retries: 0}}
    parameters: {{q: {{type: string}}}}
  broken:
    description: Always fails.
    http: {{method: GET, url: "{tool}/broken", retries: 0}}
    parameters: {{}}
  finish:
    parameters: {{answer: {{type: string}}}}
    state: {{done: true}}
"""

WAITING = """\
name: waiting
state: {{done: {{type: boolean}}}}
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_KEY}}"}}
agents:
  helper: {{description: Asks a human, system: "Ask.", tools: [ask, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: helper}}]
tools:
  ask:
    wait_for_event: {{event: app/answered, timeout: 1h}}
    parameters: {{question: {{type: string}}}}
  finish:
    parameters: {{answer: {{type: string}}}}
    state: {{done: true}}
"""


def _script() -> list[Reply]:
    """lookup (whose server echoes the secret), broken (a 500), then a model that repeats the
    secret, then finish."""
    return [
        Reply(tool_calls=[ToolCall("lookup", {"q": "gear"}, id="call_lookup"), ToolCall("broken", {})]),
        Reply(text=f"The key is {SECRET}.", tool_calls=[ToolCall("finish", {"answer": f"found {SECRET}"})]),
    ]


@contextmanager
def serve_far_side() -> Iterator[FakeHttpServer]:
    """The HTTP tools' far side: /lookup echoes the Authorization header it got, /broken is a 500."""
    with FakeHttpServer() as server:
        server.script("/lookup", lambda hit: HttpReply(200, {"item": "gear", "auth": hit.headers.get("authorization", "")}))
        server.script("/broken", HttpReply(500, {"error": "down"}))
        yield server


@pytest.fixture(scope="module")
def far_side() -> Iterator[FakeHttpServer]:
    with serve_far_side() as server:
        yield server


def _env(tmp_path: Path, receiver: OtlpReceiver | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"FAKE_KEY": "sk-test", "SECRET_TOKEN": SECRET, "NETRUN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    if receiver is not None:
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "tests"}
    return env | extra


def _netrun(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netrun", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )


def _run_traced(tmp_path: Path, llm: FakeLLM, far_side: FakeHttpServer, receiver: OtlpReceiver, **extra: str) -> list[Received]:
    """`netrun run` of NETWORK; the spans of its one trace."""
    llm.reset(*_script())
    network = tmp_path / "traced.yaml"
    network.write_text(NETWORK.format(base=llm.base_url, tool=far_side.url))
    done = _netrun(tmp_path, _env(tmp_path, receiver, **extra), "run", str(network), "-i", "find gear", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = json.loads(done.stdout)["run_id"]

    def complete(spans: list[Received]) -> bool:  # spans arrive as the batch processor sends them; the run's ends last
        return any(s.name == "invoke_workflow traced" and s.attributes.get("netrun.run_id") == run_id for s in spans)

    spans = receiver.wait_for(complete)  # flushed before the process exited: already here
    root = next(s for s in spans if s.name == "invoke_workflow traced" and s.attributes["netrun.run_id"] == run_id)
    return receiver.of_trace(root.trace_id)


def _one(spans: list[Received], name: str) -> Received:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def test_a_run_is_one_trace_of_workflow_agent_chat_and_tool_spans(
    tmp_path: Path, llm: FakeLLM, far_side: FakeHttpServer, receiver: OtlpReceiver
) -> None:
    spans = _run_traced(tmp_path, llm, far_side, receiver)
    run = _one(spans, "invoke_workflow traced")
    assert run.parent_id == "" and run.resource["service.name"] == "tests"
    assert run.attributes["gen_ai.operation.name"] == "invoke_workflow" and run.attributes["netrun.status"] == "completed"
    agents = [s for s in spans if s.name == "invoke_agent helper"]
    assert len(agents) == 2 and all(a.parent_id == run.span_id for a in agents)
    assert agents[0].attributes["gen_ai.agent.description"] == "Looks things up"
    chats = [s for s in spans if s.name == "chat fake"]
    assert len(chats) == 2 and {c.parent_id for c in chats} == {a.span_id for a in agents}
    first = min(chats, key=lambda s: s.start)
    sent = llm.requests[0]
    assert first.attributes["gen_ai.provider.name"] == "openai" and first.attributes["gen_ai.request.model"] == "fake"
    assert first.attributes["gen_ai.response.model"] == "fake"
    assert first.attributes["gen_ai.request.temperature"] == 0.2 and first.attributes["gen_ai.request.max_tokens"] == 64
    assert first.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    from .fakes.llm_server import tokens

    assert first.attributes["gen_ai.usage.input_tokens"] == tokens(json.dumps(sent["messages"])) > 0
    assert first.attributes["gen_ai.usage.output_tokens"] > 0
    lookup, broken = _one(spans, "execute_tool lookup"), _one(spans, "execute_tool broken")
    earliest = min(agents, key=lambda s: s.start)
    assert lookup.parent_id == broken.parent_id == earliest.span_id
    assert lookup.attributes["gen_ai.tool.name"] == "lookup" and lookup.attributes["gen_ai.tool.type"] == "function"
    assert lookup.attributes["gen_ai.tool.description"] == "Looks a thing up." and not lookup.error
    assert lookup.attributes["gen_ai.tool.call.id"] == "call_lookup"
    # A failing tool: an error status with its (redacted) message; the run is not failed by it.
    assert broken.error and "500" in broken.status_message and broken.attributes["error.type"] == "tool_error"
    assert not run.error
    # Routing decisions are events of the run's span.
    routed = [attrs for name, attrs in run.events if name == "netrun.routed"]
    assert [r.get("netrun.agent") for r in routed] == ["helper", "helper", None] and routed[-1]["netrun.how"]
    # The HTTP tool's server got the execute_tool span's context.
    hit: Hit = far_side.hits_for("/lookup")[-1]
    assert hit.headers["traceparent"].startswith(f"00-{run.trace_id}-{lookup.span_id}-")
    # Content is not recorded by default, and the secret is nowhere.
    assert not any(
        k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.tool.call.a", "gen_ai.tool.call.r"))
        for s in spans
        for k in s.attributes
    )
    assert SECRET not in repr(spans)


def test_content_is_recorded_when_enabled_and_redacted(
    tmp_path: Path, llm: FakeLLM, far_side: FakeHttpServer, receiver: OtlpReceiver
) -> None:
    spans = _run_traced(tmp_path, llm, far_side, receiver, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true")
    chats = sorted((s for s in spans if s.name == "chat fake"), key=lambda s: s.start)
    inputs = json.loads(chats[1].attributes["gen_ai.input.messages"])
    assert inputs[0] == {"role": "user", "parts": [{"type": "text", "content": "find gear"}]}
    assert "Help with the lookup." in chats[1].attributes["gen_ai.system_instructions"]
    output = json.loads(chats[1].attributes["gen_ai.output.messages"])[0]
    assert output["role"] == "assistant" and output["parts"][0]["content"] == "The key is ***."
    lookup = _one(spans, "execute_tool lookup")
    assert json.loads(lookup.attributes["gen_ai.tool.call.arguments"]) == {"q": "gear"}
    assert '"Bearer ***"' in lookup.attributes["gen_ai.tool.call.result"], lookup.attributes  # the tool echoed it
    assert "Bearer ***" in chats[1].attributes["gen_ai.input.messages"]  # and the model saw it redacted
    assert SECRET not in repr(spans)


def test_off_without_the_environment_imports_no_opentelemetry(tmp_path: Path, llm: FakeLLM, far_side: FakeHttpServer) -> None:
    llm.reset(*_script())
    network = tmp_path / "traced.yaml"
    network.write_text(NETWORK.format(base=llm.base_url, tool=far_side.url))
    code = (
        "import sys, runpy\nsys.argv = ['netrun', 'run', sys.argv[1], '-i', 'x', '--json']\n"
        "import atexit\natexit.register(lambda: print('OTEL' if any(m.startswith('opentelemetry') for m in sys.modules)"
        " else 'NO-OTEL', file=sys.stderr))\nrunpy.run_module('netrun', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(network)],
        capture_output=True,
        text=True,
        env=_env(tmp_path, None),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.strip().endswith("NO-OTEL"), done.stderr[-500:]
    assert "traceparent" not in far_side.hits_for("/lookup")[-1].headers


def test_an_endpoint_that_is_down_neither_fails_nor_holds_a_run(tmp_path: Path, llm: FakeLLM, far_side: FakeHttpServer) -> None:
    llm.reset(*_script())
    network = tmp_path / "traced.yaml"
    network.write_text(NETWORK.format(base=llm.base_url, tool=far_side.url))
    env = _env(tmp_path, None, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}", OTEL_BSP_SCHEDULE_DELAY="50")
    import time

    started = time.monotonic()
    done = _netrun(tmp_path, env, "run", str(network), "-i", "x", "--json")
    took = time.monotonic() - started
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "completed", done.stderr[-2000:]
    assert took < 10, took  # at most ~2 s of flushing at exit; the exporter alone would back off for 10 s more


def test_a_run_resumed_after_a_wait_stays_in_its_trace(tmp_path: Path, llm: FakeLLM, receiver: OtlpReceiver) -> None:
    llm.reset(
        Reply(tool_calls=[ToolCall("ask", {"question": "name?"})]),
        Reply(tool_calls=[ToolCall("finish", {"answer": "ok"})]),
    )
    network = tmp_path / "waiting.yaml"
    network.write_text(WAITING.format(base=llm.base_url))
    env = _env(tmp_path, receiver)
    first = _netrun(tmp_path, env, "run", str(network), "-i", "hi", "--json")
    run_id = json.loads(first.stdout)["run_id"]
    assert json.loads(first.stdout)["status"] == "waiting", first.stderr[-2000:]
    sent = _netrun(tmp_path, env, "send", "app/answered", "--run", run_id, "--data", '{"name": "Cy"}')
    assert sent.returncode == 0, sent.stderr[-2000:]

    def both(spans: list[Received]) -> bool:
        ours = [s for s in spans if s.name == "invoke_workflow waiting" and s.attributes.get("netrun.run_id") == run_id]
        return len(ours) == 2

    spans = receiver.wait_for(both)
    executions = sorted(
        (s for s in spans if s.name == "invoke_workflow waiting" and s.attributes["netrun.run_id"] == run_id),
        key=lambda s: s.start,
    )
    assert executions[0].trace_id == executions[1].trace_id
    assert not executions[0].error, executions[0].attributes  # parking to wait is no failure
    assert executions[1].attributes["netrun.status"] == "completed"
    chats = [s for s in receiver.of_trace(executions[0].trace_id) if s.name == "chat fake"]
    assert len(chats) == 2  # the resumed execution re-read the first call: not traced twice


# -- units: what needs no process -----------------------------------------------------------


def test_the_switches_of_the_environment() -> None:
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    resource = tracing.resource_attributes({"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=a%20b"})
    assert resource["service.name"] == "netrun" and resource["team"] == "a b"
    assert tracing.resource_attributes({"OTEL_SERVICE_NAME": "ops"})["service.name"] == "ops"


def test_the_attribute_names_are_the_semantic_conventions_own() -> None:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as g

    from netrun.tracing import semconv

    for name in ("OPERATION_NAME", "PROVIDER_NAME", "REQUEST_MODEL", "RESPONSE_MODEL", "AGENT_NAME", "TOOL_NAME"):
        assert getattr(g, f"GEN_AI_{name}") in vars(semconv).values(), name
    pairs = {
        semconv.INPUT_TOKENS: g.GEN_AI_USAGE_INPUT_TOKENS,
        semconv.OUTPUT_TOKENS: g.GEN_AI_USAGE_OUTPUT_TOKENS,
        semconv.FINISH_REASONS: g.GEN_AI_RESPONSE_FINISH_REASONS,
        semconv.TOOL_CALL_ID: g.GEN_AI_TOOL_CALL_ID,
        semconv.TOOL_TYPE: g.GEN_AI_TOOL_TYPE,
        semconv.TOOL_DESCRIPTION: g.GEN_AI_TOOL_DESCRIPTION,
        semconv.TOOL_ARGUMENTS: g.GEN_AI_TOOL_CALL_ARGUMENTS,
        semconv.TOOL_RESULT: g.GEN_AI_TOOL_CALL_RESULT,
        semconv.INPUT_MESSAGES: g.GEN_AI_INPUT_MESSAGES,
        semconv.OUTPUT_MESSAGES: g.GEN_AI_OUTPUT_MESSAGES,
        semconv.SYSTEM_INSTRUCTIONS: g.GEN_AI_SYSTEM_INSTRUCTIONS,
        semconv.AGENT_DESCRIPTION: g.GEN_AI_AGENT_DESCRIPTION,
        semconv.WORKFLOW_NAME: g.GEN_AI_WORKFLOW_NAME,
    }
    assert all(ours == theirs for ours, theirs in pairs.items()), pairs
    assert set(semconv.OPERATIONS.values()) <= {v.value for v in g.GenAiOperationNameValues}
    assert semconv.provider_and_model("anthropic/claude-3") == ("anthropic", "claude-3")
    assert semconv.provider_and_model("bedrock/x") == ("aws.bedrock", "x")


@pytest.mark.parametrize("missing", ["opentelemetry", "opentelemetry.exporter"])
def test_without_the_otel_extra_one_warning_line_and_the_run_goes_on(
    tmp_path: Path, llm: FakeLLM, far_side: FakeHttpServer, missing: str
) -> None:
    """The whole extra missing, or only its exporter (the SDK there): one line, never a failed run."""
    llm.reset(*_script())
    network = tmp_path / "traced.yaml"
    network.write_text(NETWORK.format(base=llm.base_url, tool=far_side.url))
    code = (  # a module as if not installed: its import fails as a missing module does
        f"import sys, runpy\nsys.modules[{missing!r}] = None\n"
        "sys.argv = ['netrun', 'run', sys.argv[1], '-i', 'x', '--json']\nrunpy.run_module('netrun', run_name='__main__')\n"
    )
    env = _env(tmp_path, None, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    done = subprocess.run(
        [sys.executable, "-c", code, str(network)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "completed", done.stderr[-3000:]
    warnings = [line for line in done.stderr.splitlines() if "otel" in line]
    assert len(warnings) == 1 and "pip install 'netrun-agents[otel]'" in warnings[0], done.stderr[-2000:]


def test_a_completion_keeps_the_providers_finish_reason_and_reads_old_journals() -> None:
    from netrun.runtime.model import Completion

    old = {"text": "hi", "tool_calls": [], "usage": {"prompt": 1, "completion": 2}, "cost": 0.0, "seconds": 0.1, "model": "m"}
    assert Completion.from_json(old).finish_reason == "" and Completion.from_json(old).to_json() == old
    assert Completion.from_json({**old, "finish_reason": "length"}).to_json()["finish_reason"] == "length"


def test_an_llm_routers_reason_is_content_recorded_only_when_enabled() -> None:
    from netrun.tracing.semconv import event_attributes

    said = {"iteration": 2, "agent": "billing", "how": "llm: the customer wrote card 4111-1111"}
    assert event_attributes(said)["netrun.how"] == "llm"
    assert event_attributes(said, capture_content=True)["netrun.how"] == said["how"]
    assert event_attributes({"how": "llm: finish: all done, key sk-1"})["netrun.how"] == "llm: finish"
    for own in ("llm", "llm: finish", "llm: no valid agent after 3 attempts", "rule 2: state.done", "otherwise"):
        assert event_attributes({"how": own})["netrun.how"] == own
    assert event_attributes({"agent": None, "iteration": 1}) == {"netrun.iteration": 1}


def test_a_tools_call_on_one_mcp_session_never_takes_the_context_of_anothers() -> None:
    """Two sessions (two servers, or two runs' sessions) calling the same tool with the same
    arguments at once: each request carries the context of the call made on its session."""
    import asyncio

    import httpx2

    from netrun import observe
    from netrun.tools.mcp.traced_calls import TracedCalls

    class Fixed:
        def __init__(self) -> None:
            self.now = ""

        def start(self, span: observe.Span) -> None: ...
        def end(self, span: observe.Span, handle: object) -> None: ...
        def event(self, name: str, attributes: object) -> None: ...
        def inject(self, headers: dict[str, str]) -> None: ...
        def carrier(self) -> dict[str, str]:
            return {"traceparent": self.now}

    body = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}})

    def sent(calls: TracedCalls) -> str | None:
        request = httpx2.Request("POST", "http://127.0.0.1:9/mcp", content=body.encode())
        asyncio.run(calls.inject(request))
        return request.headers.get("traceparent")

    fixed = Fixed()
    observe.install(fixed)
    try:
        mine, theirs = TracedCalls(), TracedCalls()
        fixed.now = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
        with mine.call("whoami", {}):
            fixed.now = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
            with theirs.call("whoami", {}):
                assert sent(theirs) == "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
                assert sent(mine) == "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
                assert sent(mine) is None  # each call's context is taken once
    finally:
        observe.uninstall(fixed)


def test_the_console_exporter_writes_to_stderr_and_leaves_json_output_whole(
    tmp_path: Path, llm: FakeLLM, far_side: FakeHttpServer
) -> None:
    """OTEL_TRACES_EXPORTER=console (the README's first troubleshooting step) must not mix
    spans into what `netrun run --json` prints."""
    import netrun

    llm.reset(*_script())
    network = tmp_path / "traced.yaml"
    network.write_text(NETWORK.format(base=llm.base_url, tool=far_side.url))
    done = _netrun(tmp_path, _env(tmp_path, None, OTEL_TRACES_EXPORTER="console"), "run", str(network), "-i", "x", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["status"] == "completed"
    assert '"name": "invoke_workflow traced"' in done.stderr
    assert f'"service.version": "{netrun.__version__}"' in done.stderr
