"""The history a model is sent is real OpenAI messages (issue 14, item 1): each earlier turn
is an assistant message with its ``tool_calls``, then one ``tool`` message per call under
the same ``tool_call_id``, whatever the call's outcome; windows never split the two; a
thread stored by an earlier version (prose replies) still loads and runs; and a resumed run
sends the model byte for byte the messages the killed one did."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from netrun.history.base import message_tokens, openai_message, paired, window
from netrun.runtime.model import Completion, Request, ToolRequest
from netrun.spec.history import Window

from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .test_run_loop import APPROVAL, Counting, call, engine, start
from .test_threads import netrun, run

NETWORK = """\
name: notes
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
state: {{note: string, done: {{type: boolean, default: false}}}}
agents:
  clerk: {{description: notes, system: "Take notes.", tools: [note, finish], limits: {{tool_calls: 4}}}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: clerk}}]
tools:
  note: {{parameters: {{text: {{type: string}}}}, state: {{note: "{{{{ args.text }}}}"}}}}
  finish: {{state: {{done: true}}}}
"""


def test_every_call_of_a_turn_is_answered_by_its_own_tool_message(tmp_path: Path) -> None:
    """A fine call, an unknown tool, malformed arguments, arguments the schema refuses and a
    call over the turn's limit: five calls, five tool messages, in order, under their ids."""
    calls = [
        ToolCall("note", {"text": "milk"}, id="c-ok"),
        ToolCall("nope", {}, id="c-unknown"),
        ToolCall("note", '{"text": ', id="c-malformed"),
        ToolCall("note", {"text": 5}, id="c-schema"),
        ToolCall("note", {"text": "eggs"}, id="c-over"),
    ]
    with FakeLLM([Reply(text="noting", tool_calls=calls), Reply(tool_calls=[ToolCall("finish", {}, id="c-fin")])]) as llm:
        (tmp_path / "notes.yaml").write_text(NETWORK.format(base=llm.base_url))
        result = run(tmp_path, "run", "notes.yaml", "-i", "buy milk")
        second = llm.requests[1]["messages"]
    assert result["status"] == "completed" and result["result"]["state"]["note"] == "milk"
    assert [m["role"] for m in second] == ["system", "user", "assistant", *["tool"] * 5]
    assistant, tools = second[2], second[3:]
    assert assistant == {
        "role": "assistant",
        "content": "noting",
        "tool_calls": [
            {"id": "c-ok", "type": "function", "function": {"name": "note", "arguments": '{"text": "milk"}'}},
            {"id": "c-unknown", "type": "function", "function": {"name": "nope", "arguments": "{}"}},
            # not JSON: sent back as {} (litellm parses arguments for other providers); the tool message says why
            {"id": "c-malformed", "type": "function", "function": {"name": "note", "arguments": "{}"}},
            {"id": "c-schema", "type": "function", "function": {"name": "note", "arguments": '{"text": 5}'}},
            {"id": "c-over", "type": "function", "function": {"name": "note", "arguments": '{"text": "eggs"}'}},
        ],
    }
    assert [m["tool_call_id"] for m in tools] == ["c-ok", "c-unknown", "c-malformed", "c-schema", "c-over"]
    assert json.loads(tools[0]["content"]) == {"updated": {"note": "milk"}}
    assert tools[1]["content"] == "error: unknown tool 'nope'; offered: note, finish"
    assert tools[2]["content"].startswith("error: the arguments are not valid JSON (")
    assert tools[3]["content"] == "error: args.text: expected string"
    assert tools[4]["content"] == "error: refused: this agent's tool_calls limit for one turn is reached"
    assert all(set(m) == {"role", "tool_call_id", "content"} for m in tools)  # netrun's keys stay home


