"""Results into state (issue 15, deliverable 4): a tool's ``save:``, the state tool's
``set``/``append``/``merge``, and the turn applying one turn's parallel writes in the order
the model asked for them, each on the state the previous left (the lost-write bug).

Real parts: the local engine with its SQLite journal, the scripted model in process, a real
HTTP server on 127.0.0.1 for the http tool, and for kill -9 a real ``netrun run`` process
talking to the fake OpenAI-compatible server over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
from netrun.runtime.model import Completion, Request
from netrun.runtime.saving import SaveError, StateOp, apply_ops, ops_from_patch, render_saves
from netrun.spec.tools import HttpTool

from .conftest import NETRUN
from .fakes.http_server import FakeHttpServer
from .fakes.http_server import Reply as HttpReply
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .test_run_loop import Counting, call, engine, start

FILES = {
    "name": "files",
    "model": "openai/x",
    "max_iter": 3,
    "state": {
        "paths": {"type": "array", "default": []},
        "files": {"type": "object", "default": {}},
        "count": {"type": "integer", "default": 0},
        "log": {"type": "array", "items": {"type": "integer"}},
        "done": {"type": "boolean", "default": False},
    },
    "agents": {"coder": {"description": "writes files", "system": "Write files.", "tools": ["save_file", "note", "finish"]}},
    "router": {"rules": [{"if": "state.done", "stop": True}, {"if": "true", "agent": "coder"}]},
    "tools": {
        # the save_file: each write reads the state it extends
        "save_file": {
            "parameters": {"path": {"type": "string"}, "content": {"type": "string"}},
            "state": {
                "paths": "{{ state.paths + [args.path] }}",
                "files": {"merge": "{{ {args.path: args.content} }}"},
                "count": "{{ state.count + 1 }}",
            },
        },
        "note": {"parameters": {"n": {"type": "string"}}, "state": {"log": {"append": "{{ args.n }}"}}},
        "finish": {"state": {"done": True}},
    },
}


def test_two_parallel_state_calls_of_one_turn_both_land(tmp_path: Path) -> None:
    client = Counting(
        {
            "coder": [
                {"tool_calls": [call("save_file", path="a.py", content="A"), call("save_file", path="b.py", content="B")]},
                {"tool_calls": [call("finish")]},
            ]
        }
    )
    events: list[tuple[str, dict[str, Any]]] = []
    record = start(engine(tmp_path, client, events), FILES, tmp_path)
    assert record.status == "completed", record.error
    state = record.result["state"]
    assert state["paths"] == ["a.py", "b.py"]  # in the model's order, the second on the first's state
    assert state["files"] == {"a.py": "A", "b.py": "B"}
    assert state["count"] == 2
    first, second = record.result["results"][0]["tool_calls"]
    assert first["result"] == {"updated": {"paths": ["a.py"], "files": {"a.py": "A"}, "count": 1}}
    assert second["result"] == {"updated": {"paths": ["a.py", "b.py"], "files": {"a.py": "A", "b.py": "B"}, "count": 2}}
    reported = [
        (d["result"]["updated"]["count"], d["replayed"]) for k, d in events if k == "tool.result" and d["tool"] == "save_file"
    ]
    assert reported == [(1, False), (2, False)]  # each result reported once, as saved


def test_append_extends_and_coerces_items_merge_sets_keys(tmp_path: Path) -> None:
    client = Counting(
        {
            "coder": [
                {"tool_calls": [call("note", n="1"), call("note", n="[2, 3]"), call("note", n="4")]},
                {"tool_calls": [call("finish")]},
            ]
        }
    )
    record = start(engine(tmp_path, client), FILES, tmp_path)
    assert record.status == "completed", record.error
    # a field not set yet starts empty; JSON text of an array adds its items; items take the declared type
    assert record.result["state"]["log"] == [1, 2, 3, 4]


def test_render_and_apply_operations_directly() -> None:
    fields = {"tags": "array", "meta": "object", "n": "integer"}
    saves = HttpTool.model_validate(
        {
            "http": {"url": "https://example.com"},
            "save": {
                "tags": {"append": "{{ result.tags }}"},
                "meta": {"merge": "{{ result.meta }}"},
                "n": "{{ result.n }}",
            },
        }
    ).save
    ops = render_saves(saves, {"result": {"tags": ["x"], "meta": {"k": 1}, "n": "7"}}, fields)
    assert ops == [StateOp("append", "tags", ["x"]), StateOp("merge", "meta", {"k": 1}), StateOp("set", "n", 7)]
    state: dict[str, Any] = {"tags": ["w"], "meta": {"j": 0, "k": 0}}
    assert apply_ops(state, ops, fields) == {"tags": ["w", "x"], "meta": {"j": 0, "k": 1}, "n": 7}
    assert state == {"tags": ["w", "x"], "meta": {"j": 0, "k": 1}, "n": 7}
    # a list appended as one item is written inside a list
    nested = HttpTool.model_validate({"http": {"url": "https://e.com"}, "save": {"tags": {"append": ["{{ result }}"]}}}).save
    assert render_saves(nested, {"result": [1, 2]}, fields) == [StateOp("append", "tags", [[1, 2]])]
    # all or none: a failing operation leaves the state as it was
    before = dict(state)
    with pytest.raises(SaveError, match="cannot append to state field 'meta': it holds an object, not an array"):
        apply_ops(state, [StateOp("set", "n", 8), StateOp("append", "meta", [1])], fields)
    assert state == before
    with pytest.raises(SaveError, match=r"tools\.t\.save\.meta\.merge: merge into 'meta' needs an object, got an array"):
        render_saves(saves, {"result": {"tags": [], "meta": [1], "n": 1}}, fields, place=("tools", "t", "save"))
    assert ops_from_patch({"a": 1, "b": [2]}) == [StateOp("set", "a", 1), StateOp("set", "b", [2])]


def _http_network(url: str) -> dict[str, Any]:
    return {
        "name": "lookup",
        "model": "openai/x",
        "max_iter": 3,
        "state": {
            "order": {"type": "object"},
            "totals": {"type": "array", "default": []},
            "status": {"type": "string"},
            "done": {"type": "boolean", "default": False},
        },
        "agents": {"clerk": {"description": "d", "system": "help", "tools": ["lookup", "finish"]}},
        "router": {"rules": [{"if": "state.done", "stop": True}, {"if": "true", "agent": "clerk"}]},
        "tools": {
            "lookup": {
                "parameters": {"id": {"type": "string"}},
                "http": {"url": url + "/orders/{{ args.id }}", "retries": 0},
                "save": {
                    "order": {"merge": "{{ result.body }}"},
                    "totals": {"append": "{{ result.body.total }}"},
                    "status": "{{ args.id }}: {{ result.status }}",
                },
            },
            "finish": {"state": {"done": True}},
        },
    }


def test_an_http_tool_s_result_is_saved_into_state_and_an_error_result_saves_nothing(tmp_path: Path) -> None:
    with FakeHttpServer() as api:
        api.script("/orders/A1", HttpReply(200, {"id": "A1", "total": 12}))
        api.script("/orders/B2", HttpReply(200, {"id": "B2", "total": 30, "paid": True}))
        api.script("/orders/C3", HttpReply(500, {"oops": True}))
        client = Counting(
            {
                "clerk": [
                    {"tool_calls": [call("lookup", id="A1"), call("lookup", id="C3"), call("lookup", id="B2")]},
                    {"tool_calls": [call("finish")]},
                ]
            }
        )
        record = start(engine(tmp_path, client), _http_network(api.url), tmp_path)
    assert record.status == "completed", record.error
    assert record.result["state"] == {
        "order": {"id": "B2", "total": 30, "paid": True},  # A1 merged, then B2 over it
        "totals": [12, 30],  # C3's error result saved nothing
        "status": "B2: 200",
        "done": True,
    }
    calls = record.result["results"][0]["tool_calls"]
    assert calls[0]["result"] == {"status": 200, "body": {"id": "A1", "total": 12}}  # the model sees the result
    assert calls[1]["error"].startswith("HTTP 500")


def test_a_save_that_fails_tells_the_model_the_call_ran_and_saves_nothing(tmp_path: Path) -> None:
    with FakeHttpServer() as api:
        api.script("/orders/A1", HttpReply(200, {"id": "A1", "total": 12}))
        api.script("/orders/X", HttpReply(200, ["not", "an", "object"]))
        client = Counting(
            {"clerk": [{"tool_calls": [call("lookup", id="X"), call("lookup", id="A1")]}, {"tool_calls": [call("finish")]}]}
        )
        record = start(engine(tmp_path, client), _http_network(api.url), tmp_path)
    assert record.status == "completed", record.error
    bad, good = record.result["results"][0]["tool_calls"]
    assert bad["error"] == (
        "the call ran, but its result was not saved into state: tools.lookup.save.order.merge: "
        "merge into 'order' needs an object, got an array"
    )
    assert good["error"] is None
    assert record.result["state"]["totals"] == [12] and record.result["state"]["status"] == "A1: 200"


def test_a_secret_in_a_result_never_reaches_the_state_or_the_events(tmp_path: Path) -> None:
    token = "s3cr3t-token-value"
    spec = _http_network("")
    lookup = spec["tools"]["lookup"]
    events: list[tuple[str, dict[str, Any]]] = []
    with FakeHttpServer() as api:
        lookup["http"] = {**lookup["http"], "url": api.url + "/orders/{{ args.id }}", "headers": {"X-Token": "${TOKEN}"}}
        api.script("/orders/A1", lambda hit: HttpReply(200, {"id": hit.headers["x-token"], "total": 1}))  # echoes it
        client = Counting({"clerk": [{"tool_calls": [call("lookup", id="A1")]}, {"tool_calls": [call("finish")]}]})
        eng = LocalEngine(Journal(tmp_path / "runs.db"), {"TOKEN": token}, lambda k, d: events.append((k, d)),
                          models=lambda spec: client, backoff=0.01)  # fmt: skip
        record = start(eng, spec, tmp_path)
        assert record.status == "completed", record.error
        assert api.hits[0].headers["x-token"] == token  # it was sent...
    assert record.status == "completed", record.error
    assert token not in json.dumps(record.result)  # ...and saved redacted
    assert record.result["state"]["order"]["id"] != token
    assert token not in json.dumps(events, default=str)
    assert token not in (tmp_path / "runs.db").read_bytes().decode(errors="replace")


def test_an_old_journal_s_plain_state_patch_still_replays(tmp_path: Path) -> None:
    """A state tool's step journaled before operations existed holds ``result`` and a plain
    ``state_patch``: a replay applies that patch (set operations), not the tool's templates."""

    class Crash(BaseException):
        pass

    replies = {
        "coder": [
            {"tool_calls": [call("save_file", path="a.py", content="A")]},
            {"tool_calls": [call("finish")]},
        ]
    }
    first = Counting(replies)
    original = first.complete

    async def dying(request: Request, on_text: Any = None) -> Completion:
        if request.turn == 1:
            raise Crash()
        return await original(request, on_text)

    first.complete = dying  # type: ignore[method-assign]
    with pytest.raises(Crash):
        start(engine(tmp_path, first), FILES, tmp_path)
    (run_id,) = Journal(tmp_path / "runs.db").runs("running")
    legacy = {"paths": ["old.py"], "files": {"old.py": "O"}, "count": 41}
    with sqlite3.connect(tmp_path / "runs.db") as db:
        (step_id,) = [
            s for (s,) in db.execute("SELECT step_id FROM steps WHERE run_id = ?", (run_id,)) if s.endswith("save_file")
        ]
        output = {"result": {"updated": legacy}, "state_patch": legacy, "seconds": 0.0}
        db.execute("UPDATE steps SET output = ? WHERE run_id = ? AND step_id = ?", (json.dumps(output), run_id, step_id))
    second = Counting(replies)
    record = asyncio.run(engine(tmp_path, second).resume(run_id))
    assert record.status == "completed", record.error
    assert record.result["state"] == {**legacy, "log": None, "done": True}
    assert record.result["results"][0]["tool_calls"][0]["result"] == {"updated": legacy}
    assert second.calls == [("coder", 1)]


