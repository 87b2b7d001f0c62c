"""Trace context across processes (netrun/tracing): a ``traceparent`` on the REST request
that starts a run, and the one an HTTP MCP server's tools/call request carries; a real
`netrun serve`, a real MCP server (streamable HTTP and SSE) and the real OTLP receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from netrun import tracing

from .conftest import until
from .fakes.http_server import FakeHttpServer
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.server_thread import free_port
from .otlp_receiver import OtlpReceiver, Received
from .test_tracing import NETWORK, _env, _netrun, _script, serve_far_side


@pytest.fixture(scope="module")
def far_side() -> Iterator[FakeHttpServer]:
    with serve_far_side() as server:
        yield server


def test_a_traceparent_on_the_request_that_starts_a_run_is_its_parent(
    tmp_path: Path, llm: FakeLLM, far_side: FakeHttpServer, receiver: OtlpReceiver
) -> None:
    llm.reset(*_script())
    folder = tmp_path / "networks"
    folder.mkdir()
    (folder / "traced.yaml").write_text(NETWORK.format(base=llm.base_url, tool=far_side.url))
    port = free_port()
    # Batches wait 10 minutes: the spans can only arrive by the flush of a server shutting down.
    env = {k: v for k, v in _env(tmp_path, receiver, OTEL_BSP_SCHEDULE_DELAY="600000").items() if not k.startswith("INNGEST_")}
    args = [sys.executable, "-m", "netrun", "serve", str(folder), "--port", str(port), "--engine", "local", "--no-watch"]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        until("/healthz", lambda: server.poll() is not None or _healthy(f"{base}/healthz"), timeout=60)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
        parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
        started = httpx.post(
            f"{base}/networks/traced/runs", json={"input": "find gear"}, headers={"traceparent": parent}, timeout=30
        )
        assert started.status_code < 300, started.text
        run_id = started.json()["run_id"]
        until("the run's end", lambda: _ended(f"{base}/runs/{run_id}"), timeout=30)
        bad = httpx.post(f"{base}/networks/traced/runs", json={"input": "x"}, headers={"traceparent": "00-zz-bad"}, timeout=30)
        assert bad.status_code < 300, bad.text  # a malformed traceparent is ignored, not an error
        bad_id = bad.json()["run_id"]
        until("the second run's end", lambda: _ended(f"{base}/runs/{bad_id}"), timeout=30)
        assert not receiver.of_trace("ab" * 16)  # nothing exported yet
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    def done(spans: list[Received]) -> bool:
        return {run_id, bad_id} <= {s.attributes.get("netrun.run_id") for s in spans if s.name.startswith("invoke_workflow")}

    spans = receiver.wait_for(done, timeout=15)
    run = next(s for s in spans if s.attributes.get("netrun.run_id") == run_id and s.name.startswith("invoke_workflow"))
    assert run.trace_id == "ab" * 16 and run.parent_id == "cd" * 8
    assert len([s for s in receiver.of_trace(run.trace_id) if s.name == "chat fake"]) == 2
    other = next(s for s in spans if s.attributes.get("netrun.run_id") == bad_id and s.name.startswith("invoke_workflow"))
    from netrun.tracing.observer import trace_id_of

    assert other.parent_id == "" and other.trace_id == f"{trace_id_of(bad_id):032x}"  # its own trace, from its run id


def _ended(url: str) -> bool:
    return httpx.get(url, timeout=5).json().get("status") in ("completed", "failed", "cancelled")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}, {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}),
        (
            {"TraceParent": " 00-" + "a" * 32 + "-" + "b" * 16 + "-00 ", "tracestate": "k=v"},
            {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-00", "tracestate": "k=v"},
        ),
        ({"traceparent": "00-" + "0" * 32 + "-" + "b" * 16 + "-01"}, {}),
        ({"traceparent": "00-" + "a" * 32 + "-" + "0" * 16 + "-01"}, {}),
        ({"traceparent": "ff-" + "a" * 32 + "-" + "b" * 16 + "-01"}, {}),
        ({"traceparent": "00-" + "A" * 32 + "-" + "b" * 16 + "-01"}, {}),
        ({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01-extra"}, {}),
        ({"traceparent": "{{ 7*7 }}"}, {}),
        (
            {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "bad state\n"},
            {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        ),
        ({}, {}),
    ],
)
def test_an_incoming_traceparent_is_kept_only_in_its_valid_form(headers: dict[str, str], kept: dict[str, str]) -> None:
    assert tracing.incoming(headers) == kept


MCP_SERVER = """\
import sys
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("trace-test")


@server.tool()
def whoami(ctx: Context) -> str:
    # the traceparent this tool call arrived with
    return (ctx.headers or {}).get("traceparent", "none")


server.run(transport=sys.argv[1], host="127.0.0.1", port=int(sys.argv[2]))
"""

MCP_NETWORK = """\
name: mcptraced
state: {{done: {{type: boolean}}}}
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_KEY}}"}}
agents:
  helper: {{description: Asks the server, system: "Ask.", tools: [remote.whoami, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: helper}}]
mcp_servers:
  remote: {{transport: {transport}, url: "{url}"}}
tools:
  finish:
    parameters: {{answer: {{type: string}}}}
    state: {{done: true}}
"""


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(("transport", "path"), [("streamable-http", "mcp"), ("sse", "sse")])
def test_an_http_mcp_tool_call_carries_its_execute_tool_span(
    transport: str, path: str, tmp_path: Path, llm: FakeLLM, receiver: OtlpReceiver
) -> None:
    script = tmp_path / "mcp_server.py"
    script.write_text(MCP_SERVER)
    port = free_port()
    log = (tmp_path / "mcp.log").open("w")
    server = subprocess.Popen([sys.executable, str(script), transport, str(port)], stdout=log, stderr=log, cwd=tmp_path)
    try:
        until("the MCP server", lambda: server.poll() is not None or _port_open(port), timeout=30)
        assert server.poll() is None, (tmp_path / "mcp.log").read_text()
        llm.reset(
            Reply(tool_calls=[ToolCall("remote__whoami", {})]),
            Reply(tool_calls=[ToolCall("finish", {"answer": "ok"})]),
        )
        network = tmp_path / "mcptraced.yaml"
        network.write_text(MCP_NETWORK.format(base=llm.base_url, transport=transport, url=f"http://127.0.0.1:{port}/{path}"))
        env = _env(tmp_path, receiver, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true")
        done = _netrun(tmp_path, env, "run", str(network), "-i", "who?", "--json")
        assert done.returncode == 0 and json.loads(done.stdout)["status"] == "completed", done.stderr[-3000:]
        run_id = json.loads(done.stdout)["run_id"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    spans = receiver.wait_for(
        lambda got: any(s.attributes.get("netrun.run_id") == run_id and s.name.startswith("invoke_workflow") for s in got)
    )
    call = next(s for s in spans if s.name == "execute_tool remote__whoami" and s.attributes.get("netrun.run_id") == run_id)
    got = json.loads(call.attributes["gen_ai.tool.call.result"])
    assert f"00-{call.trace_id}-{call.span_id}-" in json.dumps(got), got
