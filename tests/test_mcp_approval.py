"""Approval for MCP tools, with the real MCP filesystem server from npm.

An MCP server's ``approval`` gates its tools by name (or pattern) and by the server's own
annotations (``destructive: true``): each gated call waits on its own approval id, as a
declared tool's does. The files on disk are the witness of what ran: ``edit_file`` applied
twice would leave ``count=1++``, so a file reading ``count=1+`` proves one call.

The filesystem server (version 2026.8.31) annotates ``write_file``, ``edit_file`` and
``move_file`` ``destructiveHint: true``, ``create_directory`` ``destructiveHint: false`` and
its readers ``readOnlyHint: true``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import types
from pydantic import TypeAdapter

from netrun.engines.local import Journal
from netrun.runtime.approvals import approval_id
from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings
from netrun.spec.mcp import McpServerSpec
from netrun.tools.mcp.gating import needs_approval
from netrun.validate import validate_paths

from .conftest import NETRUN, until
from .fakes.inngest_executor import StandInExecutor
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served

REPO = Path(__file__).resolve().parents[1]
FILESYSTEM = REPO / "node_modules" / ".bin" / "mcp-server-filesystem"
needs_filesystem = pytest.mark.skipif(
    not FILESYSTEM.exists() or shutil.which("node") is None,
    reason="the MCP filesystem server is not installed: run `npm ci` at the repository root",
)

NETWORK = """\
name: coder
model: {{id: openai/fake, api_base: "{llm}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
agents:
  coder: {{description: edits files, system: "Do {{{{ input }}}}", tools: [fs.*]}}
router:
  rules: [{{if: "call_count >= {turns}", stop: true}}, {{if: "true", agent: coder}}]
mcp_servers:
  fs:
    transport: stdio
    command: {command}
    args: ["{workspace}"]
    approval: {approval}
"""

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
APPROVAL = "netrun/approval"


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM([]) as server:
        yield server


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    folder.mkdir()
    (folder / "notes.txt").write_text("the notes")
    (folder / "counter.txt").write_text("count=1")
    return folder.resolve()


def network(tmp_path: Path, llm: FakeLLM, workspace: Path, approval: str, turns: int = 1) -> None:
    text = NETWORK.format(llm=llm.base_url, command=FILESYSTEM, workspace=workspace, approval=approval, turns=turns)
    (tmp_path / "coder.yaml").write_text(text)


def start(url: str) -> str:
    answer = httpx.post(f"{url}/networks/coder/runs", json={"input": "the files"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["run_id"])


def run_of(url: str, run_id: str) -> dict[str, Any]:
    return httpx.get(f"{url}/runs/{run_id}").json()  # type: ignore[no-any-return]


def waiting_on(url: str, run_id: str, tools: list[str]) -> list[dict[str, Any]]:
    """The run's pending approvals, once they are exactly calls of ``tools`` (in order)."""

    def check() -> list[dict[str, Any]] | None:
        run = run_of(url, run_id)
        assert run["status"] not in ("completed", "failed"), run
        found = run["approvals"]
        return found if run["status"] == "waiting" and [a["tool"] for a in found] == tools else None

    return until(f"run {run_id} to wait on {tools}", check)  # type: ignore[no-any-return]


def answer(url: str, run_id: str, approval: str, approved: bool, **data: Any) -> None:
    sent = httpx.post(
        f"{url}/events",
        json={"name": APPROVAL, "run_id": run_id, "data": {"approval_id": approval, "approved": approved, **data}},
    )
    assert sent.status_code == 202, sent.text


def finished(url: str, run_id: str) -> dict[str, Any]:
    return until(  # type: ignore[no-any-return]
        f"run {run_id} to complete", lambda: (r := run_of(url, run_id))["status"] in ("completed", "failed") and r
    )


def events_of(url: str, run_id: str) -> list[dict[str, Any]]:
    """The run's events so far (the stream of a run that has ended ends)."""
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line.partition(":")[2]))
    return seen