# -- kill -9 in the middle, then resume: the same state ---------------------------------------

KILL_NETWORK = """\
name: kept
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 4
state:
  paths: {{type: array, default: []}}
  count: {{type: integer, default: 0}}
  totals: {{type: array}}
  done: {{type: boolean, default: false}}
agents:
  coder: {{description: writes, system: "Write {{{{ input }}}}", tools: [save_file, lookup, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: coder}}]
tools:
  save_file:
    parameters: {{path: {{type: string}}}}
    state: {{paths: {{append: "{{{{ args.path }}}}"}}, count: "{{{{ state.count + 1 }}}}"}}
  lookup:
    parameters: {{id: {{type: string}}}}
    http: {{url: "{api}/orders/{{{{ args.id }}}}", retries: 0}}
    save: {{totals: {{append: "{{{{ result.body.total }}}}"}}}}
  finish: {{state: {{done: true}}}}
"""

KILL_SCRIPT = [
    Reply(text="writing", tool_calls=[ToolCall("save_file", {"path": "a.py"}), ToolCall("lookup", {"id": "A1"})]),
    Reply(text="more", tool_calls=[ToolCall("save_file", {"path": "b.py"}), ToolCall("save_file", {"path": "c.py"})]),
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


def test_kill_9_then_resume_rebuilds_the_same_state(tmp_path: Path) -> None:
    hang = 2.0
    script = [KILL_SCRIPT[0], KILL_SCRIPT[1], Reply(**{**KILL_SCRIPT[2].__dict__, "delay": hang})]
    db = tmp_path / "runs.db"
    with FakeLLM(script) as llm, FakeHttpServer() as api:
        api.script("/orders/A1", HttpReply(200, {"id": "A1", "total": 12}))
        (tmp_path / "kept.yaml").write_text(KILL_NETWORK.format(base=llm.base_url, api=api.url))
        proc = _netrun(["run", "kept.yaml", "-i", "code"], db, tmp_path)
        deadline = time.monotonic() + 60
        while llm.count < 3:  # both writing turns are journaled; the third inference hangs
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "netrun never reached the call to kill at"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.communicate()

        (run_id,) = Journal(db).runs("running")
        llm.set_script([KILL_SCRIPT[2]])
        resumed = _netrun(["run", "--resume", run_id], db, tmp_path)
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        result = json.loads(out)
        hits = api.hits_for("/orders/A1")
        time.sleep(max(0.0, hang + 0.5 - (time.monotonic() - killed_at)))  # the orphaned call ends

    assert result["status"] == "completed"
    assert result["result"]["state"] == {"paths": ["a.py", "b.py", "c.py"], "count": 3, "totals": [12], "done": True}
    assert len(hits) == 1  # the lookup completed before the kill: replayed from the journal, not made again
    second_turn = result["result"]["results"][1]["tool_calls"]
    assert [t["result"]["updated"]["count"] for t in second_turn] == [2, 3]


STUBBED = """\
name: stubbed
model: openai/gpt-4o-mini
max_iter: 3
state:
  total: {type: integer}
  done: {type: boolean, default: false}
agents:
  clerk: {description: d, system: help, tools: [lookup, finish]}
router:
  rules: [{if: state.done, stop: true}, {if: "true", agent: clerk}]
tools:
  lookup:
    parameters: {id: {type: string}}
    http: {url: "https://orders.invalid/{{ args.id }}"}
    save: {total: "{{ result.body.total }}"}
  finish: {state: {done: true}}
"""

STUBBED_CASES = """\
cases:
  saved:
    input: order A1
    replies:
      clerk:
        - tool_calls: [{name: lookup, args: {id: A1}}]
        - tool_calls: [{name: finish, args: {}}]
    tools:
      lookup: {result: {status: 200, body: {total: 12}}}
    expect:
      state: {total: 12, done: true}
"""


def test_a_stubbed_tool_s_result_is_saved_in_netrun_test(netrun_cli: Any, tmp_path: Path) -> None:
    (tmp_path / "stubbed.yaml").write_text(STUBBED)
    (tmp_path / "stubbed.test.yaml").write_text(STUBBED_CASES)
    result = netrun_cli("test", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "stubbed.test.yaml::saved PASSED" in result.output


# -- an MCP tool's save: (mcp_servers.S.save.TOOL), against a real MCP server ---------------------

TIME_SERVER = Path(sys.executable).parent / "mcp-server-time"


@pytest.mark.skipif(not TIME_SERVER.exists(), reason="mcp-server-time is not installed")
def test_an_mcp_tool_saves_its_result_and_args_into_state_and_a_replay_saves_the_same(tmp_path: Path) -> None:
    from netrun.spec import NetworkSpec

    calls = [ToolCall("clock__get_current_time", {"timezone": tz}) for tz in ("UTC", "Europe/Paris")]
    with FakeLLM([Reply(tool_calls=calls), Reply(text="b done")]) as llm:
        spec = {
            "name": "clocked",
            "model": {"id": "openai/fake", "api_base": llm.base_url, "api_key": "${FAKE_LLM_KEY}"},
            "max_iter": 2,
            "state": {"zones": {"type": "array", "default": []}, "last": {"type": "object"}},
            "agents": {
                "a": {"description": "asks the time", "system": "Time?", "tools": ["clock.get_current_time"]},
                # b waits first: the run resumes, replaying a's turn without connecting the server
                "b": {"description": "waits", "system": "Zones: {{ state.zones | join(',') }}", "before": [{"tool": "hold"}]},
            },
            "router": {
                "rules": [
                    {"if": "call_count >= 2", "stop": True},
                    {"if": "call_count == 1", "agent": "b"},
                    {"if": "true", "agent": "a"},
                ]
            },
            "tools": {"hold": {"wait_for_event": {"event": "app/go", "timeout": "1h"}}},
            "mcp_servers": {
                "clock": {
                    "transport": "stdio",
                    "command": str(TIME_SERVER),
                    "args": ["--local-timezone", "UTC"],
                    "save": {"get_current_time": {"zones": {"append": "{{ args.timezone }}"}, "last": "{{ result }}"}},
                }
            },
        }
        environ = {**os.environ, "FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        engine_ = LocalEngine(Journal(tmp_path / "runs.db"), environ)

        async def scenario() -> Any:
            waiting = await engine_.start(NetworkSpec.model_validate(spec), tmp_path, input="now")
            assert waiting.status == "waiting", waiting.error
            (resumed,) = await engine_.deliver("app/go", {})
            return resumed

        record = asyncio.run(scenario())
        system_b = llm.requests[-1]["messages"][0]["content"]
    assert record.status == "completed", record.error
    state = record.result["state"]
    assert state["zones"] == ["UTC", "Europe/Paris"]  # both calls' writes, in the model's order, rebuilt on replay
    assert isinstance(state["last"], dict) and state["last"].get("timezone") == "Europe/Paris"
    assert system_b == "Zones: UTC,Europe/Paris"


def test_validate_checks_an_mcp_tool_s_save(tmp_path: Path) -> None:
    from netrun.validate import validate_paths

    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nmodel: openai/x\nstate: {zones: {type: array}, n: {type: integer}}\n"
        "agents:\n  a: {system: hi, tools: [clock.get_current_time]}\n"
        "mcp_servers:\n  clock:\n    transport: stdio\n    command: mcp-server-time\n    exclude: [convert_time]\n"
        "    save:\n      get_current_time: {zonez: '{{ args.timezone }}', n: {append: '{{ reslt }}'}}\n"
        "      convert_time: {zones: '{{ result }}'}\n"
    )
    (result,) = validate_paths([path]).files
    found = [(d.pos.line, d.code) for d in result.diagnostics]
    messages = " | ".join(d.message for d in result.diagnostics)
    assert (12, "unknown-state-field") in found and "state has no field 'zonez'; did you mean 'zones'?" in messages
    assert any(code == "append-needs-array" for _, code in found)
    assert "undefined variable 'reslt'; did you mean 'result'?" in messages
    assert (13, "save-not-offered") in found
