"""Kill -9 a real `netrun run` process at several moments; `--resume` repeats nothing that completed.

The model is the fake OpenAI-compatible server over HTTP, reached through litellm; its request
log is the witness: every completed inference appears exactly once across the killed run
and the resumed one (only a call in flight when the process died may be made again).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from netrun.engines.local import Journal

from .conftest import NETRUN
from .fakes.llm_server import FakeLLM, Reply, ToolCall

NETWORK = """\
name: writer
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 6
state:
  plan: string
  draft: string
  done: {{type: boolean, default: false}}
agents:
  planner: {{description: plans, system: "Plan {{{{ input }}}}", tools: [save_plan]}}
  editor: {{description: edits, system: "Write from {{{{ state.plan }}}}", tools: [save_draft, finish]}}
router:
  rules:
    - {{if: state.done, stop: true}}
    - {{if: not state.plan, agent: planner}}
    - {{if: "true", agent: editor}}
tools:
  save_plan: {{parameters: {{plan: {{type: string}}}}, state: {{plan: "{{{{ args.plan }}}}"}}}}
  save_draft: {{parameters: {{draft: {{type: string}}}}, state: {{draft: "{{{{ args.draft }}}}"}}}}
  finish: {{state: {{done: true}}}}
"""

SCRIPT = [
    Reply(text="planning", tool_calls=[ToolCall("save_plan", {"plan": "1. owls"})]),
    Reply(text="draft one", tool_calls=[ToolCall("save_draft", {"draft": "Owls hoot."})]),
    Reply(text="draft two", tool_calls=[ToolCall("save_draft", {"draft": "Owls hoot at night."})]),
    Reply(text="done", tool_calls=[ToolCall("finish", {})]),
]


def _netrun(args: list[str], db: Path, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.Popen(
        [NETRUN, *args, "--db", str(db), "--json"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _signature(request: dict) -> str:
    """What identifies an inference: the conversation it was asked to continue."""
    return json.dumps(request["messages"], sort_keys=True)


@pytest.mark.parametrize("kill_at", [1, 3])
def test_kill_9_then_resume_repeats_no_completed_inference(tmp_path: Path, kill_at: int) -> None:
    # The call number `kill_at` hangs long enough for the test to kill the process mid-call
    # (and short enough to end before the server stops: its answer then goes nowhere).
    hang = 2.0
    script = [Reply(**{**r.__dict__, "delay": hang}) if i + 1 == kill_at else r for i, r in enumerate(SCRIPT)]
    db = tmp_path / "runs.db"
    with FakeLLM(script) as llm:
        (tmp_path / "writer.yaml").write_text(NETWORK.format(base=llm.base_url))
        proc = _netrun(["run", "writer.yaml", "-i", "owls"], db, tmp_path)
        deadline = time.monotonic() + 60
        while llm.count < kill_at:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "netrun never reached the call to kill at"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.communicate()  # reaps it and closes its pipes
        killed = len(llm.requests)

        (run_id,) = Journal(db).runs("running")
        llm.set_script([SCRIPT[kill_at - 1], *SCRIPT[kill_at:]])  # the in-flight call is answered now
        resumed = _netrun(["run", "--resume", run_id], db, tmp_path)
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        result = json.loads(out)
        requests = llm.requests
        time.sleep(max(0.0, hang + 0.5 - (time.monotonic() - killed_at)))  # the orphaned call ends

    assert result["status"] == "completed"
    assert result["result"]["route"] == ["planner", "editor", "editor", "editor"]
    assert result["result"]["state"] == {"plan": "1. owls", "draft": "Owls hoot at night.", "done": True}
    signatures = [_signature(r) for r in requests]
    # Before the kill: calls 1..kill_at (the last one in flight). After: from that call on.
    assert killed == kill_at
    assert len(requests) == len(SCRIPT) + 1
    assert signatures[kill_at] == signatures[kill_at - 1]  # only the call in flight is made again
    assert len(set(signatures)) == len(SCRIPT)


TOOL_NETWORK = """\
name: orders
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 4
state: {{done: {{type: boolean, default: false}}}}
agents:
  clerk: {{description: looks up, system: "Help with {{{{ input }}}}", tools: [lookup, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: clerk}}]
tools:
  lookup:
    parameters: {{id: {{type: string}}}}
    http: {{url: "{api}/orders/{{{{ args.id }}}}", timeout: 30s, retries: 0}}
  finish: {{state: {{done: true}}}}
"""


@pytest.mark.parametrize("kill_during", ["tool", "after_tool"])
def test_kill_9_around_a_tool_call(tmp_path: Path, kill_during: str) -> None:
    """Killed during an HTTP tool call, the resumed run calls it again with the same
    Idempotency-Key (the far side can de-duplicate); killed after it completed, never again."""
    from .fakes.http_server import FakeHttpServer
    from .fakes.http_server import Reply as HttpReply

    hang = 2.0
    script = [
        Reply(text="looking", tool_calls=[ToolCall("lookup", {"id": "A1"})]),
        Reply(text="found it", tool_calls=[ToolCall("finish", {})], delay=hang if kill_during == "after_tool" else None),
    ]
    db = tmp_path / "runs.db"
    with FakeLLM(script) as llm, FakeHttpServer() as api:
        api.script("/orders/A1", HttpReply(200, {"id": "A1", "total": 12}, delay=hang if kill_during == "tool" else 0))
        (tmp_path / "orders.yaml").write_text(TOOL_NETWORK.format(base=llm.base_url, api=api.url))
        proc = _netrun(["run", "orders.yaml", "-i", "order A1"], db, tmp_path)
        deadline = time.monotonic() + 60
        reached = (lambda: len(api.hits) >= 1) if kill_during == "tool" else (lambda: llm.count >= 2)
        while not reached():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.communicate()

        (run_id,) = Journal(db).runs("running")
        llm.set_script(script[llm.count - 1 :] if kill_during == "after_tool" else script[1:])
        api.script("/orders/A1", HttpReply(200, {"id": "A1", "total": 12}))
        resumed = _netrun(["run", "--resume", run_id], db, tmp_path)
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        result = json.loads(out)
        hits = api.hits_for("/orders/A1")
        signatures = [_signature(r) for r in llm.requests]
        time.sleep(max(0.0, hang + 0.5 - (time.monotonic() - killed_at)))

    assert result["status"] == "completed"
    assert result["result"]["results"][0]["tool_calls"][0]["result"] == {"status": 200, "body": {"id": "A1", "total": 12}}
    if kill_during == "tool":
        assert len(hits) == 2  # in flight when killed, so made again...
        assert hits[0].headers["idempotency-key"] == hits[1].headers["idempotency-key"]  # ...under the same key
        assert len(signatures) == len(set(signatures)) == 2  # no inference repeated
    else:
        assert len(hits) == 1  # completed before the kill: never repeated
        assert len(signatures) == 3 and len(set(signatures)) == 2  # only the in-flight inference again