@needs_filesystem
def test_a_gated_write_waits_and_runs_once_approved(
    tmp_path: Path, llm: FakeLLM, workspace: Path, served: Callable[[], Served]
) -> None:
    """read_file is not gated and runs at once; write_file waits for its approval, shown as a
    declared tool's is; approved, the file is written."""
    out = workspace / "out.txt"
    llm.set_script(
        [
            Reply(
                text="reading and writing",
                tool_calls=[
                    ToolCall("fs__read_text_file", {"path": str(workspace / "notes.txt")}),
                    ToolCall("fs__write_file", {"path": str(out), "content": "hello"}),
                ],
            )
        ]
    )
    network(tmp_path, llm, workspace, "{tools: [write_file, 'edit_*'], timeout: 1h}")
    server = served()
    run_id = start(server.url)
    [pending] = waiting_on(server.url, run_id, ["fs__write_file"])
    step = "turn.0.coder.tool.1.fs__write_file"
    assert pending["step"] == step and pending["id"] == approval_id(run_id, step) and pending["event"] == APPROVAL
    assert pending["args"] == {"path": str(out), "content": "hello"}
    assert not out.exists()  # waiting: nothing written

    answer(server.url, run_id, pending["id"], True)
    run = finished(server.url, run_id)
    assert run["status"] == "completed", run
    assert out.read_text() == "hello"
    read, write = run["result"]["results"][0]["tool_calls"]
    assert "the notes" in json.dumps(read["result"]) and read["error"] is None
    assert write["error"] is None and run["approvals"] == []
    requested, resolved = [e["data"] for e in events_of(server.url, run_id) if e["event"].startswith("hitl.")]
    assert requested["toolCalls"][0]["toolName"] == "fs__write_file" and resolved["approvedTools"] == ["fs__write_file"]
    assert llm.count == 1


@needs_filesystem
def test_a_rejected_write_is_not_written_and_the_model_is_told(
    tmp_path: Path, llm: FakeLLM, workspace: Path, served: Callable[[], Served]
) -> None:
    out = workspace / "out.txt"
    llm.set_script(
        [
            Reply(text="writing", tool_calls=[ToolCall("fs__write_file", {"path": str(out), "content": "hello"})]),
            Reply(text="understood"),
        ]
    )
    network(tmp_path, llm, workspace, "{tools: [write_file]}", turns=2)
    server = served()
    run_id = start(server.url)
    [pending] = waiting_on(server.url, run_id, ["fs__write_file"])
    answer(server.url, run_id, pending["id"], False, reason="not today")
    run = finished(server.url, run_id)
    assert run["status"] == "completed", run
    assert not out.exists()
    rejection = "rejected by a human: not today; the tool did not run"
    assert run["result"]["results"][0]["tool_calls"][0]["error"] == rejection
    told = [m for m in llm.requests[1]["messages"] if m["role"] == "tool"]
    assert len(told) == 1 and rejection in told[0]["content"]


@needs_filesystem
def test_destructive_annotations_gate_and_two_calls_are_approved_independently(
    tmp_path: Path, llm: FakeLLM, workspace: Path, served: Callable[[], Served]
) -> None:
    """``destructive: true`` gates edit_file and move_file (destructiveHint: true), not
    create_directory (destructiveHint: false) nor list_directory (readOnlyHint). The two
    gated calls of one turn wait on their own ids; each approval runs its call alone."""
    counter, moved = workspace / "counter.txt", workspace / "done" / "counter.txt"
    llm.set_script(
        [
            Reply(
                text="four calls",
                tool_calls=[
                    ToolCall("fs__create_directory", {"path": str(workspace / "done")}),
                    ToolCall("fs__list_directory", {"path": str(workspace)}),
                    ToolCall("fs__edit_file", {"path": str(counter), "edits": [{"oldText": "count=1", "newText": "count=1+"}]}),
                    ToolCall("fs__move_file", {"source": str(counter), "destination": str(moved)}),
                ],
            )
        ]
    )
    network(tmp_path, llm, workspace, "{destructive: true}")
    server = served()
    run_id = start(server.url)
    edit, move = waiting_on(server.url, run_id, ["fs__edit_file", "fs__move_file"])
    assert (workspace / "done").is_dir() and counter.read_text() == "count=1"
    assert edit["id"] != move["id"]

    answer(server.url, run_id, edit["id"], True)
    until("the edit to run", lambda: counter.read_text() == "count=1+")
    assert waiting_on(server.url, run_id, ["fs__move_file"]) == [move]
    assert not moved.exists()

    answer(server.url, run_id, move["id"], True)  # the resumed turn replays the edit: not run again
    run = finished(server.url, run_id)
    assert run["status"] == "completed", run
    assert not counter.exists() and moved.read_text() == "count=1+"
    assert [c["error"] for c in run["result"]["results"][0]["tool_calls"]] == [None, None, None, None]


@needs_filesystem
def test_required_gates_every_tool(tmp_path: Path, llm: FakeLLM, workspace: Path, served: Callable[[], Served]) -> None:
    llm.set_script([Reply(text="reading", tool_calls=[ToolCall("fs__read_text_file", {"path": str(workspace / "notes.txt")})])])
    network(tmp_path, llm, workspace, "required")
    server = served()
    run_id = start(server.url)
    [pending] = waiting_on(server.url, run_id, ["fs__read_text_file"])
    answer(server.url, run_id, pending["id"], True)
    run = finished(server.url, run_id)
    assert "the notes" in json.dumps(run["result"]["results"][0]["tool_calls"][0]["result"])


