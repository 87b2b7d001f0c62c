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
from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
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
    return LocalEngine(Journal(tmp_path / "runs.db"), {}, sink, models=factory, backoff=0.01)


def start(eng: LocalEngine, spec: dict[str, Any], tmp_path: Path, **kw: Any) -> Any:
    return asyncio.run(eng.start(NetworkSpec.model_validate(spec), tmp_path, input=kw.pop("input", "write about owls"), **kw))


def test_rules_route_state_and_stop(tmp_path) -> None:
    client = Counting({
        "planner": [{"text": "planning", "tool_calls": [call("save_plan", plan="1. owls")]}],
        "editor": [
            {"text": "draft one", "tool_calls": [call("save_draft", draft="Owls hoot.")]},
            {"text": "final", "tool_calls": [call("finish")]},
        ],
    })
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
    client = Counting({
        "planner": [
            {"tool_calls": [call("nope"), {"name": "save_plan", "args": "{not json"}, call("save_plan", plan=3)]},
            {"tool_calls": [call("save_plan", plan="ok")]},
        ],
        "editor": [{"tool_calls": [call("finish")]}],
    })
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
    client = Counting({
        "router": [
            {"tool_calls": [call("select_agent", agent="planer")]},  # a typo: fed back, not a crash
            {"tool_calls": [call("select_agent", agent="planner", reason="needs a plan")]},
            {"tool_calls": [call("finish", reason="done")]},
        ],
        "planner": [{"tool_calls": [call("save_plan", plan="p")]}],
    })
    record = start(engine(tmp_path, client), spec, tmp_path)
    assert record.status == "completed", record.error
    assert record.result["route"] == ["planner"]
    assert client.calls == [("router", 0), ("router", 1), ("planner", 0), ("router", 2)]


def test_a_script_that_runs_out_fails_the_run_clearly(tmp_path) -> None:
    client = Counting({"planner": [{"tool_calls": [call("save_plan", plan="p")]}]})
    record = start(engine(tmp_path, client), PLANNER, tmp_path)
    assert record.status == "failed"
    assert record.error == "test has no reply for editor call #1 (it holds 0 for editor); the run took a different path than the script"


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
        "ask_developer": {"wait_for_event": {"event": "app/dev.response", "match": "data.ticket", "timeout": "1h"}, "parameters": {"question": {"type": "string"}}},
        "save": {"parameters": {"answer": {"type": "string"}}, "state": {"answer": "{{ args.answer }}"}},
    },
}


def test_a_wait_persists_and_the_matching_event_resumes_the_run(tmp_path) -> None:
    replies = {"tech": [{"tool_calls": [call("ask_developer", question="why?")]}, {"tool_calls": [call("save", answer="restart it")]}]}
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
    replies.write_text(yaml.safe_dump({
        "dba": [{"text": "Use a role.", "tool_calls": [call("save_dba_answer", answer="CREATE ROLE r")]}],
        "security": [{"text": "Use NOLOGIN.", "tool_calls": [call("save_security_answer", answer="NOLOGIN"), call("finish")]}],
    }))
    result = netrun_cli("run", str(REPO / "networks/quickstart.yaml"), "-i", "read-only access?", "--replay", str(replies), "--json", "--db", str(tmp_path / "r.db"))
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


@pytest.mark.parametrize(("decision", "refunded", "error"), [
    ({"approved": True}, True, None),
    ({"approved": False, "reason": "too large"}, None, "rejected by a human: too large; the tool did not run"),
])
def test_approval_gates_a_tool(tmp_path, decision, refunded, error) -> None:
    client = Counting({"clerk": [{"tool_calls": [call("refund", order="A1")]}, {"text": "done"}]})
    eng = engine(tmp_path, client)
    record = start(eng, APPROVAL, tmp_path)
    assert record.status == "waiting"
    # An approval for another run does not count.
    assert asyncio.run(eng.deliver("netrun/approval", {**decision, "run_id": "someone-else"})) == []
    (resumed,) = asyncio.run(eng.deliver("netrun/approval", {**decision, "run_id": record.id}))
    assert resumed.status == "completed", resumed.error
    assert resumed.result["state"]["refunded"] is refunded
    assert resumed.result["results"][0]["tool_calls"][0]["error"] == error
    assert client.calls == [("clerk", 0), ("clerk", 1)]


def test_a_network_runs_another_network_as_a_tool(tmp_path, write) -> None:
    write("helper.yaml", "name: helper\nmodel: openai/x\nagents:\n  h: {description: d, system: 'sum up {{ input }}'}\nrouter:\n  rules: [{if: 'call_count >= 1', stop: true}, {if: 'true', agent: h}]\n")
    caller = {
        "name": "caller", "model": "openai/x",
        "agents": {"boss": {"description": "d", "system": "delegate", "tools": ["ask_helper"]}},
        "router": {"rules": [{"if": "call_count >= 2", "stop": True}, {"if": "true", "agent": "boss"}]},
        "tools": {"ask_helper": {"network": {"name": "helper", "input": "please: {{ args.input }}"}}},
    }
    client = Counting({"boss": [{"tool_calls": [call("ask_helper", input="owls")]}, {"text": "thanks"}], "h": [{"text": "owls hoot"}]})
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
            "name": "fanout", "model": "openai/x", "limits": {"time": "1s"},
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
