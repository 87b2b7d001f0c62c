"""Steps around agents and runs (issue 15, deliverable 5): ``setup:``, an agent's ``before:``
and ``after:``, ``finally:``.

Real parts: the local engine with its SQLite journal, the fake OpenAI-compatible model server
over HTTP (the system prompts asserted are the requests it recorded), a real HTTP server on
127.0.0.1 for the http tools the steps call (its hits count the calls), and for kill -9 a
real ``netrun run`` process, resumed with ``--resume``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
from netrun.spec import NetworkSpec
from netrun.validate import validate_paths

from .conftest import NETRUN, until
from .fakes.http_server import FakeHttpServer
from .fakes.http_server import Reply as HttpReply
from .fakes.llm_server import FakeLLM, Reply

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def network(llm: FakeLLM, api: FakeHttpServer, **extra: Any) -> dict[str, Any]:
    """A one-agent network whose tools call ``api``; ``extra`` replaces or adds top-level keys."""
    spec: dict[str, Any] = {
        "name": "lc",
        "model": {"id": "openai/fake", "api_base": llm.base_url, "api_key": "${FAKE_LLM_KEY}"},
        "max_iter": 3,
        "state": {"priority": {"type": "string"}, "notes": {"type": "array", "default": []}, "closed": {"type": "boolean"}},
        "agents": {"triage": {"description": "triages", "system": "Triage."}},
        "router": {"rules": [{"if": "call_count >= 1", "stop": True}, {"if": "true", "agent": "triage"}]},
        "tools": {
            "fetch_ticket": {
                "parameters": {"id": {"type": "string"}},
                "http": {"url": api.url + "/tickets/{{ args.id }}", "retries": 0},
            },
            "notify": {
                "parameters": {"text": {"type": "string"}},
                "http": {"method": "POST", "url": api.url + "/notify", "body": {"text": "{{ args.text }}"}, "retries": 0},
            },
            "note": {"parameters": {"text": {"type": "string"}}, "state": {"notes": {"append": "{{ args.text }}"}}},
        },
    }
    spec.update(extra)
    return spec


def start(tmp_path: Path, spec: dict[str, Any], events: list[tuple[str, dict[str, Any]]] | None = None) -> Any:
    sink = (lambda kind, data: events.append((kind, data))) if events is not None else None
    engine = LocalEngine(Journal(tmp_path / "runs.db"), ENV, sink, backoff=0.01)
    return asyncio.run(engine.start(NetworkSpec.model_validate(spec), tmp_path, input="T1"))


def systems(llm: FakeLLM) -> list[str]:
    return [r["messages"][0]["content"] for r in llm.requests]


def test_before_steps_save_into_state_and_show_their_result_to_the_prompt(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="triaged")])
    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(200, {"title": "Printer on fire", "priority": "high"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        spec = network(llm, api)
        spec["agents"]["triage"] |= {
            "system": "Ticket: {{ steps.ticket.body.title }} ({{ state.priority }}) for {{ agent.name }}",
            "before": [
                {
                    "tool": "fetch_ticket",
                    "args": {"id": "{{ input }}"},
                    "as": "ticket",
                    "save": {"priority": "{{ result.body.priority }}"},
                }
            ],
            "after": [
                {"tool": "note", "args": {"text": "{{ last_output }}"}},
                {"tool": "notify", "args": {"text": "{{ steps.ticket.body.title }}: {{ last_output }}"}},
                {"tool": "notify", "if": "state.priority == 'low'", "args": {"text": "skipped"}},
            ],
        }
        events: list[tuple[str, dict[str, Any]]] = []
        record = start(tmp_path, spec, events)
        assert record.status == "completed", record.error
        assert systems(llm) == ["Ticket: Printer on fire (high) for triage"]
        assert record.result["state"]["priority"] == "high"
        assert record.result["state"]["notes"] == ["triaged"]  # the after-step saw the turn's text
        assert [h.json() for h in api.hits_for("/notify")] == [{"text": "Printer on fire: triaged"}]  # the `if` skipped one
    steps = [d["step"] for k, d in events if k == "tool.called"]
    assert steps == ["turn.0.triage.before.0.fetch_ticket", "turn.0.triage.after.0.note", "turn.0.triage.after.1.notify"]
    run_id = record.id
    assert {"turn.0.triage.before.0.fetch_ticket", "turn.0.triage.after.1.notify"} <= set(
        Journal(tmp_path / "runs.db").step_ids(run_id)
    )


def test_skip_agent_if_skips_the_turn_and_stop_if_stops_the_run(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="second agent ran")])
    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(200, {"state": "closed"}))
        api.script("/tickets/T2", HttpReply(200, {"state": "open"}))
        spec = network(llm, api)
        spec["agents"] = {
            "triage": {
                "description": "skipped when the ticket is closed",
                "system": "Triage.",
                "before": [{"tool": "fetch_ticket", "args": {"id": "T1"}, "skip_agent_if": "result.body.state == 'closed'"}],
            },
            "answer": {
                "description": "answers",
                "system": "Answer.",
                "after": [{"tool": "fetch_ticket", "args": {"id": "T2"}, "stop_if": "result.body.state == 'open'"}],
            },
        }
        # triage is picked first (skipped, a turn counted), then answer; the after-step stops the run
        spec["router"]["rules"] = [
            {"if": "call_count == 0 and not steps", "agent": "triage"},
            {"if": "true", "agent": "answer"},
        ]
        spec["agents"]["triage"]["before"][0]["as"] = "first"
        record = start(tmp_path, spec)
    assert record.status == "completed", record.error
    assert record.result["route"] == ["answer"]  # triage's turn was skipped: no inference
    assert systems(llm) == ["Answer."]
    assert record.result["stop_reason"] == "after:answer"
    assert record.result["iterations"] == 2  # the skipped turn counts toward max_iter


def test_setup_runs_once_before_the_router_and_can_stop_the_run(tmp_path: Path, llm: FakeLLM) -> None:
    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(200, {"state": "closed"}))
        spec = network(
            llm, api, setup=[{"tool": "fetch_ticket", "args": {"id": "{{ input }}"}, "stop_if": "result.body.state == 'closed'"}]
        )
        record = start(tmp_path, spec)
        assert len(api.hits_for("/tickets/T1")) == 1
    assert record.status == "completed", record.error
    assert record.result["stop_reason"] == "setup"
    assert llm.requests == []  # no agent ran


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_failing_step_runs_a_command_again_only_when_it_is_idempotent(tmp_path: Path, llm: FakeLLM, idempotent: bool) -> None:
    """A command that failed may have done half its work: a step retries it (function.retries)
    only when the tool says running it twice is safe (durability rule 6's ``idempotent``)."""
    counter = tmp_path / "ran.txt"
    with FakeHttpServer() as api:
        spec = network(llm, api, setup=[{"tool": "deploy"}], function={"retries": 2})
        spec["tools"]["deploy"] = {
            "command": {"argv": ["/bin/sh", "-c", f"echo x >> {counter}; exit 3"], "idempotent": idempotent}
        }
        record = start(tmp_path, spec)
    assert record.status == "failed" and "exited with code 3" in record.error
    assert counter.read_text().count("x") == (3 if idempotent else 1)


@pytest.mark.parametrize("non_retriable", [True, False])
def test_a_failing_setup_step_fails_the_run_non_retriable_at_once(tmp_path: Path, llm: FakeLLM, non_retriable: bool) -> None:
    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(404, {"error": "no such ticket"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        setup = [{"tool": "fetch_ticket", "args": {"id": "{{ input }}"}, "non_retriable": non_retriable}]
        final = [{"tool": "notify", "args": {"text": "{{ outcome.status }}: {{ outcome.error }}"}}]
        spec = network(llm, api, setup=setup, function={"retries": 2}, **{"finally": final})
        record = start(tmp_path, spec)
        hits = len(api.hits_for("/tickets/T1"))
        notified = [h.json()["text"] for h in api.hits_for("/notify")]
    assert record.status == "failed"
    assert hits == (1 if non_retriable else 3)  # without non_retriable: function.retries more attempts
    assert record.error.startswith("setup[0] (fetch_ticket) failed: ")
    assert "HTTP 404 Not Found" in record.error
    assert llm.requests == []
    assert len(notified) == 1 and notified[0].startswith("failed: setup[0] (fetch_ticket) failed")  # finally ran once


def test_finally_runs_once_on_a_completed_run_and_sees_its_outcome(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="all good")])
    with FakeHttpServer() as api:
        api.script("/notify", HttpReply(200, {"ok": True}))
        final = [
            {"tool": "notify", "args": {"text": "{{ outcome.status }} {{ outcome.stop }} {{ outcome.output }}"}},
            {"tool": "note", "args": {"text": "cleaned"}},
        ]
        record = start(tmp_path, network(llm, api, **{"finally": final}))
        notified = [h.json()["text"] for h in api.hits_for("/notify")]
    assert record.status == "completed", record.error
    assert notified == ["completed router all good"]
    assert record.result["state"]["notes"] == ["cleaned"]  # finally's writes land in the result


def test_a_failing_finally_step_does_not_change_the_outcome(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="fine")])
    with FakeHttpServer() as api:
        api.script("/notify", HttpReply(500, {"down": True}))
        final = [
            {"tool": "notify", "args": {"text": "x"}, "non_retriable": True},
            {"tool": "note", "args": {"text": "still ran"}},
        ]
        record = start(tmp_path, network(llm, api, **{"finally": final}))
    assert record.status == "completed", record.error
    assert record.result["state"]["notes"] == ["still ran"]


