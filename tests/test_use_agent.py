"""AgentKit's React client package (``@inngest/use-agent`` 0.4.0) against a real ``netrun serve``.

tests/node/use_agent_client.mjs drives the package's real ``DefaultHttpTransport``,
configured only with the URLs of ``/agentkit/{network}/...``, and netrun's connection
module (``GET /agentkit/connection.js``) over a real uvicorn on 127.0.0.1 with an API
token, the fake model and an HTTP tool whose far side records what ran. The Python tests
below check the routes' refusals, which the transport only shows as a message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.runtime.agentkit_stream import call_part
from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings

from .conftest import REPO, until
from .fakes.http_server import FakeHttpServer
from .fakes.http_server import Reply as HttpReply
from .fakes.inngest_executor import StandInExecutor
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served

OPS = """\
name: ops
model: {{id: openai/fake, api_base: "{llm}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
agents:
  ops: {{description: runs commands, system: "Help with {{{{ input }}}}", tools: [cleanup]}}
router:
  rules: [{{if: "call_count >= 1", stop: true}}, {{if: "true", agent: ops}}]
tools:
  cleanup:
    description: Delete old log files.
    parameters: {{days: {{type: integer}}}}
    approval: {{timeout: 1h}}
    http: {{method: POST, url: "{effects}/cleanup", body: {{days: "{{{{ args.days }}}}"}}, retries: 0}}
"""

TOKEN = "api-" + "t" * 28
ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NETRUN_API_TOKEN": TOKEN}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NODE_TEST = REPO / "tests" / "node" / "use_agent_client.mjs"
HOOK_TEST = REPO / "tests" / "node" / "use_agent_hook.mjs"


@pytest.fixture(scope="module")
def effects() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as server:
        server.script("/cleanup", HttpReply(200, {"deleted": 12}))
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, shared_llm: FakeLLM, effects: FakeHttpServer) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("use-agent")
    (folder / "ops.yaml").write_text(OPS.format(llm=shared_llm.base_url, effects=effects.url))
    environ = {**os.environ, **ENV}
    with Served(
        lambda port: create_app(ServeSettings.from_env(environ, (folder,), engine="local", data_dir=folder / "data", port=port))
    ) as server:
        yield server


def test_use_agent_transport_and_connection_drive_a_thread(served: Served, shared_llm: FakeLLM, effects: FakeHttpServer) -> None:
    """Send, stream, list, load, approve (the call runs), cancel, resume, delete: all through
    the npm package's transport and the connection module, nothing but URLs configured."""
    if shutil.which("node") is None or not (REPO / "node_modules" / "@inngest" / "use-agent").is_dir():
        pytest.fail("node and the npm packages are needed: npm ci (package.json lists @inngest/use-agent)")
    shared_llm.reset()
    shared_llm.set_script(
        [
            Reply(text="I can clean up logs."),
            Reply(text="cleaning", tool_calls=[ToolCall("cleanup", {"days": 30})]),
            Reply(text="again", tool_calls=[ToolCall("cleanup", {"days": 7})]),
        ]
    )
    before = len(effects.hits_for("/cleanup"))
    done = subprocess.run(
        ["node", str(NODE_TEST)],
        env={**os.environ, "NETRUN_URL": served.url, "NETRUN_API_TOKEN": TOKEN, "NETWORK": "ops"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print("use-agent client timings (ms):", seen["ms"])  # shown with pytest -s

    thread = seen["created"]["threadId"]
    assert seen["created"]["title"] == "ops chat"
    assert seen["sent"]["success"] is True and seen["sent"]["threadId"] == thread
    # The run's chunks reached the subscriber, in AgentKit's form, routed to the thread.
    first = seen["first"]
    assert first[0] == "run.started" and first[-1] == "stream.ended", first
    assert "text.delta" in first and "part.completed" in first and "run.completed" in first
    assert seen["firstText"] == "I can clean up logs."
    assert seen["allUsable"] is True
    assert seen["threadIds"] == [thread]
    # Threads and history, in the shapes use-agent reads.
    listed = seen["threads"]["threads"]
    assert [t["id"] for t in listed] == [thread] and seen["threads"]["hasMore"] is False
    assert listed[0]["title"] == "What can you do?" and listed[0]["messageCount"] == 2
    history = seen["history"]
    assert [m["type"] for m in history] == ["user", "agent"]
    assert history[0]["content"] == "What can you do?"
    assert history[1]["data"]["output"][0] == {"type": "text", "role": "assistant", "content": "I can clean up logs."}
    # The gated call: requested with its partId, a wrong id refused with the reason, approved, ran once.
    assert seen["hitl"]["toolCalls"][0]["toolName"] == "cleanup"
    assert seen["hitl"]["toolCalls"][0]["toolInput"] == {"days": 30}
    assert f"has no tool call no-such-call waiting for approval on thread {thread}" in seen["wrongApproval"]
    assert seen["resolved"]["resolution"] == "approved"
    assert "hitl.resolved" in seen["second"] and seen["second"][-1] == "stream.ended"
    assert seen["secondOutputs"], seen["second"]
    hits = effects.hits_for("/cleanup")[before:]
    assert [h.json() for h in hits] == [{"days": 30}]  # the approved call ran; the cancelled one never did
    # Cancelled while it waited for approval.
    assert "run.interrupted" in seen["third"] and seen["third"][-1] == "stream.ended"
    assert "has no run that has not ended" in seen["secondCancel"]
    # Resumed after a cursor: exactly what followed, nothing again.
    assert seen["resumedSame"] is True and seen["resumedCount"] > 0
    # A subscriber whose token was refused and whose streams kept dropping saw the same chunks.
    assert seen["flakySame"] is True
    assert seen["flakyTokens"] >= 2 and seen["flakyOpened"] >= 3 and seen["flakyResumedWithCursor"] is True
    assert "no thread" in seen["afterDelete"]
    assert "active" in seen["states"]


def test_the_use_agents_hook_streams_lists_and_approves(served: Served, shared_llm: FakeLLM, effects: FakeHttpServer) -> None:
    """The React hook itself (rendered without a DOM), unchanged: its realtime subscription
    (@inngest/realtime's WebSocket, pointed at netrun by INNGEST_BASE_URL) streams the reply
    into its messages, its thread list shows the thread, and approving the tool-call part it
    shows runs the call."""
    shared_llm.reset()
    shared_llm.set_script(
        [
            Reply(text="I can clean up logs."),
            Reply(text="cleaning", tool_calls=[ToolCall("cleanup", {"days": 30})]),
            Reply(text="Hi, late one."),
        ]
    )
    before = len(effects.hits_for("/cleanup"))
    done = subprocess.run(
        ["node", "--experimental-websocket", str(HOOK_TEST)],  # Node 20: WebSocket is behind a flag
        env={**os.environ, "INNGEST_BASE_URL": served.url, "NETRUN_URL": served.url, "NETRUN_API_TOKEN": TOKEN, "NETWORK": "ops"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["reply"] == "I can clean up logs." and seen["roles"] == ["user", "assistant"]
    assert seen["listed"] == {"title": "What can you do?", "messageCount": 2}
    assert seen["toolInput"] == {"days": 30}
    assert seen["toolOutput"] == {"data": {"status": 200, "body": {"deleted": 12}}}
    assert [h.json() for h in effects.hits_for("/cleanup")[before:]] == [{"days": 30}]
    assert seen["refused"] == {"opened": 3, "messages": 0, "code": 1008}  # a foreign token: closed, nothing sent
    # Opened after its run had ended, a socket still got the whole run: the key's cursor.
    assert seen["late"]["kinds"] == ["data"] and seen["late"]["topics"] == ["agent_stream"]
    assert seen["late"]["first"] == "run.started" and seen["late"]["last"] == "stream.ended"
    assert seen["lateRun"] in seen["late"]["runs"]


def test_the_connection_module_is_served_without_the_token(served: Served) -> None:
    answer = httpx.get(f"{served.url}/agentkit/connection.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert "export function createNetrunConnection" in answer.text


def test_the_endpoints_need_the_api_token(served: Served) -> None:
    answer = httpx.get(f"{served.url}/agentkit/ops/threads")
    assert answer.status_code == 401
    assert "bearer token" in answer.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/agentkit/nope/chat", {"userMessage": {"content": "hi"}}, 404, "no network named 'nope'; served: ops"),
        ("/agentkit/ops/chat", {"userMessage": {"content": ""}}, 422, "body.userMessage.content"),
        ("/agentkit/ops/chat", {"threadId": "t1"}, 422, "body.userMessage: Field required"),
        ("/agentkit/ops/chat", {"userMessage": {"content": "hi", "state": {"x": 1}}}, 422, "body.userMessage.state.x"),
        ("/agentkit/ops/approve-tool", {"toolCallId": "c", "threadId": "t", "action": "maybe"}, 422, "body.action"),
        ("/agentkit/ops/realtime/token", {}, 422, "give userId or channelKey"),
        ("/agentkit/ops/realtime/token", {"userId": "u" * 201}, 422, "body.userId"),
        ("/agentkit/ops/chat/cancel", {"threadId": "t_none"}, 404, "has no run that has not ended"),
    ],
)
def test_bad_requests_are_refused_with_the_field_and_the_reason(
    served: Served, path: str, body: dict[str, Any], status: int, says: str
) -> None:
    # As the transport sends them when an app gives its own headers: no content type.
    answer = httpx.post(f"{served.url}{path}", content=json.dumps(body), headers=AUTH)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["message"], answer.json()
    assert answer.json()["message"] == answer.json()["detail"]


def test_a_body_that_is_not_json_is_a_422(served: Served) -> None:
    answer = httpx.post(f"{served.url}/agentkit/ops/chat", content=b"hello", headers=AUTH)
    assert answer.status_code == 422  # refused by the server's request guard, before the route
    assert answer.json()["detail"].startswith("body: not valid JSON")


def test_the_stream_token_opens_only_its_user_stream(served: Served) -> None:
    token = httpx.post(f"{served.url}/agentkit/ops/realtime/token", json={"userId": "alice"}, headers=AUTH).json()
    assert token["url"] == "/users/alice/events" and token["scope"] == "user" and token["channel"] == "alice"
    assert token["expires"] > 0 and TOKEN not in json.dumps(token)
    other = httpx.get(f"{served.url}/users/bob/events", params={"token": token["token"]})
    assert other.status_code == 401
    with httpx.stream("GET", f"{served.url}{token['url']}", params={"token": token["token"], "live": "true"}) as own:
        assert own.status_code == 200
        assert own.headers["content-type"].startswith("text/event-stream")


def test_threads_page_by_offset_and_by_cursor(served: Served) -> None:
    made = [
        httpx.post(f"{served.url}/agentkit/ops/threads", json={"userId": "pager"}, headers=AUTH).json()["threadId"]
        for _ in range(3)
    ]
    first = httpx.get(f"{served.url}/agentkit/ops/threads", params={"userId": "pager", "limit": 2}, headers=AUTH).json()
    assert first["hasMore"] is True and len(first["threads"]) == 2
    by_cursor = httpx.get(
        f"{served.url}/agentkit/ops/threads",
        params={
            "userId": "pager",
            "limit": 2,
            "cursorTimestamp": first["nextCursorTimestamp"],
            "cursorId": first["nextCursorId"],
        },
        headers=AUTH,
    ).json()
    by_offset = httpx.get(
        f"{served.url}/agentkit/ops/threads", params={"userId": "pager", "limit": 2, "offset": 2}, headers=AUTH
    ).json()
    ids = [t["id"] for t in first["threads"]] + [t["id"] for t in by_cursor["threads"]]
    assert sorted(ids) == sorted(made) and by_cursor["hasMore"] is False
    assert [t["id"] for t in by_offset["threads"]] == [t["id"] for t in by_cursor["threads"]]
    assert first["threads"][0]["title"] == "New conversation"
    bad = httpx.get(f"{served.url}/agentkit/ops/threads", params={"cursorTimestamp": "yesterday"}, headers=AUTH)
    assert bad.status_code == 422 and "query.cursorTimestamp" in bad.json()["message"]


def test_a_call_denied_with_a_reason_does_not_run(served: Served, shared_llm: FakeLLM, effects: FakeHttpServer) -> None:
    """Denied by the approval id (the other name approveToolCall accepts): the call never runs,
    the run goes on and ends, and the decision's reason reaches the run's stream."""
    shared_llm.reset()
    shared_llm.set_script([Reply(text="cleaning", tool_calls=[ToolCall("cleanup", {"days": 3})])])
    before = len(effects.hits_for("/cleanup"))
    sent = httpx.post(f"{served.url}/agentkit/ops/chat", json={"userMessage": {"content": "Tidy up"}}, headers=AUTH).json()
    run_id, thread = sent["runId"], sent["threadId"]
    pending = until(
        "the call to wait for approval",
        lambda: httpx.get(f"{served.url}/runs/{run_id}", headers=AUTH).json()["approvals"],
    )
    denied = httpx.post(
        f"{served.url}/agentkit/ops/approve-tool",
        json={"toolCallId": pending[0]["id"], "threadId": thread, "action": "deny", "reason": "not today"},
        headers=AUTH,
    )
    assert denied.status_code == 204, denied.text
    until("the run to end", lambda: httpx.get(f"{served.url}/runs/{run_id}", headers=AUTH).json()["status"] == "completed")
    assert effects.hits_for("/cleanup")[before:] == []
    with httpx.stream("GET", f"{served.url}/runs/{run_id}/events", headers=AUTH, timeout=30) as stream:
        chunks = [json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")]
    resolved = next(c["data"] for c in chunks if c["event"] == "hitl.resolved")
    assert resolved["resolution"] == "denied" and resolved["reason"] == "not today"


# -- Inngest ------------------------------------------------------------------------------------------


@pytest.fixture
def on_inngest(tmp_path: Path, shared_llm: FakeLLM, effects: FakeHttpServer) -> Iterator[tuple[Served, StandInExecutor]]:
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=shared_llm.base_url, effects=effects.url))
    with StandInExecutor() as executor:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")}
        environ |= {**ENV, "INNGEST_API_BASE_URL": executor.url, "INNGEST_EVENT_API_BASE_URL": executor.url, "INNGEST_DEV": "1"}
        with Served(
            lambda port: create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=port))
        ) as server:
            executor.sync(f"{server.url}/api/inngest")
            yield server, executor


def test_on_inngest_a_message_runs_and_its_gated_call_is_approved_by_part_id(
    on_inngest: tuple[Served, StandInExecutor], shared_llm: FakeLLM, effects: FakeHttpServer
) -> None:
    server, executor = on_inngest
    shared_llm.reset()
    shared_llm.set_script(
        [
            Reply(text="cleaning", tool_calls=[ToolCall("cleanup", {"days": 90})]),
            Reply(text="again", tool_calls=[ToolCall("cleanup", {"days": 1})]),
        ]
    )
    before = len(effects.hits_for("/cleanup"))
    sent = httpx.post(
        f"{server.url}/agentkit/ops/chat", json={"userMessage": {"content": "Clean up"}, "userId": "ivy"}, headers=AUTH
    )
    assert sent.status_code == 202 and sent.json()["status"] == "queued", sent.text
    run_id, thread = sent.json()["runId"], sent.json()["threadId"]
    (started,) = executor.deliver_received()  # Inngest's own run id; netrun's is the one returned
    assert executor.runs[started].status == "waiting", executor.runs[started].error
    part = call_part(run_id, "turn.0.ops.tool.0.cleanup")
    approved = httpx.post(
        f"{server.url}/agentkit/ops/approve-tool",
        json={"toolCallId": part, "threadId": thread, "action": "approve"},
        headers=AUTH,
    )
    assert approved.status_code == 204, approved.text
    executor.deliver_received()
    assert executor.runs[started].status == "completed", executor.runs[started].error
    assert httpx.get(f"{server.url}/runs/{run_id}", headers=AUTH).json()["status"] == "completed"
    assert [h.json() for h in effects.hits_for("/cleanup")[before:]] == [{"days": 90}]
    again = httpx.post(
        f"{server.url}/agentkit/ops/approve-tool",
        json={"toolCallId": part, "threadId": thread, "action": "approve"},
        headers=AUTH,
    )
    assert again.status_code == 404 and "waiting: none" in again.json()["message"]

    # Another gated call on the thread, cancelled rather than answered: Inngest cancels the run.
    more = httpx.post(
        f"{server.url}/agentkit/ops/chat",
        json={"userMessage": {"content": "Again"}, "threadId": thread, "userId": "ivy"},
        headers=AUTH,
    )
    assert more.status_code == 202, more.text
    (second,) = executor.deliver_received()
    assert executor.runs[second].status == "waiting"
    cancelled = httpx.post(f"{server.url}/agentkit/ops/chat/cancel", json={"threadId": thread}, headers=AUTH)
    assert cancelled.status_code == 204, cancelled.text
    executor.deliver_received()
    assert executor.runs[second].status == "cancelled"
    assert httpx.get(f"{server.url}/runs/{more.json()['runId']}", headers=AUTH).json()["status"] == "cancelled"
    assert [h.json() for h in effects.hits_for("/cleanup")[before:]] == [{"days": 90}]
