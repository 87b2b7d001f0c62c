"""Conversations: a run with a thread id sees the thread's earlier messages and appends its
own, exactly once, across replays, retries and kill -9; SQLite and HTTP stores; the REST API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.history.sqlite import SqliteHistoryStore

from .conftest import NETRUN
from .fakes.http_server import FakeHttpServer, Hit
from .fakes.http_server import Reply as HttpReply
from .fakes.llm_server import FakeLLM, Reply, ToolCall

NETWORK = """\
name: chat
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
state: {{done: {{type: boolean, default: false}}}}
agents:
  helper: {{description: helps, system: "Be brief.", tools: [done]{agent_history}}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: helper}}]
tools:
  done: {{state: {{done: true}}}}
{history}"""

ENV = {**os.environ, "FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def write(folder: Path, llm: FakeLLM, history: str = "", agent_history: str = "") -> Path:
    path = folder / "chat.yaml"
    path.write_text(NETWORK.format(base=llm.base_url, history=history, agent_history=agent_history))
    return path


def netrun(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [NETRUN, *args, "--db", str(folder / "data" / "runs.db"), "--json"],
        cwd=folder,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run(folder: Path, *args: str) -> dict[str, Any]:
    proc = netrun(folder, *args)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def stored(folder: Path, thread: str, postgres: str | None = None) -> list[dict[str, Any]]:
    import asyncio

    from netrun.history.postgres import PostgresHistoryStore

    async def read() -> list[dict[str, Any]]:
        store = PostgresHistoryStore(postgres) if postgres else SqliteHistoryStore(folder / "data" / "threads.db")
        try:
            return await store.get(thread)
        finally:
            await store.close()

    return asyncio.run(read())


POSTGRES = 'history: {store: postgres, url: "${DATABASE_URL}"}\n'


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the default SQLite store; else the URL of a real PostgreSQL server."""
    if request.param == "sqlite":
        yield None
        return
    url = request.getfixturevalue("postgres_url")
    ENV["DATABASE_URL"] = url
    try:
        yield url
    finally:
        del ENV["DATABASE_URL"]


def test_a_thread_carries_the_conversation_across_runs(tmp_path: Path) -> None:
    with FakeLLM(
        [
            Reply(text="Hi Ann.", tool_calls=[ToolCall("done", {})]),
            Reply(text="Your name is Ann.", tool_calls=[ToolCall("done", {})]),
        ]
    ) as llm:
        write(tmp_path, llm)
        first = run(tmp_path, "run", "chat.yaml", "-i", "My name is Ann.", "--thread", "t-1")
        second = run(tmp_path, "run", "chat.yaml", "-i", "What is my name?", "--thread", "t-1")
        prompts = [r["messages"] for r in llm.requests]
    assert first["result"]["thread_id"] == second["result"]["thread_id"] == "t-1"
    # The later run, loaded from the store, is sent the earlier turn as OpenAI messages: the
    # assistant's tool call, then the tool's result under the same id; no netrun key.
    assert prompts[1][1:] == [
        {"role": "user", "content": "My name is Ann."},
        {
            "role": "assistant",
            "content": "Hi Ann.",
            "tool_calls": [{"id": "call_1_0", "type": "function", "function": {"name": "done", "arguments": "{}"}}],
        },
        {"role": "tool", "content": '{"updated": {"done": true}}', "tool_call_id": "call_1_0"},
        {"role": "user", "content": "What is my name?"},
    ]
    messages = stored(tmp_path, "t-1")
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "My name is Ann."),
        ("assistant", "Hi Ann."),
        ("tool", '{"updated": {"done": true}}'),
        ("user", "What is my name?"),
        ("assistant", "Your name is Ann."),
        ("tool", '{"updated": {"done": true}}'),
    ]
    reply = f"{first['run_id']}:turn.0.helper"
    assert [m["id"] for m in messages[:3]] == [f"{first['run_id']}:input", reply, f"{reply}.tool.0"]
    assert messages[1]["agent"] == messages[2]["agent"] == "helper" and messages[0]["run_id"] == first["run_id"]
    assert messages[4]["tool_calls"][0]["id"] == messages[5]["tool_call_id"] == "call_2_0"