# -- kill -9 in the middle of a run, then resume ------------------------------------------------


def test_kill_9_mid_run_then_resume_repeats_no_setup_and_runs_finally_once(tmp_path: Path) -> None:
    with FakeHttpServer() as api, FakeLLM([Reply(text="first"), Reply(text="second")]) as llm:
        api.script("/tickets/T1", HttpReply(200, {"title": "t"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        # the agent's before-step blocks in its second turn until the process is killed
        gate = threading.Event()
        api.script("/tickets/block", lambda hit: HttpReply(200, {"opened": gate.wait(30)}))
        spec = network(
            llm,
            api,
            setup=[{"tool": "fetch_ticket", "args": {"id": "T1"}, "as": "ticket"}],
            **{"finally": [{"tool": "notify", "args": {"text": "{{ outcome.status }}"}}]},
        )
        spec["agents"]["triage"]["before"] = [{"tool": "fetch_ticket", "args": {"id": "{{ 'block' if call_count else 'T1' }}"}}]
        spec["router"] = {"rules": [{"if": "call_count >= 2", "stop": True}, {"if": "true", "agent": "triage"}]}
        (tmp_path / "lc.yaml").write_text(yaml.safe_dump(spec))
        db = tmp_path / "runs.db"
        args = ["--db", str(db), "--json"]
        env = {**os.environ, **ENV}
        proc = subprocess.Popen([NETRUN, "run", "lc.yaml", "-i", "T1", *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        until("the second turn's before-step is under way", lambda: proc.poll() is not None or api.hits_for("/tickets/block"))
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        gate.set()
        (run_id,) = Journal(db).runs("running")
        resumed = subprocess.run([NETRUN, "run", "--resume", run_id, *args], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        result = json.loads(resumed.stdout)
        setup_hits = len(api.hits_for("/tickets/T1"))
        notified = [h.json()["text"] for h in api.hits_for("/notify")]
        inferences = len(llm.requests)
    assert result["status"] == "completed", result
    assert setup_hits == 2  # setup once, turn 0's before-step once: neither repeated by the resume
    assert inferences == 2  # turn 0's inference was not repeated either
    assert notified == ["completed"]  # finally ran once, after the resume
    assert result["result"]["route"] == ["triage", "triage"]


# -- netrun validate ------------------------------------------------------------------------------

INVALID = """\
name: bad
model: openai/x
state: {priority: {type: string}}
agents:
  a:
    system: hi
    before:
      - tool: fetch_tiket
      - tool: fetch_ticket
        args: {idd: "{{ input }}"}
        save: {priorty: "{{ result }}"}
        skip_agent_if: "reslt.ok"
    after:
      - tool: fetch_ticket
        skip_agent_if: "true"
tools:
  fetch_ticket: {parameters: {id: {type: string}}, http: {url: "https://example.com/{{ args.id }}"}}
"""


def test_validate_reports_steps_with_unknown_tools_arguments_fields_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(INVALID)
    (result,) = validate_paths([path]).files
    found = [(d.pos.line, d.pos.col, d.message) for d in result.diagnostics]
    assert found == [
        (8, 15, "unknown tool 'fetch_tiket'; did you mean 'fetch_ticket'? defined tools: fetch_ticket "
                "(a step calls a tool declared under 'tools:')"),
        (10, 16, "tool 'fetch_ticket' has no parameter 'idd'; did you mean 'id'? defined parameters: id"),
        (11, 16, "state has no field 'priorty'; did you mean 'priority'? defined state fields: priority "
                 "(declare it under 'state:')"),
        (12, 25, "undefined variable 'reslt'; did you mean 'result'? available here: agent, call_count, event, input, "
                 "last_agent, last_output, network, outcome, result, results, run, state, ... (1 more)"),
        (15, 9, "unknown field 'skip_agent_if'; allowed: args, as, if, non_retriable, save, stop_if, tool"),
    ]  # fmt: skip
    paths = [d.path for d in result.diagnostics]
    assert paths[0] == ("agents", "a", "before", 0, "tool") and paths[-1] == ("agents", "a", "after", 0, "skip_agent_if")


# -- on Inngest (the stand-in executor) ------------------------------------------------------------


def test_on_inngest_setup_is_retried_by_inngest_then_fails_and_finally_runs_once(tmp_path: Path) -> None:
    from .fakes.inngest_executor import StandInExecutor
    from .test_serve_inngest import serve

    with StandInExecutor() as executor, FakeHttpServer() as api, FakeLLM([Reply(text="never")]) as llm:
        api.script("/tickets/T1", HttpReply(404, {"error": "no such ticket"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        spec = network(
            llm,
            api,
            setup=[{"tool": "fetch_ticket", "args": {"id": "{{ input }}"}}],
            function={"retries": 1},
            **{"finally": [{"tool": "notify", "args": {"text": "{{ outcome.status }}"}}]},
        )
        (tmp_path / "lc.yaml").write_text(yaml.safe_dump(spec))
        server = serve(tmp_path, executor)
        try:
            executor.sync(f"{server.url}/api/inngest")
            run = executor.run("netrun-lc", {"name": "netrun/lc.run", "data": {"input": "T1"}})
        finally:
            server.stop()
        hits = len(api.hits_for("/tickets/T1"))
        notified = [h.json()["text"] for h in api.hits_for("/notify")]
    assert run.status == "failed"
    assert "setup[0] (fetch_ticket) failed: HTTP 404 Not Found" in run.error["message"]
    assert hits == 2  # retried once by Inngest (function.retries: 1)
    assert notified == ["failed"]  # finally ran once, though Inngest calls the function once per step
    assert llm.requests == []


def test_netrun_run_shows_the_steps_as_they_run(
    tmp_path: Path, llm: FakeLLM, netrun_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    llm.set_script([Reply(text="done")])
    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(200, {"title": "t"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        spec = network(llm, api, setup=[{"tool": "fetch_ticket", "args": {"id": "{{ input }}"}}])
        spec["agents"]["triage"]["after"] = [{"tool": "notify", "args": {"text": "{{ last_output }}"}}]
        (tmp_path / "lc.yaml").write_text(yaml.safe_dump(spec))
        result = netrun_cli("run", str(tmp_path / "lc.yaml"), "-i", "T1", "--db", str(tmp_path / "runs.db"))
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert any(line.startswith('⚙ setup step: fetch_ticket({"id": "T1"})') for line in lines), lines
    assert any(line.startswith('⚙ after step: notify({"text": "done"})') for line in lines), lines


# -- Inngest's step limit counts the steps around agents and runs ----------------------------------

COUNTED = """\
name: n
model: openai/gpt-4o-mini
max_iter: {turns}
trigger: {{event: app/chat.requested, thread: "{{{{ event.data.threadId }}}}"}}
agents:
  a:
    description: d
    system: hi
    before: [{{tool: notify}}]
setup: [{{tool: notify}}]
finally: [{{tool: cleanup}}]
send: {{completed: [{{event: app/done, data: {{x: 1}}}}]}}
tools:
  notify: {{http: {{url: "https://example.com/n"}}}}
  cleanup: {{command: {{argv: [/bin/true]}}}}
"""


def test_inngest_s_step_limit_counts_lifecycle_send_and_trigger_thread_steps(tmp_path: Path) -> None:
    path = tmp_path / "n.yaml"
    path.write_text(COUNTED.format(turns=249))  # 1 + 2 + 1 + 1 + 1 + 249 x 4 = 1,002
    (d,) = [d for d in validate_paths([path]).diagnostics if d.code == "too-many-steps"]
    assert d.message.startswith("a run can take up to 1,002 Inngest steps")
    assert (
        "1 (netrun.definition) + 2 (thread.load, thread.input) + 1 (setup steps) + 1 (finally steps) + 1 (send: events) "
        "+ 249 turns × 4 steps of agent 'a' (1 routing call + 1 before:/after: step + 1 inference + 1 thread append) = 1,002"
    ) in d.message  # finally's command: its call (rule 6 takes no marker step on Inngest)
    path.write_text(COUNTED.format(turns=248))  # 998
    assert [d for d in validate_paths([path]).diagnostics if d.code == "too-many-steps"] == []
