"""The examples built from AgentKit's guides, run for real end to end (issue 15, deliverable 7).

``networks/aiops.yaml`` (the "AI Ops agent") runs on a copy of its folder: a Loki-like HTTP
server on 127.0.0.1 answers the log queries, the real MCP filesystem server from npm reads and
edits the copied workspace, the shell command runs under bubblewrap, the model is the fake
OpenAI-compatible server over HTTP, and the approvals are answered with ``netrun send``. The
workspace's files are the witness: the edit lands only once approved, and the tests the
sandboxed shell runs pass only on the edited code. ``networks/coding.yaml`` runs with its
sandboxed tools: the executor runs the two files the coder saved in one turn.

The model's replies are the examples' own replies files, served in the order the run asks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from netrun.engines.journal import Journal

from . import debian
from .conftest import REPO
from .fakes.http_server import FakeHttpServer
from .fakes.http_server import Reply as HttpReply
from .fakes.llm_server import FakeLLM, Reply, ToolCall

NETWORKS = REPO / "networks"
FILESYSTEM = REPO / "node_modules" / ".bin" / "mcp-server-filesystem"
needs_tools = pytest.mark.skipif(
    not FILESYSTEM.exists() or shutil.which("node") is None or not debian.has_bwrap(),
    reason="needs the MCP filesystem server (`npm ci`), node and bubblewrap",
)

LOG_LINE = "ERROR POST /checkout 500 ZeroDivisionError: integer division or modulo by zero (checkout.py:11 price_per_item)"
LOKI_ANSWER = {
    "status": "success",
    "data": {
        "resultType": "streams",
        "result": [{"stream": {"app": "checkout", "level": "error"}, "values": [["1764669600000000000", LOG_LINE]]}],
    },
}


def replies(name: str, order: list[str]) -> list[Reply]:
    """The example's replies file as the fake model's script: ``order`` names the agent of each call."""
    scripted = yaml.safe_load((NETWORKS / f"{name}.replies.yaml").read_text(encoding="utf-8"))
    taken = {agent: 0 for agent in scripted}
    script = []
    for agent in order:
        item = scripted[agent][taken[agent]]
        taken[agent] += 1
        calls = [ToolCall(c["name"], c.get("args", {})) for c in item.get("tool_calls", [])]
        script.append(Reply(text=item.get("text"), tool_calls=calls))
    assert taken == {agent: len(items) for agent, items in scripted.items()}, "the order leaves replies unused"
    return script


def run_json(netrun_cli: Any, db: Path, *args: str) -> Any:
    result = netrun_cli(*args, "--json", "--db", str(db))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def system_prompt(request: dict[str, Any]) -> str:
    return str(request["messages"][0]["content"])


@pytest.fixture
def aiops(tmp_path: Path) -> Path:
    """A copy of the AI Ops example (its workspace is edited), beside the repository's node_modules."""
    (tmp_path / "networks").mkdir()
    shutil.copy(NETWORKS / "aiops.yaml", tmp_path / "networks" / "aiops.yaml")
    shutil.copytree(NETWORKS / "aiops", tmp_path / "networks" / "aiops", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "node_modules").symlink_to(REPO / "node_modules")
    return tmp_path / "networks" / "aiops.yaml"