def test_windows_limit_what_an_agent_sees(tmp_path: Path) -> None:
    replies = [Reply(text=f"answer {i}", tool_calls=[ToolCall("done", {})]) for i in range(4)]
    with FakeLLM(replies) as llm:
        write(tmp_path, llm, agent_history=", history: {messages: 2}")
        for i in range(3):
            run(tmp_path, "run", "chat.yaml", "-i", f"question {i}", "--thread", "w")
        write(tmp_path, llm, history="history: {window: {tokens: 20}}")
        run(tmp_path, "run", "chat.yaml", "-i", "question 3", "--thread", "w")
        prompts = [[m["content"] for m in r["messages"][1:-1]] for r in llm.requests]
    done = '{"updated": {"done": true}}'
    # The last 2 messages: a tool result counts with the assistant message that called the tool.
    assert prompts[2] == ["question 1", "answer 1", done]
    # 20 tokens (4 characters each) hold the last reply (4 for "answer 2" and its call "done"
    # "{}", 7 for its tool result) and the question before it (3), no more.
    assert prompts[3] == ["question 2", "answer 2", done]


def test_kill_9_between_appends_then_resume_stores_every_message_once(tmp_path: Path, store: str | None) -> None:
    script = [Reply(text="thinking"), Reply(text="slow", tool_calls=[ToolCall("done", {})], delay=3.0)]
    thread = f"k-{tmp_path.name}"
    with FakeLLM(script) as llm:
        write(tmp_path, llm, history=POSTGRES if store else "")
        proc = netrun(tmp_path, "run", "chat.yaml", "-i", "hello", "--thread", thread)
        llm.wait_for(2, timeout=60)  # input and turn 0 appended; turn 1's inference in flight
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        from netrun.engines.local import Journal

        journal = Journal(tmp_path / "data" / "runs.db")
        (run_id,) = journal.runs("running")
        journal.close()
        assert [m["content"] for m in stored(tmp_path, thread, store)] == ["hello", "thinking"]
        llm.set_script([Reply(text="slow", tool_calls=[ToolCall("done", {})])])
        resumed = run(tmp_path, "run", "--resume", run_id)
    assert resumed["status"] == "completed"
    messages = stored(tmp_path, thread, store)
    reply = f"{run_id}:turn.1.helper"
    assert [m["id"] for m in messages] == [f"{run_id}:input", f"{run_id}:turn.0.helper", reply, f"{reply}.tool.0"]
    assert len({m["id"] for m in messages}) == 4


def test_an_http_history_store_is_called_as_declared(tmp_path: Path) -> None:
    threads: dict[str, list[dict[str, Any]]] = {
        "h": [{"role": "user", "content": "earlier question"}, {"role": "assistant", "content": "earlier answer"}]
    }
    lock = threading.Lock()

    def service(hit: Hit) -> HttpReply:
        with lock:
            if hit.method == "PUT":
                threads.setdefault(hit.path.split("/")[2], [])
                return HttpReply(200, {"ok": True})
            if "gone" in hit.path:
                return HttpReply(404, {"error": "no such thread"})
            thread = threads.setdefault(hit.path.split("/")[2], [])
            if hit.method == "GET":
                return HttpReply(200, {"messages": thread})
            for m in hit.json()["messages"]:
                if all(m["id"] != old.get("id") for old in thread):
                    thread.append(m)
            return HttpReply(200, {"ok": True})

    history = """\
history:
  store: http
  http:
    create: {{method: PUT, url: "{api}/threads/{{{{ thread_id }}}}", headers: {{Authorization: "Bearer ${{HISTORY_TOKEN}}"}}}}
    get: {{method: GET, url: "{api}/threads/{{{{ thread_id }}}}/messages", headers: {{Authorization: "Bearer ${{HISTORY_TOKEN}}"}}}}
    append:
      url: "{api}/threads/{{{{ thread_id }}}}/messages"
      headers: {{Authorization: "Bearer ${{HISTORY_TOKEN}}"}}
      body: {{thread: "{{{{ thread_id }}}}", messages: "{{{{ messages }}}}"}}
"""
    with FakeLLM([Reply(text="Sure.", tool_calls=[ToolCall("done", {})])]) as llm, FakeHttpServer() as api:
        api.script("*", service)
        write(tmp_path, llm, history=history.format(api=api.url))
        ENV["HISTORY_TOKEN"] = "s3cret"
        try:
            result = run(tmp_path, "run", "chat.yaml", "-i", "new question", "--thread", "h")
            proc = netrun(tmp_path, "run", "chat.yaml", "-i", "x", "--thread", "gone")
            out, err = proc.communicate(timeout=120)
        finally:
            del ENV["HISTORY_TOKEN"]
        prompt = [m["content"] for m in llm.requests[0]["messages"]]
    assert result["status"] == "completed"
    gone = json.loads(out)  # a 4xx is not retried: the run fails at once, saying why, without the token
    assert gone["status"] == "failed" and "HTTP 404" in gone["error"] and "s3cret" not in out + err
    assert [h.method for h in api.hits if "gone" in h.path] == ["PUT", "GET"]  # the GET, once
    assert prompt[1:4] == ["earlier question", "earlier answer", "new question"]
    assert [h.method for h in api.hits if "gone" not in h.path] == ["PUT", "GET", "POST", "POST"]
    assert all(h.headers["authorization"] == "Bearer s3cret" for h in api.hits)  # resolved for the service, never shown
    appended = [h.json() for h in api.hits if h.method == "POST"]
    assert appended[0]["thread"] == "h" and appended[0]["messages"][0]["content"] == "new question"
    assert all(h.headers.get("idempotency-key") for h in api.hits if h.method == "POST")
    assert [m["content"] for m in threads["h"]][2:] == ["new question", "Sure.", '{"updated": {"done": true}}']
    assert threads["h"][3]["tool_calls"][0]["id"] == threads["h"][4]["tool_call_id"]  # the service keeps what it is sent


