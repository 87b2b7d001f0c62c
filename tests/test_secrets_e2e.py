"""Secrets never leave a run through MCP (issue 10, item 4), end to end.

A real MCP server over stdio gets ``TOKEN: ${SECRET_TOKEN}`` and leaks it every way a server
can: in a tool description (sent to the model), in an error result, in a plain result, and on
stderr right across the tail netrun quotes when it crashes. The model (the fake
OpenAI-compatible server, through litellm) leaks it too, in streamed text. The network runs
under a real ``netrun serve`` (uvicorn) and under ``netrun run`` (a subprocess); then every
place a run leaves text is searched for the secret in every form: the journal and thread
files (bytes, write-ahead logs included), the SSE stream, the REST answers, the logs, the
CLI's output and every request body the model server received.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import yaml

from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
from netrun.finder import find_network
from netrun.models.scripted import ScriptedClient
from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings
from netrun.spec import NetworkSpec

from .conftest import NETRUN
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served

SECRET = "Zq8-tok/3xPv+w9=Lm Kd7Rt"
"""Long enough that each half is 8+ characters; '/', '+', '=' and ' ' change when URL-encoded."""
TAIL = 600
"""netrun's stderr tail (``netrun.tools.mcp.session._STDERR_TAIL``): the server writes the token across its cut."""

VAULT = '''
"""An MCP server that knows a token (from its environment) and leaks it every way it can."""
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

TOKEN = os.environ["TOKEN"]
server = MCPServer("vault")


@server.tool(description=f"Looks a key up in the vault (configured with {TOKEN}).")
def lookup(key: str) -> str:
    raise ToolError(f"access denied for token {TOKEN} on {key}")


@server.tool()
def whoami() -> str:
    """Who the vault thinks we are."""
    return f"authenticated as {TOKEN}"


@server.tool()
def crash() -> str:
    """Crash, leaving the token on stderr across the tail netrun quotes."""
    sys.stderr.write("x" * 3000 + "\\ndebug: token=" + TOKEN + "y" * (int(os.environ["TAIL"]) - len(TOKEN) // 2))
    sys.stderr.flush()
    os._exit(1)


server.run()
'''

NETWORK = """\
name: vault
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 6
state:
  done: {{type: boolean, default: false}}
agents:
  helper: {{description: helps, system: "Help with {{{{ input }}}}", tools: [vault.lookup, vault.whoami, vault.crash, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: helper}}]
mcp_servers:
  vault:
    transport: stdio
    command: {python}
    args: [vault.py]
    env: {{TOKEN: "${{SECRET_TOKEN}}", TAIL: "{tail}"}}
tools:
  finish:
    parameters: {{answer: {{type: string}}}}
    state: {{done: true}}
"""

ENV = {"FAKE_LLM_KEY": "sk-test", "SECRET_TOKEN": SECRET, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def script() -> list[Reply]:
    """One tool call a turn (the crash must not cut the others short), then a model that
    quotes the secret itself in streamed text."""
    return [
        Reply(tool_calls=[ToolCall("vault__lookup", {"key": "k1"})]),
        Reply(tool_calls=[ToolCall("vault__whoami", {})]),
        Reply(tool_calls=[ToolCall("vault__crash", {})]),
        Reply(text=f"The provider echoed your key {SECRET} back.", tool_calls=[ToolCall("finish", {"answer": "ok"})]),
    ]


def forms(secret: str) -> list[str]:
    """The secret as it could leak: whole, URL-encoded, and every 8-character piece of it."""
    pieces = [secret[i : i + 8] for i in range(len(secret) - 7)]
    return [secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], *pieces]


def leaks(where: str, text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [f"{where}: {form!r}" for form in forms(SECRET) if form in text]


def file_leaks(root: Path) -> list[str]:
    """Every SQLite file (and its -wal, -shm, -journal) under ``root``, searched as bytes."""
    found: list[str] = []
    files = [p for p in root.rglob("*") if p.is_file() and ".db" in p.name]
    assert any(p.name == "runs.db" for p in files) and any(p.name == "threads.db" for p in files), files
    for path in files:
        found += leaks(str(path.relative_to(root)), path.read_bytes())
    return found


def write(folder: Path, llm: FakeLLM) -> Path:
    (folder / "vault.py").write_text(textwrap.dedent(VAULT))
    path = folder / "vault.yaml"
    path.write_text(NETWORK.format(base=llm.base_url, python=json.dumps(sys.executable), tail=TAIL))
    return path


def sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line.partition(":")[2])


def check_story(requests: list[dict[str, Any]], texts: str) -> None:
    """The run did what the test needs: every leak was attempted and its redaction is visible."""
    assert len(requests) == 4, len(requests)
    assert "Looks a key up in the vault" in json.dumps(requests[0]["tools"])  # the description arrived, redacted
    assert "access denied for token ***" in texts
    assert "authenticated as ***" in texts
    assert "its stderr ends with:" in texts