def _netrun(args: list[str], db: Path, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, **ENV}
    return subprocess.Popen(
        [NETRUN, *args, "--db", str(db), "--json"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@needs_filesystem
def test_kill_9_after_an_approved_edit_then_resume_does_not_edit_again(tmp_path: Path, llm: FakeLLM, workspace: Path) -> None:
    """`netrun run` stops waiting; `netrun send` approves and resumes; it is killed (-9)
    while the next inference hangs, after the edit ran; `--resume` finishes without editing
    again."""
    counter = workspace / "counter.txt"
    edit = ToolCall("fs__edit_file", {"path": str(counter), "edits": [{"oldText": "count=1", "newText": "count=1+"}]})
    script = [Reply(text="editing", tool_calls=[edit]), Reply(text="done", delay=3.0)]
    llm.set_script(script)
    network(tmp_path, llm, workspace, "{tools: [edit_file]}", turns=2)
    db = tmp_path / "runs.db"
    first = _netrun(["run", "coder.yaml", "-i", "the files"], db, tmp_path)
    out, err = first.communicate(timeout=120)
    waited = json.loads(out)
    assert waited["status"] == "waiting", err
    [pending] = waited["approvals"]
    assert pending["tool"] == "fs__edit_file" and counter.read_text() == "count=1"

    data = json.dumps({"approval_id": pending["id"], "approved": True})
    send = _netrun(["send", APPROVAL, "--run", waited["run_id"], "--data", data], db, tmp_path)
    until("the edit to run and the next inference to start", lambda: send.poll() is None and llm.count >= 2, timeout=60)
    assert counter.read_text() == "count=1+"
    os.killpg(send.pid, signal.SIGKILL)
    send.communicate()

    llm.set_script(script[1:2])
    resumed = _netrun(["run", "--resume", waited["run_id"]], db, tmp_path)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "completed", result
    assert counter.read_text() == "count=1+"  # edited once: `count=1++` had it run again
    assert result["result"]["results"][0]["tool_calls"][0]["error"] is None
    journal = Journal(db)
    try:
        assert journal.runs("running") == []
    finally:
        journal.close()


def _tool(name: str, **hints: bool) -> types.Tool:
    annotations = types.ToolAnnotations(**hints) if hints else None
    return types.Tool(name=name, input_schema={"type": "object"}, annotations=annotations)


def test_which_tools_a_server_approval_gates() -> None:
    """Names and fnmatch patterns gate whatever the annotations; ``destructive`` reads the
    annotations with MCP's defaults (no annotations: may be destructive); a server that could
    not be listed leaves a tool gated only by ``destructive`` undecided (``None``)."""
    listing = [
        _tool("plain"),
        _tool("reader", readOnlyHint=True),
        _tool("creator", readOnlyHint=False, destructiveHint=False),
        _tool("deleter", destructiveHint=True),
        _tool("edit_page", readOnlyHint=True),
    ]
    server = TypeAdapter(McpServerSpec).validate_python(
        {"transport": "stdio", "command": "x", "approval": {"tools": ["edit_*"], "destructive": True}}
    )
    assert {t.name: needs_approval(server, listing, t.name) for t in listing} == {
        "plain": True,
        "reader": False,
        "creator": False,
        "deleter": True,
        "edit_page": True,
    }
    assert needs_approval(server, None, "deleter") is None and needs_approval(server, None, "edit_it") is True
    by_name = TypeAdapter(McpServerSpec).validate_python({"transport": "stdio", "command": "x", "approval": {"tools": ["Edit"]}})
    assert [needs_approval(by_name, listing, n) for n in ("Edit", "edit", "deleter")] == [True, False, False]
    for approval, gated in (("required", True), ("none", False), (None, False)):
        spec = TypeAdapter(McpServerSpec).validate_python({"transport": "stdio", "command": "x", "approval": approval})
        assert needs_approval(spec, listing, "reader") is gated


@pytest.fixture
def executor() -> Iterator[StandInExecutor]:
    with StandInExecutor() as ex:
        yield ex


@pytest.fixture
def served_inngest(tmp_path: Path, executor: StandInExecutor) -> Iterator[Callable[[], Served]]:
    started: list[Served] = []

    def serve() -> Served:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")}
        environ |= {**ENV, "INNGEST_API_BASE_URL": executor.url, "INNGEST_EVENT_API_BASE_URL": executor.url, "INNGEST_DEV": "1"}
        server = Served(
            lambda port: create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=port))
        ).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