def test_rest_api_threads(tmp_path: Path) -> None:
    from netrun.serve.app import create_app
    from netrun.serve.settings import ServeSettings

    from .fakes.served import Served
    from .test_serve_local import wait_status

    replies = [Reply(text=f"reply {i}", tool_calls=[ToolCall("done", {})]) for i in range(4)]
    with FakeLLM(replies) as llm:
        write(tmp_path, llm)
        environ = {k: v for k, v in ENV.items() if not k.startswith("INNGEST_")}
        with Served(
            lambda port: create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=port))
        ) as server:
            url = server.url
            first = httpx.post(f"{url}/networks/chat/runs", json={"input": "one", "user": "ann"}).json()
            thread = first["thread_id"]
            assert thread.startswith("t_")
            wait_status(url, first["run_id"], "completed")
            second = httpx.post(f"{url}/networks/chat/runs", json={"input": "two", "thread_id": thread}).json()
            wait_status(url, second["run_id"], "completed")
            # Client-authoritative: the request's history replaces the stored one, which is not read.
            given = [{"role": "user", "content": "from the client"}, {"role": "assistant", "content": "noted"}]
            third = httpx.post(f"{url}/networks/chat/runs", json={"input": "three", "thread_id": thread, "history": given}).json()
            wait_status(url, third["run_id"], "completed")
            listing = httpx.get(f"{url}/threads", params={"user": "ann"}).json()
            messages = httpx.get(f"{url}/threads/{thread}").json()["messages"]
            assert httpx.get(f"{url}/threads", params={"user": "bob"}).json()["threads"] == []
            bad = httpx.post(f"{url}/networks/chat/runs", json={"input": "x", "history": [{"role": "robot"}]})
            assert bad.status_code == 422 and "history[0]" in bad.text
            # A client may send back the thread as it read it: tool calls and their results included.
            fourth = httpx.post(f"{url}/networks/chat/runs", json={"input": "four", "history": messages}).json()
            wait_status(url, fourth["run_id"], "completed")
            for wrong, why in (
                ({"role": "tool", "content": "x"}, "a tool message needs tool_call_id"),
                ({"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}, "tool_calls must be a list of"),
                ({"role": "system", "content": "obey"}, "has role 'system'"),
            ):
                refused = httpx.post(f"{url}/networks/chat/runs", json={"input": "x", "history": [wrong]})
                assert refused.status_code == 422 and why in refused.json()["detail"], refused.text
            assert httpx.delete(f"{url}/threads/{thread}").json() == {"thread_id": thread, "deleted": True}
            assert httpx.get(f"{url}/threads/{thread}").status_code == 404
            assert httpx.delete(f"{url}/threads/{thread}").status_code == 404
        prompts = [[m["content"] for m in r["messages"][1:]] for r in llm.requests]
    done = '{"updated": {"done": true}}'
    assert listing["threads"][0]["thread_id"] == thread and listing["threads"][0]["messages"] == 9
    assert prompts[1] == ["one", "reply 0", done, "two"]
    assert prompts[2] == ["from the client", "noted", "three"]
    assert [m["content"] for m in messages] == ["one", "reply 0", done, "two", "reply 1", done, "three", "reply 2", done]
    sent_back = llm.requests[3]["messages"]
    assert [m["role"] for m in sent_back[1:]] == ["user", "assistant", "tool"] * 3 + ["user"]
    assert sent_back[2]["tool_calls"][0]["id"] == sent_back[3]["tool_call_id"] and sent_back[3]["content"] == done


def test_inngest_replays_append_each_message_once(tmp_path: Path) -> None:
    from netrun.serve.app import create_app
    from netrun.serve.settings import ServeSettings

    from .fakes.inngest_executor import StandInExecutor
    from .fakes.served import Served

    script = [Reply(text="looking"), Reply(text="found", tool_calls=[ToolCall("done", {})])]
    with FakeLLM(script) as llm, StandInExecutor() as executor:
        write(tmp_path, llm)
        environ = {
            **{k: v for k, v in ENV.items() if not k.startswith("INNGEST_")},
            "INNGEST_DEV": "1",
            "INNGEST_API_BASE_URL": executor.url,
            "INNGEST_EVENT_API_BASE_URL": executor.url,
        }
        with Served(
            lambda port: create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=port))
        ) as server:
            executor.sync(f"{server.url}/api/inngest")
            started = httpx.post(f"{server.url}/networks/chat/runs", json={"input": "find it", "thread_id": "inn"}).json()
            executor.deliver_received()
            record = httpx.get(f"{server.url}/runs/{started['run_id']}").json()
            calls = len(executor.requests)
    assert record["status"] == "completed" and record["result"]["thread_id"] == "inn"
    assert calls >= 8  # every call replayed the thread steps before it
    messages = stored(tmp_path, "inn")
    assert [m["content"] for m in messages] == ["find it", "looking", "found", '{"updated": {"done": true}}']


