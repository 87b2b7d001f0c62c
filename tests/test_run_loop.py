"""The network loop on the local engine, offline: routing, tools, limits, waits, resume."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from netrun.compile import ModelFactory
from netrun.engines.approvals import ApprovalError
from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
from netrun.finder import find_network
from netrun.models.scripted import ScriptedClient
from netrun.runtime.model import Completion, Request
from netrun.spec import NetworkSpec

from .conftest import REPO

PLANNER = {
    "name": "plan",
    "model": "openai/gpt-4o-mini",
    "max_iter": 6,
    "state": {"plan": "string", "draft": "string", "done": {"type": "boolean", "default": False}},
    "agents": {
        "planner": {"description": "plans", "system": "Plan: {{ input }}", "tools": ["save_plan"]},
        "editor": {"description": "edits", "system": "Plan is {{ state.plan }}", "tools": ["save_draft", "finish"]},
    },
    "router": {
        "rules": [
            {"if": "state.done", "stop": True},
            {"if": "not state.plan", "agent": "planner"},
            {"if": "true", "agent": "editor"},
        ]
    },
    "tools": {
        "save_plan": {"parameters": {"plan": {"type": "string"}}, "state": {"plan": "{{ args.plan }}"}},
        "save_draft": {"parameters": {"draft": {"type": "string"}}, "state": {"draft": "{{ args.draft }}"}},
        "finish": {"state": {"done": True}},
    },
}


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


class Counting:
    """A scripted client that counts the calls that really reach it."""

    def __init__(self, replies: dict[str, list[dict[str, Any]]]) -> None:
        self.inner = ScriptedClient(replies, "test")
        self.calls: list[tuple[str, int]] = []

    async def complete(self, request: Request, on_text: Any = None) -> Completion:
        self.calls.append((request.caller, request.turn))
        return await self.inner.complete(request, on_text)


def engine(tmp_path: Path, client: Any, events: list[tuple[str, dict[str, Any]]] | None = None) -> LocalEngine:
    factory: ModelFactory = lambda spec: client  # noqa: E731
    sink = (lambda kind, data: events.append((kind, data))) if events is not None else None
    return LocalEngine(Journal(tmp_path / "runs.db"), {}, sink, models=factory, backoff=0.01, networks=find_network)


def start(eng: LocalEngine, spec: dict[str, Any], tmp_path: Path, **kw: Any) -> Any:
    return asyncio.run(eng.start(NetworkSpec.model_validate(spec), tmp_path, input=kw.pop("input", "write about owls"), **kw))


def test_rules_route_state_and_stop(tmp_path) -> None:
    client = Counting(
        {
            "planner": [{"text": "planning", "tool_calls": [call("save_plan", plan="1. owls")]}],
            "editor": [
                {"text": "draft one", "tool_calls": [call("save_draft", draft="Owls hoot.")]},
                {"text": "final", "tool_calls": [call("finish")]},
            ],
        }
    )
    record = start(engine(tmp_path, client), PLANNER, tmp_path)
    assert record.status == "completed", record.error
    r = record.result
    assert r["route"] == ["planner", "editor", "editor"]
    assert r["state"] == {"plan": "1. owls", "draft": "Owls hoot.", "done": True}
    assert r["stop_reason"] == "router"
    assert r["output"] == "final"
    assert r["iterations"] == 3
    assert client.calls == [("planner", 0), ("editor", 0), ("editor", 1)]


def test_max_iter_stops_the_loop(tmp_path) -> None:
    spec = {**PLANNER, "max_iter": 2}
    client = Counting({"planner": [{"tool_calls": [call("save_plan", plan="p")]}], "editor": [{"text": "e1"}, {"text": "e2"}]})
    record = start(engine(tmp_path, client), spec, tmp_path)
    assert record.result["stop_reason"] == "max_iter"
    assert record.result["route"] == ["planner", "editor"]


def test_token_limit_and_agent_call_limit(tmp_path) -> None:
    spec = {**PLANNER, "limits": {"tokens": 1}}
    client = Counting({"planner": [{"text": "long enough text to count", "tool_calls": [call("save_plan", plan="p")]}]})
    assert start(engine(tmp_path, client), spec, tmp_path).result["stop_reason"] == "tokens"
    agents = {**PLANNER["agents"], "editor": {**PLANNER["agents"]["editor"], "limits": {"calls": 1}}}
    client = Counting({"planner": [{"tool_calls": [call("save_plan", plan="p")]}], "editor": [{"text": "once"}]})
    record = start(engine(tmp_path / "b", client), {**PLANNER, "agents": agents}, tmp_path)
    assert record.result["stop_reason"] == "agent_calls:editor"
    assert record.result["route"] == ["planner", "editor"]


def test_tool_errors_go_back_to_the_model(tmp_path) -> None:
    client = Counting(
        {
            "planner": [
                {"tool_calls": [call("nope"), {"name": "save_plan", "args": "{not json"}, call("save_plan", plan=3)]},
                {"tool_calls": [call("save_plan", plan="ok")]},
            ],
            "editor": [{"tool_calls": [call("finish")]}],
        }
    )
    # The scripted client refuses tools that are not offered; let the bad name through it.
    client.inner.replies["planner"][0]["tool_calls"][0]["name"] = "save_plan"
    client.inner.replies["planner"][0]["tool_calls"][0]["args"] = {}
    record = start(engine(tmp_path, client), PLANNER, tmp_path)
    first = record.result["results"][0]["tool_calls"]
    assert [t["error"] for t in first] == [
        "args.plan: missing (it is required)",
        "the arguments are not valid JSON (Expecting property name enclosed in double quotes at character 1)",
        "args.plan: expected string",
    ]
    assert record.result["route"] == ["planner", "planner", "editor"]
    assert record.status == "completed"


def test_llm_router_picks_agents_and_hears_about_unknown_names(tmp_path) -> None:
    spec = {**PLANNER, "router": {"llm": {}}}
    client = Counting(
        {
            "router": [
                {"tool_calls": [call("select_agent", agent="planer")]},  # a typo: fed back, not a crash
                {"tool_calls": [call("select_agent", agent="planner", reason="needs a plan")]},
                {"tool_calls": [call("finish", reason="done")]},
            ],
            "planner": [{"tool_calls": [call("save_plan", plan="p")]}],
        }
    )
    record = start(engine(tmp_path, client), spec, tmp_path)
    assert record.status == "completed", record.error
    assert record.result["route"] == ["planner"]
    assert client.calls == [("router", 0), ("router", 1), ("planner", 0), ("router", 2)]


def test_a_script_that_runs_out_fails_the_run_clearly(tmp_path) -> None:
    client = Counting({"planner": [{"tool_calls": [call("save_plan", plan="p")]}]})
    record = start(engine(tmp_path, client), PLANNER, tmp_path)
    assert record.status == "failed"
    assert (
        record.error
        == "test has no reply for editor call #1 (it holds 0 for editor); the run took a different path than the script"
    )


class Crash(BaseException):
    """Stands in for the process dying in the middle of a run."""


def test_resume_after_a_crash_repeats_no_completed_call(tmp_path) -> None:
    replies = {
        "planner": [{"tool_calls": [call("save_plan", plan="p")]}],
        "editor": [{"text": "d", "tool_calls": [call("save_draft", draft="x")]}, {"tool_calls": [call("finish")]}],
    }
    first = Counting(replies)
    original = first.complete

    async def dying(request: Request, on_text: Any = None) -> Completion:
        if request.caller == "editor" and request.turn == 1:
            raise Crash()
        return await original(request, on_text)

    first.complete = dying  # type: ignore[method-assign]
    with pytest.raises(Crash):
        start(engine(tmp_path, first), PLANNER, tmp_path)
    journal = Journal(tmp_path / "runs.db")
    (run_id,) = journal.runs("running")
    second = Counting(replies)
    record = asyncio.run(engine(tmp_path, second).resume(run_id))
    assert record.status == "completed"
    assert record.result["route"] == ["planner", "editor", "editor"]
    assert second.calls == [("editor", 1)]  # only the call that never completed


WAITING = {
    "name": "support",
    "model": "openai/x",
    "state": {"answer": "string"},
    "agents": {"tech": {"description": "d", "system": "help", "tools": ["ask_developer", "save"]}},
    "router": {"rules": [{"if": "state.answer", "stop": True}, {"if": "true", "agent": "tech"}]},
    "tools": {
        "ask_developer": {
            "wait_for_event": {"event": "app/dev.response", "match": "data.ticket", "timeout": "1h"},
            "parameters": {"question": {"type": "string"}},
        },
        "save": {"parameters": {"answer": {"type": "string"}}, "state": {"answer": "{{ args.answer }}"}},
    },
}


def test_a_wait_persists_and_the_matching_event_resumes_the_run(tmp_path) -> None:
    replies = {
        "tech": [{"tool_calls": [call("ask_developer", question="why?")]}, {"tool_calls": [call("save", answer="restart it")]}]
    }
    client = Counting(replies)
    eng = engine(tmp_path, client)
    record = start(eng, WAITING, tmp_path, event={"name": "app/ticket", "data": {"ticket": "T-1"}})
    assert record.status == "waiting"
    assert asyncio.run(eng.deliver("app/dev.response", {"ticket": "T-2", "text": "no"})) == []  # no match
    (resumed,) = asyncio.run(engine(tmp_path, client).deliver("app/dev.response", {"ticket": "T-1", "text": "restart it"}))
    assert resumed.status == "completed"
    assert resumed.result["state"]["answer"] == "restart it"
    assert resumed.result["results"][0]["tool_calls"][0]["result"] == {"ticket": "T-1", "text": "restart it"}
    assert client.calls == [("tech", 0), ("tech", 1)]


def test_netrun_run_cli_replays_the_quickstart(netrun_cli, tmp_path) -> None:
    replies = tmp_path / "replies.yaml"
    replies.write_text(
        yaml.safe_dump(
            {
                "dba": [{"text": "Use a role.", "tool_calls": [call("save_dba_answer", answer="CREATE ROLE r")]}],
                "security": [
                    {"text": "Use NOLOGIN.", "tool_calls": [call("save_security_answer", answer="NOLOGIN"), call("finish")]}
                ],
            }
        )
    )
    result = netrun_cli(
        "run",
        str(REPO / "networks/quickstart.yaml"),
        "-i",
        "read-only access?",
        "--replay",
        str(replies),
        "--json",
        "--db",
        str(tmp_path / "r.db"),
    )
    out = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert out["status"] == "completed"
    assert out["result"]["route"] == ["dba", "security"]
    assert out["result"]["state"]["done"] is True


def test_netrun_run_reports_an_invalid_file_like_validate(netrun_cli, write) -> None:
    bad = write("bad.yaml", "name: x\nagents:\n  a: {system: '{{ nope }}', model: openai/x}\n")
    result = netrun_cli("run", str(bad), "-i", "hi")
    assert result.exit_code == 1
    assert "undefined variable 'nope'" in result.output


APPROVAL = {
    "name": "refunds",
    "model": "openai/x",
    "state": {"refunded": "boolean"},
    "agents": {"clerk": {"description": "d", "system": "refund", "tools": ["refund"]}},
    "router": {"rules": [{"if": "call_count >= 2", "stop": True}, {"if": "true", "agent": "clerk"}]},
    "tools": {"refund": {"approval": "required", "parameters": {"order": {"type": "string"}}, "state": {"refunded": True}}},
}


@pytest.mark.parametrize(
    ("decision", "refunded", "error"),
    [
        ({"approved": True}, True, None),
        ({"approved": False, "reason": "too large"}, None, "rejected by a human: too large; the tool did not run"),
    ],
)
def test_approval_gates_a_tool(tmp_path, decision, refunded, error) -> None:
    client = Counting({"clerk": [{"tool_calls": [call("refund", order="A1")]}, {"text": "done"}]})
    eng = engine(tmp_path, client)
    record = start(eng, APPROVAL, tmp_path)
    assert record.status == "waiting"
    # An approval for another run does not count: it is refused, saying why.
    with pytest.raises(ApprovalError, match="no run someone-else"):
        asyncio.run(eng.deliver("netrun/approval", {**decision, "run_id": "someone-else"}))
    assert eng.journal.run(record.id).status == "waiting"
    (resumed,) = asyncio.run(eng.deliver("netrun/approval", {**decision, "run_id": record.id}))
    assert resumed.status == "completed", resumed.error
    assert resumed.result["state"]["refunded"] is refunded
    assert resumed.result["results"][0]["tool_calls"][0]["error"] == error
    assert client.calls == [("clerk", 0), ("clerk", 1)]


def test_a_network_runs_another_network_as_a_tool(tmp_path, write) -> None:
    write(
        "helper.yaml",
        "name: helper\nmodel: openai/x\nagents:\n  h: {description: d, system: 'sum up {{ input }}'}\nrouter:\n  rules: [{if: 'call_count >= 1', stop: true}, {if: 'true', agent: h}]\n",
    )
    caller = {
        "name": "caller",
        "model": "openai/x",
        "agents": {"boss": {"description": "d", "system": "delegate", "tools": ["ask_helper"]}},
        "router": {"rules": [{"if": "call_count >= 2", "stop": True}, {"if": "true", "agent": "boss"}]},
        "tools": {"ask_helper": {"network": {"name": "helper", "input": "please: {{ args.input }}"}}},
    }
    client = Counting(
        {"boss": [{"tool_calls": [call("ask_helper", input="owls")]}, {"text": "thanks"}], "h": [{"text": "owls hoot"}]}
    )
    base = next(iter(tmp_path.glob("helper.yaml"))).parent
    record = start(engine(tmp_path, client), caller, base)
    assert record.status == "completed", record.error
    tool = record.result["results"][0]["tool_calls"][0]
    assert tool["result"] == {"output": "owls hoot", "state": {}}
    assert client.calls == [("boss", 0), ("h", 0), ("boss", 1)]


def test_tool_calls_of_one_turn_run_concurrently_and_count_towards_the_time_limit(tmp_path) -> None:
    from .fakes.http_server import FakeHttpServer
    from .fakes.http_server import Reply as HttpReply

    with FakeHttpServer() as api:
        api.script("*", HttpReply(200, {"ok": True}, delay=0.6))
        spec = {
            "name": "fanout",
            "model": "openai/x",
            "limits": {"time": "1s"},
            "agents": {"a": {"description": "d", "system": "go", "tools": ["get"]}},
            "router": {"rules": [{"if": "true", "agent": "a"}]},
            "tools": {"get": {"parameters": {"n": {"type": "string"}}, "http": {"url": api.url + "/{{ args.n }}", "retries": 0}}},
        }
        client = Counting({"a": [{"tool_calls": [call("get", n="1"), call("get", n="2"), call("get", n="3")]}]})
        started = time.monotonic()
        record = start(engine(tmp_path, client), spec, tmp_path)
        elapsed = time.monotonic() - started
    assert record.status == "completed", record.error
    assert sorted(h.path for h in api.hits) == ["/1", "/2", "/3"]
    assert elapsed < 1.5  # three 0.6 s calls at once, not one after another
    assert record.result["stop_reason"] == "time"  # 3 x 0.6 s of tool time > 1 s
    assert record.result["usage"]["seconds"] >= 1.8


def test_local_steps_sleep_send_and_invoke(tmp_path) -> None:
    from datetime import timedelta

    from netrun.engines.local import LocalSteps
    from netrun.runtime.steps import RunSuspended

    journal = Journal(tmp_path / "j.db")
    sent: list[list[dict[str, Any]]] = []
    invoked: list[tuple[str, str, str]] = []

    async def sender(events: list[dict[str, Any]]) -> None:
        sent.append(events)

    async def invoker(network: str, text: str, child: str) -> dict[str, Any]:
        invoked.append((network, text, child))
        return {"result": {"output": "ok"}}

    async def scenario(steps: LocalSteps) -> None:
        await steps.sleep("nap", timedelta(milliseconds=10))
        await steps.send_event("send", [{"name": "app/x", "data": {"n": 1}}])
        assert await steps.invoke("child", "helper", "hi") == {"result": {"output": "ok"}}
        await steps.sleep("long", timedelta(hours=1))

    for _ in range(2):  # the second pass replays: nothing runs again, the long sleep still holds
        with pytest.raises(RunSuspended):
            asyncio.run(scenario(LocalSteps(journal, "r1", invoker=invoker, sender=sender)))
    assert sent == [[{"name": "app/x", "data": {"n": 1}}]]
    assert invoked == [("helper", "hi", "r1.child")]
    assert [w[2] for w in journal.waits()] == ["netrun/sleep"]


class SlowCharge:
    """A tool with a side effect that takes a while (a payment)."""

    name, description, parameters = "charge", "charges a card", {"type": "object", "properties": {}}

    def __init__(self) -> None:
        self.effects: list[str] = []

    async def call(self, args: dict[str, Any], ctx: Any) -> Any:
        from netrun.runtime.tooling import ToolOutcome

        await asyncio.sleep(0.3)
        self.effects.append(ctx.step_id)
        return ToolOutcome(result={"charged": len(self.effects)}, state_patch={"charged": len(self.effects)})


def test_a_second_process_cannot_run_the_same_run(tmp_path) -> None:
    """`netrun send` in another process answers a wait while the first process still runs
    the turn's other tool call: the side effect happens once and the first process goes on."""
    charge = SlowCharge()

    class Engine(LocalEngine):
        def program(self, record: Any) -> Any:
            import dataclasses

            return dataclasses.replace(super().program(record), tools={"charge": charge})  # in place of the registry's

    spec = {
        "name": "c",
        "model": "openai/x",
        "max_iter": 5,
        "state": {"done": {"type": "boolean", "default": False}, "charged": "integer"},
        "agents": {"a": {"description": "a", "system": "hi", "tools": ["charge", "ask", "finish"]}},
        "router": {"rules": [{"if": "state.done", "stop": True}, {"if": "true", "agent": "a"}]},
        "tools": {
            "ask": {"wait_for_event": {"event": "app/answer"}, "parameters": {"question": {"type": "string"}}},
            "charge": {"state": {"charged": "0"}},
            "finish": {"state": {"done": True}},
        },
    }
    replies = {
        "a": [{"tool_calls": [call("ask", question="ok?"), call("charge")]}, {"text": "done", "tool_calls": [call("finish")]}]
    }

    def make() -> LocalEngine:  # each with its own connection, as two processes have
        return Engine(Journal(tmp_path / "runs.db"), {}, None, models=lambda s: ScriptedClient(replies, "t"), backoff=0.01)

    async def scenario() -> tuple[Any, list[Any]]:
        first, second = make(), make()
        task = asyncio.create_task(first.start(NetworkSpec.model_validate(spec), tmp_path, input="x"))
        while not first.journal.waits():
            await asyncio.sleep(0.01)
        delivered = await second.deliver("app/answer", {"yes": True})
        return await task, delivered

    record, delivered = asyncio.run(scenario())
    assert charge.effects == ["turn.0.a.tool.1.charge"]
    assert record.status == "completed"
    assert record.result["state"]["charged"] == 1
    assert [r.status for r in delivered] == ["running"]  # left to its owner
    assert Journal(tmp_path / "runs.db").run(record.id).status == "completed"