@needs_tools
def test_the_ai_ops_agent_diagnoses_and_fixes_with_approvals(
    netrun_cli: Any, tmp_path: Path, aiops: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = aiops.parent / "aiops" / "workspace"
    original = (workspace / "checkout.py").read_text()
    db = tmp_path / "runs.db"
    order = ["router", "log_analyzer", "router", "coding", "coding", "coding", "router"]
    with FakeLLM(replies("aiops", order)) as llm, FakeHttpServer() as loki:
        loki.script("/loki/api/v1/query_range", HttpReply(200, LOKI_ANSWER))
        for key, value in {
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "sk-test-aiops-key",
            "LOKI_URL": loki.url,
            "NETRUN_DATA_DIR": str(tmp_path / "data"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }.items():
            monkeypatch.setenv(key, value)
        data = {"threadId": "t-ops-1", "userId": "ann", "userMessage": "Checkout returns 500s: fix it", "model": "openai/gpt-4o"}
        event = json.dumps({"name": "agent/chat.requested", "data": data})
        run = run_json(netrun_cli, db, "run", str(aiops), "--event", event)

        # The log analyzer queried Loki; the coding agent read the file at once, its edit waits.
        assert run["status"] == "waiting", run
        [hit] = loki.hits
        assert hit.query["query"] == ['{app="checkout"} |= "error"'] and hit.query["since"] == ["1h"]
        [edit] = run["approvals"]
        assert edit["tool"] == "fs__edit_file" and edit["args"]["path"] == "checkout.py"
        assert (workspace / "checkout.py").read_text() == original
        coding_prompt = system_prompt(llm.requests[3])
        assert LOG_LINE in coding_prompt and "checkout.py, test_checkout.py" in coding_prompt
        assert [r["model"] for r in llm.requests[:4]] == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "gpt-4o"]

        approve = {"approval_id": edit["id"], "approved": True}
        (run,) = run_json(netrun_cli, db, "send", "netrun/approval", "--run", run["run_id"], "--data", json.dumps(approve))
        assert run["status"] == "waiting", run
        assert "if items == 0:" in (workspace / "checkout.py").read_text()  # approved: the server wrote it
        [shell] = run["approvals"]
        assert shell["tool"] == "shell_command_execute" and shell["args"] == {"command": "python3 -B -m unittest -q"}

        approve = {"approval_id": shell["id"], "approved": True}
        (run,) = run_json(netrun_cli, db, "send", "netrun/approval", "--run", run["run_id"], "--data", json.dumps(approve))
        assert run["status"] == "completed", run
        assert llm.remaining == 0 and len(loki.hits) == 1  # nothing ran twice across the resumes

    result = run["result"]
    assert result["route"] == ["log_analyzer", "coding", "coding", "coding"]
    assert result["state"]["log_lines"] == [LOG_LINE]
    assert result["state"]["workspace"]["path"] == str(workspace)
    read, edited = result["results"][1]["tool_calls"]
    assert "return total_cents // items" in json.dumps(read["result"]) and edited["error"] is None
    [tests] = result["results"][2]["tool_calls"]
    assert tests["error"] is None and tests["result"]["exit_code"] == 0  # the sandbox sees the edited file
    assert "Ran 3 tests" in tests["result"]["stderr"] and "OK" in tests["result"]["stderr"]
    assert "ZeroDivisionError" in result["output"]
    assert not list(workspace.rglob("__pycache__"))  # the shell's view of the workspace is read-only
    assert "sk-test-aiops-key" not in json.dumps(run)
    journal = Journal(db)
    try:
        done, _, _ = journal.step(run["run_id"], "send.completed")
        steps = journal.step_ids(run["run_id"])
    finally:
        journal.close()
    assert done, "app/ops.run.finished was not sent"
    assert "setup.0.describe_workspace" in steps


@needs_tools
def test_the_ai_ops_thread_carries_the_conversation_into_the_next_run(
    netrun_cli: Any, tmp_path: Path, aiops: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread id and user come from the event; a second message on the thread sees the first."""
    db = tmp_path / "runs.db"
    script = [
        Reply(tool_calls=[ToolCall("select_agent", {"agent": "log_analyzer"})]),
        Reply(text="No errors in the last hour."),
        Reply(tool_calls=[ToolCall("finish", {})]),
        Reply(tool_calls=[ToolCall("select_agent", {"agent": "log_analyzer"})]),
        Reply(text="Still none."),
        Reply(tool_calls=[ToolCall("finish", {})]),
    ]
    with FakeLLM(script) as llm:
        monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-aiops-key")
        monkeypatch.setenv("NETRUN_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        for message in ("Any errors?", "And now?"):
            data = {"threadId": "t-ops-2", "userId": "bob", "userMessage": message}
            run = run_json(
                netrun_cli, db, "run", str(aiops), "--event", json.dumps({"name": "agent/chat.requested", "data": data})
            )
            assert run["status"] == "completed", run
        second = [m.get("content") for m in llm.requests[4]["messages"][1:]]
    assert second == ["Any errors?", "No errors in the last hour.", "And now?"]


@pytest.mark.skipif(not debian.has_bwrap(), reason="needs bubblewrap (apt-get install bubblewrap)")
def test_the_coding_agent_runs_what_it_saved_in_its_sandbox(
    netrun_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = ["coder", "reviewer", "executor", "executor"]
    with FakeLLM(replies("coding", order)) as llm:
        monkeypatch.setenv("OPENROUTER_API_BASE", llm.base_url)
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-coding")
        monkeypatch.setenv("NETRUN_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        event = {"name": "app/coding.task.requested", "data": {"taskId": "T-7", "userId": "u-1"}}
        run = run_json(netrun_cli, tmp_path / "runs.db", "run", str(NETWORKS / "coding.yaml"), "--event", json.dumps(event))
        requests = llm.requests
    assert run["status"] == "completed", run
    result = run["result"]
    assert result["route"] == ["coder", "reviewer", "executor", "executor"]
    state = result["state"]
    assert sorted(state["files"]) == ["fizzbuzz.py", "main.py"]  # both saves of one turn landed
    assert state["task"]["id"] == "T-7" and "FizzBuzz" in system_prompt(requests[0])
    assert "def fizzbuzz" in system_prompt(requests[1])  # the reviewer reads the saved files
    lines = state["execution"]["stdout"].splitlines()
    assert len(lines) == 15 and lines[2] == "Fizz" and lines[4] == "Buzz" and lines[14] == "FizzBuzz"
    assert state["execution"]["exit_code"] == 0
    work = tmp_path / "work" / run["run_id"]  # beside the journal (--db)
    assert {p.name for p in work.iterdir()} == {"fizzbuzz.py", "main.py"}  # the run's sandbox folder
    assert (work / "main.py").read_text() == state["files"]["main.py"]
    assert "<task_summary>" in result["output"]
    assert "exit code 0" in system_prompt(requests[3])


def test_the_examples_point_at_the_installed_filesystem_server() -> None:
    """The stdio command is relative to the network's folder, so it works without npx, offline."""
    spec = yaml.safe_load((NETWORKS / "aiops.yaml").read_text(encoding="utf-8"))
    command = (NETWORKS / spec["mcp_servers"]["fs"]["command"]).resolve()
    assert command == FILESYSTEM.resolve() or not FILESYSTEM.exists()
    assert os.path.isdir(NETWORKS / spec["mcp_servers"]["fs"]["args"][0])