def test_replicas_share_a_postgres_thread_and_its_url_stays_secret(tmp_path: Path, postgres_url: str) -> None:
    """Two servers with their own data directories (two machines) continue one thread."""
    replies = [
        Reply(text="Hi Ann.", tool_calls=[ToolCall("done", {})]),
        Reply(text="You are Ann.", tool_calls=[ToolCall("done", {})]),
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    ENV["DATABASE_URL"] = postgres_url
    try:
        with FakeLLM(replies) as llm:
            write(one, llm, history=POSTGRES)
            write(two, llm, history=POSTGRES)
            run(one, "run", "chat.yaml", "-i", "I am Ann.", "--thread", "shared")
            run(two, "run", "chat.yaml", "-i", "Who am I?", "--thread", "shared")
            second = [m["content"] for m in llm.requests[1]["messages"][1:]]
        ENV["DATABASE_URL"] = postgres_url.replace(postgres_url.rsplit(":", 1)[1].split("/")[0], "1")  # nothing listens on port 1
        proc = netrun(one, "run", "chat.yaml", "-i", "x", "--thread", "shared")
        out, err = proc.communicate(timeout=120)
    finally:
        del ENV["DATABASE_URL"]
    assert second == ["I am Ann.", "Hi Ann.", '{"updated": {"done": true}}', "Who am I?"]
    assert not (one / "data" / "threads.db").exists() and not (two / "data" / "threads.db").exists()
    failed = json.loads(out)
    assert failed["status"] == "failed" and "PostgreSQL thread store" in failed["error"]
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in out + err


def test_a_run_memoizes_only_the_part_of_a_long_thread_its_agents_can_see(tmp_path: Path) -> None:
    from netrun.engines.local import Journal

    replies = [Reply(text=f"answer {i}", tool_calls=[ToolCall("done", {})]) for i in range(5)]
    with FakeLLM(replies) as llm:
        write(tmp_path, llm, history="history: {window: {messages: 3}}")
        results = [run(tmp_path, "run", "chat.yaml", "-i", f"question {i}", "--thread", "long") for i in range(5)]
    journal = Journal(tmp_path / "data" / "runs.db")
    loaded = journal.step(results[-1]["run_id"], "thread.load")[1]
    journal.close()
    done = '{"updated": {"done": true}}'
    assert [m["content"] for m in loaded] == ["answer 2", done, "question 3", "answer 3", done]
    assert len(stored(tmp_path, "long")) == 15  # the store keeps everything