@needs_filesystem
def test_on_inngest_each_gated_mcp_call_is_approved_alone(
    tmp_path: Path, llm: FakeLLM, workspace: Path, executor: StandInExecutor, served_inngest: Callable[[], Served]
) -> None:
    """On Inngest (the stand-in executor replays the function for every step): the edit,
    approved, runs once across the replays that follow; the move, rejected, never runs."""
    counter, moved = workspace / "counter.txt", workspace / "moved.txt"
    llm.set_script(
        [
            Reply(
                text="two calls",
                tool_calls=[
                    ToolCall("fs__edit_file", {"path": str(counter), "edits": [{"oldText": "count=1", "newText": "count=1+"}]}),
                    ToolCall("fs__move_file", {"source": str(counter), "destination": str(moved)}),
                ],
            )
        ]
    )
    network(tmp_path, llm, workspace, "{destructive: true}")
    server = served_inngest()
    executor.sync(f"{server.url}/api/inngest")
    run = executor.run("netrun-coder", {"name": "netrun/coder.run", "data": {"input": "the files"}})
    assert run.status == "waiting", run.error
    edit, move = waiting_on(server.url, run.id, ["fs__edit_file", "fs__move_file"])
    assert counter.read_text() == "count=1"

    answer(server.url, run.id, edit["id"], True)
    assert executor.deliver_received() == [run.id]
    assert run.status == "waiting" and counter.read_text() == "count=1+"
    assert waiting_on(server.url, run.id, ["fs__move_file"]) == [move]

    answer(server.url, run.id, move["id"], False, reason="keep it")
    executor.deliver_received()
    assert run.status == "completed", run.error
    assert counter.read_text() == "count=1+" and not moved.exists()
    errors = [c["error"] for c in run.output["results"][0]["tool_calls"]]
    assert errors == [None, "rejected by a human: keep it; the tool did not run"]


GATED = """\
name: big
model: openai/gpt-4o-mini
max_iter: 400
agents:
  coder: {description: edits files, system: edit, tools: [fs.*]}
mcp_servers:
  fs:
    transport: stdio
    command: mcp-server-filesystem
    include: [read_text_file, write_file, edit_file]
    approval: {tools: [write_file, "edit_*"]}
"""


def test_validate_counts_a_wait_step_per_gated_mcp_call(write: Callable[[str, str], Path]) -> None:
    """Inngest's step limit: each gated call of a turn is one more step (its approval's
    wait); with ``include`` the file says which of ``fs.*`` are gated."""
    found = validate_paths([write("big.yaml", GATED)]).diagnostics
    [d] = [d for d in found if d.code == "too-many-steps"]
    assert "400 turns × 7 steps" in d.message and "3 tool calls" in d.message and "+ 2 approvals)" in d.message
    assert (d.pos.line, d.pos.col) == (3, 1) and d.severity == "warning"
    assert [d for d in found if d.code != "too-many-steps"] == []


def test_the_graph_shows_a_gated_server(write: Callable[[str, str], Path], netrun_cli: Callable[..., Any]) -> None:
    result = netrun_cli("graph", str(write("big.yaml", GATED)), "--format", "dot")
    assert result.exit_code == 0, result.output
    assert '"MCP fs (stdio) + approval"' in result.output


def test_netrun_test_s_stubs_of_a_gated_server_wait_for_approval_as_live_tools_do(tmp_path: Path) -> None:
    """A stubbed MCP tool is gated as the live one would be: by name, and under
    ``destructive: true`` unless the stub says the server annotates it read-only (a case
    could once pass without answering the approval a live run waits for)."""
    from netrun.compile import compile_network
    from netrun.spec import NetworkSpec
    from netrun.tools.approval import Approved
    from netrun.tools.registry import build_tools

    def toolset(approval: Any) -> dict[str, Any]:
        spec = NetworkSpec.model_validate(
            {
                "name": "gates",
                "model": "openai/x",
                "agents": {"a": {"system": "s", "tools": ["fs.*"]}},
                "mcp_servers": {"fs": {"transport": "stdio", "command": "x", "approval": approval}},
            }
        )
        stubs = {"fs.edit_file": {"result": "ok"}, "fs.read_text_file": {"result": "x", "read_only": True}}
        program = compile_network(spec, tmp_path, lambda m: None, stubs=stubs)  # type: ignore[arg-type,return-value]
        return dict(build_tools(program).servers["fs"])

    destructive = toolset({"destructive": True})
    assert isinstance(destructive["edit_file"], Approved) and not isinstance(destructive["read_text_file"], Approved)
    named = toolset({"tools": ["read_*"]})
    assert isinstance(named["read_text_file"], Approved) and not isinstance(named["edit_file"], Approved)
    assert not any(isinstance(t, Approved) for t in toolset("none").values())