def test_a_wait_with_nothing_to_match_on_fails_instead_of_matching_everything(tmp_path) -> None:
    replies = {
        "tech": [{"tool_calls": [call("ask_developer", question="why?")]}, {"tool_calls": [call("save", answer="gave up")]}]
    }
    record = start(engine(tmp_path, Counting(replies)), WAITING, tmp_path)  # no triggering event
    assert record.status == "completed"
    assert record.result["results"][0]["tool_calls"][0]["error"] == (
        "cannot wait for app/dev.response: the event that started this run has no data.ticket to match on"
    )


def test_an_output_that_cannot_be_saved_fails_the_step_without_running_it_again(tmp_path) -> None:
    from netrun.engines.local import LocalSteps

    journal = Journal(tmp_path / "j.db")
    runs: list[int] = []

    async def effect() -> Any:
        runs.append(1)
        return {"a set": {1, 2}}

    with pytest.raises(Exception, match="cannot be saved as JSON"):
        asyncio.run(LocalSteps(journal, "r", backoff=0.01).run("s", effect))
    assert runs == [1]


def test_a_replayed_turn_keeps_its_recorded_mcp_results(tmp_path, monkeypatch) -> None:
    """On resume, a turn whose MCP tool call is recorded does not connect the server, and
    the recorded result stands (not an 'unknown tool' error)."""
    import contextlib

    import netrun.engines.execution as execution
    from netrun.runtime.tooling import ToolOutcome

    calls: list[dict[str, Any]] = []
    resolved: list[list[str]] = []

    class Lookup:
        name, description = "srv__lookup", "lookup"
        parameters = {"type": "object", "properties": {"q": {"type": "string"}}}

        async def call(self, args: dict[str, Any], ctx: Any) -> Any:
            calls.append(args)
            return ToolOutcome(result={"found": "ORDER-42"})

    class Servers:  # stands in for McpServers: counts when tools are listed
        async def resolve(self, refs: Any) -> list[Any]:
            resolved.append(list(refs))
            return [Lookup()]

    @contextlib.asynccontextmanager
    async def servers(program: Any, environ: Any) -> Any:
        yield Servers()

    monkeypatch.setattr(execution, "mcp_servers", servers)
    spec = {
        "name": "m",
        "model": "openai/x",
        "max_iter": 5,
        "state": {"done": {"type": "boolean", "default": False}},
        "mcp_servers": {"srv": {"transport": "stdio", "command": "true"}},
        "agents": {"a": {"description": "a", "system": "hi", "tools": ["srv.lookup", "ask", "finish"]}},
        "router": {"rules": [{"if": "state.done", "stop": True}, {"if": "true", "agent": "a"}]},
        "tools": {
            "ask": {"wait_for_event": {"event": "app/answer"}, "parameters": {"question": {"type": "string"}}},
            "finish": {"state": {"done": True}},
        },
    }
    client = Counting(
        {
            "a": [
                {"tool_calls": [call("srv__lookup", q="42")]},
                {"tool_calls": [call("ask", question="ok?")]},
                {"text": "done", "tool_calls": [call("finish")]},
            ]
        }
    )
    eng = engine(tmp_path, client)
    assert start(eng, spec, tmp_path).status == "waiting"
    (record,) = asyncio.run(eng.deliver("app/answer", {"yes": True}))
    assert record.status == "completed"
    assert record.result["results"][0]["tool_calls"][0]["result"] == {"found": "ORDER-42"}
    assert calls == [{"q": "42"}]
    assert len(resolved) == 3  # turns 0 and 1 live, turn 2 live after the resume; replayed turns list nothing