class Recording:
    """A scripted model that keeps every request's messages (as JSON text: what was sent)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[list[dict[str, Any]]] = []

    async def complete(self, request: Request, on_text: Any = None) -> Completion:
        self.sent.append(json.loads(json.dumps(request.messages)))
        return await self.inner.complete(request, on_text)  # type: ignore[no-any-return]


class SameIds:
    """A provider that numbers the calls of each reply (or gives no id): ids repeat across turns."""

    def __init__(self) -> None:
        self.sent: list[list[dict[str, Any]]] = []

    async def complete(self, request: Request, on_text: Any = None) -> Completion:
        self.sent.append(request.messages)
        if request.turn < 2:
            return Completion(tool_calls=[ToolRequest("call_0", "save_plan", '{"plan": "p"}'), ToolRequest("", "finish", "")])
        return Completion(text="done")


def test_ids_that_repeat_or_are_missing_get_one_of_their_own(tmp_path: Path) -> None:
    spec = {
        "name": "ids",
        "model": "openai/x",
        "max_iter": 3,
        "state": {"plan": "string", "done": "boolean"},
        "agents": {"a": {"description": "d", "system": "s", "tools": ["save_plan", "finish"]}},
        "router": {"rules": [{"if": "true", "agent": "a"}]},
        "tools": {
            "save_plan": {"parameters": {"plan": {"type": "string"}}, "state": {"plan": "{{ args.plan }}"}},
            "finish": {"state": {"done": True}},
        },
    }
    client = SameIds()
    record = start(engine(tmp_path, client), spec, tmp_path)
    assert record.status == "completed", record.error
    last = client.sent[-1]
    ids = [c["id"] for m in last if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert ids == ["call_0", "call_0_1", "call_1_0", "call_1_1"]  # the model's first; then made unique
    assert [m["tool_call_id"] for m in last if m["role"] == "tool"] == ids
    # the arguments the model left empty are sent back as an object
    assert [c["function"]["arguments"] for m in last if m["role"] == "assistant" for c in m.get("tool_calls", [])][1] == "{}"
    assert [t["id"] for r in record.result["results"] for t in r["tool_calls"]] == ids  # the run's result agrees


def test_a_denied_approval_is_answered_in_a_tool_message(tmp_path: Path) -> None:
    client = Recording(Counting({"clerk": [{"tool_calls": [call("refund", order="A1")]}, {"text": "done"}]}).inner)
    eng = engine(tmp_path, client)
    record = start(eng, APPROVAL, tmp_path)
    assert record.status == "waiting"
    (resumed,) = asyncio.run(eng.deliver("netrun/approval", {"approved": False, "reason": "too large", "run_id": record.id}))
    assert resumed.status == "completed", resumed.error
    assistant, answer = client.sent[1][2:]
    assert assistant["tool_calls"][0]["function"] == {"name": "refund", "arguments": '{"order": "A1"}'}
    assert answer == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][0]["id"],
        "content": "error: rejected by a human: too large; the tool did not run",
    }


OLD_THREAD = [
    {"id": "r0:input", "role": "user", "content": "My name is Ann.", "run_id": "r0"},
    {
        "id": "r0:turn.0.clerk",
        "role": "assistant",
        "agent": "clerk",
        "content": '[clerk] Hi Ann.\ncalled finish({}) -> {"updated": {"done": true}}',
        "run_id": "r0",
    },
]


def test_a_thread_stored_by_an_earlier_version_loads_and_runs(tmp_path: Path) -> None:
    """Rows as version 0.x wrote them (prose replies, no tool messages) are sent as they are,
    and the thread goes on in the new format."""
    (tmp_path / "data").mkdir()
    db = sqlite3.connect(tmp_path / "data" / "threads.db")
    db.executescript(
        "CREATE TABLE threads (id TEXT PRIMARY KEY, user_key TEXT, created REAL NOT NULL, updated REAL NOT NULL);"
        "CREATE TABLE messages (thread_id TEXT NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,"
        " message TEXT NOT NULL, UNIQUE (thread_id, id));"
    )
    db.execute("INSERT INTO threads VALUES ('old', NULL, 1, 1)")
    db.executemany(
        "INSERT INTO messages (thread_id, id, message) VALUES ('old', ?, ?)", [(m["id"], json.dumps(m)) for m in OLD_THREAD]
    )
    db.commit()
    db.close()
    with FakeLLM([Reply(text="You are Ann.", tool_calls=[ToolCall("finish", {}, id="c-new")])]) as llm:
        (tmp_path / "notes.yaml").write_text(NETWORK.format(base=llm.base_url))
        result = run(tmp_path, "run", "notes.yaml", "-i", "Who am I?", "--thread", "old")
        sent = llm.requests[0]["messages"]
    assert result["status"] == "completed"
    assert sent[1:] == [
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": OLD_THREAD[1]["content"]},
        {"role": "user", "content": "Who am I?"},
    ]
    db = sqlite3.connect(tmp_path / "data" / "threads.db")
    stored = [json.loads(r[0]) for r in db.execute("SELECT message FROM messages WHERE thread_id = 'old' ORDER BY seq")]
    db.close()
    assert stored[:2] == OLD_THREAD
    assert [(m["role"], m.get("tool_call_id")) for m in stored[2:]] == [("user", None), ("assistant", None), ("tool", "c-new")]


def test_a_resumed_run_sends_the_model_byte_for_byte_what_the_killed_one_did(tmp_path: Path) -> None:
    """The second run of a thread (its history holds tool messages) is killed during its
    second inference; resumed, it rebuilds that request from the journal alone."""
    script = [
        Reply(text="noted", tool_calls=[ToolCall("note", {"text": "milk"}), ToolCall("finish", {})]),
        Reply(text="again", tool_calls=[ToolCall("note", {"text": "eggs"})]),
        Reply(text="slow", tool_calls=[ToolCall("finish", {})], delay=3.0),
    ]
    with FakeLLM(script) as llm:
        (tmp_path / "notes.yaml").write_text(NETWORK.format(base=llm.base_url))
        run(tmp_path, "run", "notes.yaml", "-i", "milk", "--thread", "k")
        proc = netrun(tmp_path, "run", "notes.yaml", "-i", "eggs", "--thread", "k")
        llm.wait_for(3, timeout=60)  # the second run's second inference is in flight
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.communicate()
        from netrun.engines.local import Journal

        journal = Journal(tmp_path / "data" / "runs.db")
        (run_id,) = journal.runs("running")
        journal.close()
        llm.set_script([Reply(text="slow", tool_calls=[ToolCall("finish", {})])])
        resumed = run(tmp_path, "run", "--resume", run_id)
        requests = llm.requests
        time.sleep(max(0.0, 3.5 - (time.monotonic() - killed_at)))  # the orphaned call ends before the server stops
    assert resumed["status"] == "completed"
    assert len(requests) == 4
    killed, again = json.dumps(requests[2]["messages"]), json.dumps(requests[3]["messages"])
    assert killed == again
    roles = [m["role"] for m in requests[3]["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "user", "assistant", "tool"]
    assert requests[3]["messages"][6]["tool_calls"][0]["id"] == requests[3]["messages"][7]["tool_call_id"] == "call_2_0"


def test_an_http_store_gives_back_the_tool_messages_it_was_sent(tmp_path: Path) -> None:
    """The service keeps the messages as sent, but drops null values (as some JSON stores
    do): the next run still sends the call and its result, paired by id."""
    from .fakes.http_server import FakeHttpServer, Hit
    from .fakes.http_server import Reply as HttpReply

    kept: list[dict[str, Any]] = []

    def service(hit: Hit) -> HttpReply:
        if hit.method == "GET":
            return HttpReply(200, kept)
        kept.extend({k: v for k, v in m.items() if v is not None} for m in hit.json())
        return HttpReply(200, {"ok": True})

    history = (
        "history:\n  store: http\n  http:\n"
        '    get: {{method: GET, url: "{api}/t"}}\n'
        '    append: {{url: "{api}/t", body: "{{{{ messages }}}}"}}\n'
    )
    script = [Reply(tool_calls=[ToolCall("finish", {}, id="c-1")]), Reply(text="again", tool_calls=[ToolCall("finish", {})])]
    with FakeLLM(script) as llm, FakeHttpServer() as api:
        api.script("*", service)
        (tmp_path / "notes.yaml").write_text(NETWORK.format(base=llm.base_url) + history.format(api=api.url))
        run(tmp_path, "run", "notes.yaml", "-i", "one", "--thread", "h")
        second = run(tmp_path, "run", "notes.yaml", "-i", "two", "--thread", "h")
        sent = llm.requests[1]["messages"]
    assert second["status"] == "completed"
    assert "content" not in kept[1] and kept[1]["agent"] == "clerk"  # as the service gives it back
    assert sent[1:] == [
        {"role": "user", "content": "one"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c-1", "type": "function", "function": {"name": "finish", "arguments": "{}"}}],
        },
        {"role": "tool", "content": '{"updated": {"done": true}}', "tool_call_id": "c-1"},
        {"role": "user", "content": "two"},
    ]


def _turn(i: int, calls: int = 1) -> list[dict[str, Any]]:
    ids = [f"c{i}.{k}" for k in range(calls)]
    return [
        {"id": f"r:{i}", "role": "user", "content": f"question {i}"},
        {
            "id": f"r:{i}.a",
            "role": "assistant",
            "content": None,
            "agent": "a",
            "tool_calls": [{"id": c, "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}} for c in ids],
        },
        *({"id": f"r:{i}.t{k}", "role": "tool", "tool_call_id": c, "content": "1", "agent": "a"} for k, c in enumerate(ids)),
    ]


def test_a_window_keeps_a_tool_result_with_its_call() -> None:
    thread = _turn(0) + _turn(1, calls=3)
    # The last 3 messages would start inside turn 1's tool results: its assistant counts with them.
    shown = window(thread, Window(messages=2))
    assert [m["id"] for m in shown] == ["r:1", "r:1.a", "r:1.t0", "r:1.t1", "r:1.t2"]
    assert [m["id"] for m in window(thread, Window(messages=1))] == ["r:1.a", "r:1.t0", "r:1.t1", "r:1.t2"]
    for n in range(1, 8):
        for tokens in (None, *range(1, 40)):
            kept = window(thread, Window(messages=n, tokens=tokens))
            assert not kept or kept[0]["role"] != "tool", (n, tokens)
    # A thread that starts with a tool result (an edited store) does not send it alone.
    assert window(thread[2:], None)[0]["id"] == "r:1"


def test_a_windows_tokens_count_the_tool_calls_arguments() -> None:
    calling = _turn(0)[1]
    assert message_tokens(calling) == (len("f") + len('{"x": 1}') + 3) // 4
    thread = _turn(0)
    # 3 (the call) + 1 (its result) fit in 4 tokens; the question (3 tokens) does not.
    assert [m["id"] for m in window(thread, Window(tokens=6))] == ["r:0.a", "r:0.t0"]
    assert window(thread, Window(tokens=3)) == []  # not the call without its result


def test_the_openai_message_of_a_stored_one_has_no_netrun_key() -> None:
    assistant, tool = _turn(0)[1:]
    assert openai_message(assistant) == {"role": "assistant", "content": None, "tool_calls": assistant["tool_calls"]}
    assert openai_message(tool) == {"role": "tool", "content": "1", "tool_call_id": "c0.0"}
    assert openai_message({"role": "user", "content": "hi", "id": "x", "run_id": "r"}) == {"role": "user", "content": "hi"}


def test_unanswered_calls_and_stray_answers_are_not_sent() -> None:
    """A history a client sent (or a store someone edited) may break the pairing; OpenAI
    would refuse the whole request, so what cannot be paired is left out."""
    whole = [openai_message(m) for m in _turn(0, calls=2)]
    assert paired(whole) == whole  # what netrun stores passes as it is
    question, assistant, first, second = whole
    assert (
        paired([question, assistant, first])
        == [  # the second call lost its answer
            question,
            {**assistant, "tool_calls": assistant["tool_calls"][:1]},
            first,
        ]
    )
    assert paired([question, assistant]) == [question, {"role": "assistant", "content": ""}]
    assert paired([first, question, second]) == [question]  # answers to no call right before them
    twice = paired([question, assistant, first, first, second])
    assert [m.get("tool_call_id") for m in twice] == [None, None, "c0.0", "c0.1"]


def test_an_empty_tool_call_list_is_not_sent() -> None:
    """OpenAI refuses ``tool_calls: []`` and a null content without tool calls (a 400): a
    message from a client or a store that has them is sent without."""
    from netrun.history.base import openai_message

    assert openai_message({"role": "assistant", "content": None, "tool_calls": [], "agent": "a"}) == {
        "role": "assistant",
        "content": "",
    }
    kept = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }
    assert openai_message(kept) == kept