def test_secrets_never_leave_a_served_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeLLM(script()) as llm:
        write(tmp_path, llm)
        environ = {**os.environ, **ENV}

        def app(port: int) -> Any:
            return create_app(ServeSettings.from_env(environ, (tmp_path,), engine="local", data_dir=tmp_path / "data", port=port))

        with Served(app) as server:
            started = httpx.post(f"{server.url}/networks/vault/runs", json={"input": "open the vault"})
            assert started.status_code == 202, started.text
            run_id, thread_id = started.json()["run_id"], started.json()["thread_id"]
            deadline = time.monotonic() + 60
            while (run := httpx.get(f"{server.url}/runs/{run_id}").json())["status"] not in ("completed", "failed"):
                assert time.monotonic() < deadline, run
                time.sleep(0.05)
            with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", timeout=30) as response:
                events = list(sse(response))
            thread = httpx.get(f"{server.url}/threads/{thread_id}").text
        requests = llm.requests
    assert run["status"] == "completed", run
    stream = json.dumps(events)
    assert "run.completed" in stream
    check_story(requests, stream + json.dumps(requests))
    found = (
        leaks("SSE", stream)
        + leaks("GET /runs/{id}", json.dumps(run))
        + leaks("GET /threads/{id}", thread)
        + leaks("logs", caplog.text)
        + [x for r in requests for x in leaks("model request", json.dumps(r))]
        + file_leaks(tmp_path / "data")
    )
    assert found == []


def test_secrets_never_leave_a_cli_run(tmp_path: Path) -> None:
    with FakeLLM(script()) as llm:
        path = write(tmp_path, llm)
        proc = subprocess.run(
            [NETRUN, "run", str(path), "-i", "open the vault", "--thread", "t1", "--db", str(tmp_path / "data" / "runs.db")],
            cwd=tmp_path,
            env={**os.environ, **ENV},
            capture_output=True,
            text=True,
            timeout=120,
        )
        requests = llm.requests
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    check_story(requests, output + json.dumps(requests))
    found = leaks("netrun run output", output) + [x for r in requests for x in leaks("model request", json.dumps(r))]
    found += file_leaks(tmp_path / "data")
    assert found == []


# --- the replies file of `netrun run --record`, and a child run's outcome in its parent ---

RECORDED = """\
name: recorded
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 2
state:
  done: {{type: boolean, default: false}}
agents:
  helper: {{description: helps, system: "Help.", tools: [finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: helper}}]
tools:
  finish:
    parameters: {{answer: {{type: string}}}}
    state: {{done: true}}
"""


def test_a_recorded_replies_file_holds_no_secret(tmp_path: Path) -> None:
    # The provider echoes the key (in text and in a tool call's arguments): the completion
    # reaches the recording client before the run redacts it, and the file outlives the run.
    replies = [Reply(text=f"Your key {SECRET} works.", tool_calls=[ToolCall("finish", {"answer": f"key={SECRET}"})])]
    with FakeLLM(replies) as llm:
        path = tmp_path / "recorded.yaml"
        path.write_text(RECORDED.format(base=llm.base_url))
        record = tmp_path / "replies.yaml"
        proc = subprocess.run(
            [NETRUN, "run", str(path), "-i", "go", "--json", "--record", str(record), "--db", str(tmp_path / "runs.db")],
            cwd=tmp_path,
            env={**os.environ, **ENV, "FAKE_LLM_KEY": SECRET},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recorded = record.read_text()
    assert "Your key *** works." in recorded and "finish" in recorded  # the reply was recorded, redacted
    assert leaks("replies file", recorded) + leaks("netrun run --json", proc.stdout + proc.stderr) == []


PARENT = """\
name: parent
model: openai/gpt-4o-mini
max_iter: 2
agents:
  boss: {description: delegates, system: "Delegate.", tools: [ask]}
router:
  rules: [{if: "call_count > 0", stop: true}, {if: "true", agent: boss}]
tools:
  ask: {network: child}
  ping: {http: {url: "http://127.0.0.1:9/x", headers: {X-Key: "${VAULT_PHRASE}"}}}
"""

CHILD = """\
name: child
model: openai/gpt-4o-mini
max_iter: 1
agents:
  worker: {description: works, system: "Work."}
router:
  rules: [{if: "true", agent: worker}]
"""


def test_a_child_runs_output_is_redacted_in_its_parents_journal(tmp_path: Path) -> None:
    # The child does not reference VAULT_PHRASE (a name no credential pattern matches), so it
    # cannot know it is a secret; what it answers (here its model quotes it) becomes the
    # parent's step output, recorded in the parent's journal.
    (tmp_path / "child.yaml").write_text(CHILD)
    client = ScriptedClient(
        {
            "boss": [{"tool_calls": [{"name": "ask", "args": {"input": "look"}}]}],
            "worker": [{"text": f"the parent's secret is {SECRET}"}],
        },
        "t",
    )
    journal = Journal(tmp_path / "runs.db")
    engine = LocalEngine(journal, {"VAULT_PHRASE": SECRET}, None, models=lambda s: client, backoff=0.01, networks=find_network)
    record = asyncio.run(engine.start(NetworkSpec.model_validate(yaml.safe_load(PARENT)), tmp_path, input="go"))
    assert record.status == "completed", record.error
    with sqlite3.connect(tmp_path / "runs.db") as db:
        rows = db.execute("SELECT step_id, output, error FROM steps WHERE run_id = ?", (record.id,)).fetchall()
    parent_steps = json.dumps(rows)
    assert "the parent's secret is ***" in parent_steps  # the child's answer reached the parent, redacted
    assert leaks("parent's steps", parent_steps) + leaks("parent's result", json.dumps(record.result)) == []