def test_record_and_replay_a_network_that_runs_another(netrun_cli, write, tmp_path) -> None:
    write(
        "parent.yaml",
        "name: parent\nmodel: scripted/script.replies.yaml\nmax_iter: 2\nagents:\n  boss: {description: b, system: hi, tools: [helper]}\n"
        "router:\n  rules: [{if: 'true', agent: boss}]\ntools:\n  helper: {network: child}\n",
    )
    write(
        "child.yaml",
        "name: child\nmodel: scripted/script.replies.yaml\nmax_iter: 1\nagents:\n  boss: {description: w, system: work}\n"
        "router:\n  rules: [{if: 'true', agent: boss}]\n",
    )
    # The child's agent has the parent's agent's name: their replies must not mix.
    write(
        "script.replies.yaml",
        "boss:\n  - tool_calls: [{name: helper, args: {input: do it}}]\n  - text: all done\n"
        "turn.0.boss.tool.0.helper/boss:\n  - text: child did it\n",
    )
    rec = tmp_path / "rec.replies.yaml"
    first = netrun_cli(
        "run", str(tmp_path / "parent.yaml"), "-i", "x", "--record", str(rec), "--json", "--db", str(tmp_path / "1.db")
    )
    assert json.loads(first.output)["status"] == "completed", first.output
    assert yaml.safe_load(rec.read_text())["turn.0.boss.tool.0.helper/boss"] == [{"text": "child did it", "tools": []}]
    again = netrun_cli(
        "run", str(tmp_path / "parent.yaml"), "-i", "x", "--replay", str(rec), "--json", "--db", str(tmp_path / "2.db")
    )
    tool = json.loads(again.output)["result"]["results"][0]["tool_calls"][0]
    assert tool["result"] == {"output": "child did it", "state": {}}


def test_cli_errors_for_a_broken_journal_and_replies(netrun_cli, tmp_path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    for args in (["run", "--resume", "x"], ["send", "app/x"]):
        result = netrun_cli(*args, "--db", str(bad))
        assert result.exit_code == 1
        assert f"cannot use the run journal {bad}: file is not a database" in result.output
    replies = tmp_path / "r.replies.yaml"
    replies.write_text("dba: [just text]\n")
    result = netrun_cli(
        "run", str(REPO / "networks/quickstart.yaml"), "-i", "x", "--replay", str(replies), "--db", str(tmp_path / "ok.db")
    )
    assert result.exit_code == 1
    assert f"the replies file {replies}: dba reply #1 must be a mapping with 'text' and/or 'tool_calls'" in result.output


def test_leases_respect_live_owners_and_ignore_dead_ones(tmp_path) -> None:
    import os
    import socket
    import subprocess
    import sys

    first, second = Journal(tmp_path / "j.db"), Journal(tmp_path / "j.db")
    assert first.claim("r1")
    assert not second.claim("r1")  # this process is alive: its lease holds
    first.release("r1")
    assert second.claim("r1")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_owner = f"{socket.gethostname()}:{gone.stdout.strip()}:x"
    first.db.execute("UPDATE leases SET owner = ? WHERE run_id = 'r1'", (dead_owner,))
    assert first.claim("r1")  # a killed process holds nothing
    first.db.execute("UPDATE leases SET owner = ? WHERE run_id = 'r1'", (f"elsewhere:{os.getpid()}:x",))
    assert not second.claim("r1")  # another machine's lease is trusted until it expires


class Delegating:
    """A model that, on an agent's first turn, calls the first tool it is offered; then stops."""

    def __init__(self) -> None:
        self.tool_results: list[str] = []
        """The content of every tool result the model was shown (in the turn after the call)."""

    async def complete(self, request: Request, on_text: Any = None) -> Completion:
        from netrun.runtime.model import ToolRequest

        if request.turn == 0 and request.tools:
            name = request.tools[0]["function"]["name"]
            return Completion(
                text="delegating", tool_calls=[ToolRequest(f"c{len(self.tool_results)}", name, '{"input": "again"}')]
            )
        self.tool_results += [m["content"] for m in request.messages if m["role"] == "tool"]
        return Completion(text="done")


PING_PONG = (
    "name: {me}\nmodel: openai/x\nmax_iter: 2\n{limits}agents:\n  a: {{description: d, system: '{{{{ input }}}}', tools: [call]}}\n"
    "router:\n  rules: [{{if: 'true', agent: a}}]\ntools:\n  call: {{network: {other}}}\n"
)


@pytest.mark.parametrize(("limits", "runs"), [("limits: {depth: 2}\n", 3), ("", 4)])
def test_networks_that_call_each_other_stop_at_the_depth_limit_with_an_error_for_the_model(tmp_path, write, limits, runs) -> None:
    """ping -> pong -> ping -> ...: validation refuses the cycle (a file's sibling closes it,
    so the engine's own lookup finds no valid network), but a server serving networks whose
    versions changed under it can still hand the engine both: the run that would go past
    limits.depth (default 3) gets an error, and starts nothing."""
    write("ping.yaml", PING_PONG.format(me="ping", other="pong", limits=limits))
    write("pong.yaml", PING_PONG.format(me="pong", other="ping", limits=limits))
    client = Delegating()
    served = {
        name: NetworkSpec.model_validate(yaml.safe_load((tmp_path / f"{name}.yaml").read_text())) for name in ("ping", "pong")
    }
    eng = engine(tmp_path, client)
    eng.networks = lambda folder, name: served.get(name)
    spec = yaml.safe_load((tmp_path / "ping.yaml").read_text())
    record = start(eng, spec, tmp_path)
    assert record.status == "completed", record.error
    ids = eng.journal.runs()
    assert len(ids) == runs  # the root and its chain of children, then no more
    deepest = max((eng.journal.run(i) for i in ids), key=lambda r: r.options.get("depth", 0))  # type: ignore[union-attr]
    assert deepest is not None and deepest.options["depth"] == runs - 1
    (refused,) = [t for r in deepest.result["results"] for t in r["tool_calls"] if t["error"]]  # type: ignore[index]
    limit = runs - 1
    assert refused["error"] == (
        f"refused: running network '{'pong' if deepest.network == 'ping' else 'ping'}' would start a run at depth {limit + 1}, "
        f"past the limit of {limit} (limits.depth of network '{deepest.network}'; this run is at depth {limit}); nothing was started"
    )
    assert any("refused: running network" in text for text in client.tool_results)  # the model was told


class FanningOut:
    """Each turn of `fan` asks for four child runs and two events at once; turn 1 waits for
    an event (the run suspends, and resumes by replaying its journal); `leaf` just answers."""

    def __init__(self) -> None:
        self.turns: list[int] = []

    async def complete(self, request: Request, on_text: Any = None) -> Completion:
        from netrun.runtime.model import ToolRequest

        if request.caller == "leaf":
            return Completion(text="leaf done")
        self.turns.append(request.turn)
        if request.turn == 1:
            return Completion(text="holding", tool_calls=[ToolRequest("h", "hold", "{}")])
        calls = [ToolRequest(f"c{request.turn}.{i}", "call", '{"input": "go"}') for i in range(4)]
        calls += [ToolRequest(f"n{request.turn}.{i}", "note", "{}") for i in range(2)]
        return Completion(text="fanning out", tool_calls=calls)


FAN = """\
name: fan
model: openai/x
max_iter: 3
limits: {runs: 7}
agents:
  fan: {description: d, system: '{{ input }}', tools: [call, note, hold]}
router: {rules: [{if: 'true', agent: fan}]}
tools:
  call: {network: leaf}
  note: {event: {name: app/noted}}
  hold: {wait_for_event: {event: app/go, timeout: 1h}}
"""


def test_a_run_that_fans_out_starts_at_most_limits_runs_runs_counted_the_same_after_it_resumes(tmp_path, write) -> None:
    """limits.depth bounds chains, not breadth (k calls per turn, over max_iter turns, at every
    depth: k^depth runs). limits.runs counts the network and event tool calls of one run, in
    the model's order: the 7th call runs, the 8th and later are refused; the count is rebuilt
    when the run resumes from its journal in another engine (a restart buys no more)."""
    write("fan.yaml", FAN)
    write("leaf.yaml", "name: leaf\nmodel: openai/x\nmax_iter: 1\nagents:\n  leaf: {description: d, system: '{{ input }}'}\n")
    client = FanningOut()
    record = start(engine(tmp_path, client), yaml.safe_load(FAN), tmp_path)
    assert record.status == "waiting", record.error
    (resumed,) = asyncio.run(engine(tmp_path, client).deliver("app/go", {}))
    assert resumed.status == "completed", resumed.error
    eng = engine(tmp_path, client)
    children = [r for r in (eng.journal.run(i) for i in eng.journal.runs()) if r is not None and r.network == "leaf"]
    assert len(children) == 5  # 4 in turn 0 (plus 2 events: 6), then only the 7th call of turn 2
    calls = [t for turn in resumed.result["results"] for t in turn["tool_calls"] if t["name"] in ("call", "note")]
    assert [t["error"] is None for t in calls] == [True] * 7 + [False] * 5
    assert calls[7]["error"] == (
        "refused: this run may start at most 7 runs (limits.runs of network 'fan': each network tool call "
        "and each event sent counts one) and this is call 8; nothing was started"
    )
    assert calls[-1]["error"].endswith("and this is call 12; the event was not sent")


def test_a_run_result_s_json_holds_every_field_of_the_result() -> None:
    """``RunResult.to_json`` is written by hand (``asdict`` deep-copied every argument and
    result on every turn): it must still say what ``asdict`` would, plus ``usage.tokens``,
    so a field added to a result and not to its JSON fails here."""
    import dataclasses

    from netrun.runtime.results import AgentResult, RunResult, ToolRecord, Usage

    turn = AgentResult("triage", "done", [ToolRecord("call_1", "lookup", {"q": [1, {"a": None}]}, {"rows": [1]}, None)])
    failed = AgentResult("triage", "", [ToolRecord("call_2", "lookup", {}, None, "timeout")])
    result = RunResult("done", {"n": 1}, ["triage", "triage"], Usage(3, 4, 0.5, 1.25), "router", 2, [turn, failed], "t-1")
    expected = dataclasses.asdict(result)
    expected["usage"]["tokens"] = 7
    assert result.to_json() == expected
    assert [r.to_json() for r in result.results] == expected["results"]
