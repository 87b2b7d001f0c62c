"""`netrun serve` on the embedded local engine, over real HTTP: the REST API, the SSE events
of a run, waits answered by events, restarts, concurrency per key, tokens and hot reload.

The model is the fake OpenAI-compatible server reached through litellm; its request log
shows what was (and was not) asked again.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings

from .conftest import NETRUN
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served
from .fakes.server_thread import free_port

NETWORK = """\
name: helper
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 4
trigger: {{event: app/helper.asked, input: "{{{{ event.data.question }}}}"}}
function: {{concurrency: [{{limit: 1, key: event.data.user}}]}}
state:
  done: {{type: boolean, default: false}}
  answer: {{type: string}}
agents:
  helper: {{description: helps, system: "{prompt} {{{{ input }}}}", tools: [ask_human, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: helper}}]
tools:
  ask_human:
    wait_for_event: {{event: app/human.answered, match: data.user, timeout: 1h}}
    parameters: {{question: {{type: string}}}}
  finish:
    parameters: {{answer: {{type: string}}}}
    state: {{done: true, answer: "{{{{ args.answer }}}}"}}
"""

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
FINISH = Reply(text="All done.", tool_calls=[ToolCall("finish", {"answer": "42"})])
ASK = Reply(text="Let me ask.", tool_calls=[ToolCall("ask_human", {"question": "which?"})])


def settings(folder: Path, port: int, **env: str) -> ServeSettings:
    return ServeSettings.from_env({**os.environ, **ENV, **env}, (folder,), engine="local", data_dir=folder / "data", port=port)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def serve(**env: str) -> Served:
        server = Served(lambda port: create_app(settings(tmp_path, port, **env))).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


def write_network(folder: Path, llm: FakeLLM, prompt: str = "Help with") -> Path:
    path = folder / "helper.yaml"
    path.write_text(NETWORK.format(base=llm.base_url, prompt=prompt))
    return path


def sse(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The chunks of a Server-Sent Events response (each one's ``event`` is its SSE event name)."""
    kind = None
    for line in response.iter_lines():
        if line.startswith("event:"):
            kind = line.partition(":")[2].strip()
        elif line.startswith("data:") and kind:
            data = json.loads(line.partition(":")[2])
            assert data["event"] == kind
            yield data
            kind = None


def wait_status(url: str, run_id: str, status: str, timeout: float = 30, **kw: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = httpx.get(f"{url}/runs/{run_id}", **kw).json()
        if run["status"] == status:
            return run  # type: ignore[no-any-return]
        assert run["status"] not in ("failed", "completed"), run
        assert time.monotonic() < deadline, f"run {run_id} is {run['status']}, not {status}"
        time.sleep(0.05)


def test_a_run_streams_its_events_over_sse(tmp_path: Path, served: Callable[..., Served]) -> None:
    """The whole story of a run, read by a real HTTP client: the events so far on connecting,
    then live ones; the model's text streams (text.delta) while someone watches."""
    with FakeLLM([ASK, FINISH]) as llm:
        write_network(tmp_path, llm)
        server = served()
        started = httpx.post(f"{server.url}/networks/helper/runs", json={"input": "the answer", "data": {"user": "ann"}})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        wait_status(server.url, run_id, "waiting")
        events = []
        with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for event in sse(response):
                events.append(event)
                if event["event"] == "netrun.waiting":  # answer the human's question while watching
                    httpx.post(
                        f"{server.url}/events", json={"name": "app/human.answered", "data": {"user": "ann", "answer": "blue"}}
                    )
        run = httpx.get(f"{server.url}/runs/{run_id}").json()
    kinds = [e["event"] for e in events]
    for kind in ("run.started", "part.created", "text.delta", "tool_call.arguments.delta", "tool_call.output.delta"):
        assert kind in kinds, kinds
    assert "netrun.waiting" in kinds and kinds[0] == "run.started" and kinds[-2:] == ["run.completed", "stream.ended"]
    started = [e["data"]["scope"] for e in events if e["event"] == "run.started"]
    assert started == ["network", "agent", "agent"]  # nothing replayed twice
    second = [i for i, e in enumerate(events) if e["event"] == "run.started"][-1]
    assert second > kinds.index("netrun.waiting")
    message = events[second]["data"]["messageId"]
    deltas = [e["data"]["delta"] for e in events if e["event"] == "text.delta" and e["data"]["messageId"] == message]
    assert "".join(deltas) == "All done."
    assert kinds.index("text.delta", second) < kinds.index("tool_call.arguments.delta", second)
    calls = [e["data"] for e in events if e["event"] == "part.completed" and e["data"]["type"] == "tool-call"]
    assert [c["finalContent"] for c in calls] == [{"question": "which?"}, {"answer": "42"}]
    assert run["status"] == "completed"
    assert run["result"]["output"] == "All done."
    assert run["result"]["route"] == ["helper", "helper"]
    assert run["result"]["state"]["answer"] == "42"
    assert run["result"]["usage"]["tokens"] > 0
    assert llm.requests[0]["messages"][0]["content"] == "Help with the answer"
    # A client that connects after the end still gets the whole story.
    with httpx.stream("GET", f"{server.url}/runs/{run_id}/events", timeout=30) as response:
        assert [e["event"] for e in sse(response)] == kinds


def test_rest_api_errors_and_listing(tmp_path: Path, served: Callable[..., Served]) -> None:
    with FakeLLM([]) as llm:
        write_network(tmp_path, llm)
        server = served()
        listing = httpx.get(f"{server.url}/networks").json()["networks"]
        assert [n["name"] for n in listing] == ["helper"]
        assert listing[0]["triggers"] == [{"event": "app/helper.asked"}]
        assert len(listing[0]["definition_hash"]) == 16
        missing = httpx.post(f"{server.url}/networks/nope/runs", json={})
        assert missing.status_code == 404 and "served: helper" in missing.json()["detail"]
        assert httpx.get(f"{server.url}/runs/nope").status_code == 404
        assert httpx.put(f"{server.url}/api/inngest").status_code in (404, 405)  # no Inngest server configured
        assert httpx.post(f"{server.url}/networks/helper/runs", json={"inpt": "typo"}).status_code == 422
        # The trigger's input template needs event.data.question: a clear 400, not a run that fails.
        bad = httpx.post(f"{server.url}/networks/helper/runs", json={"data": {"user": "ann"}})
        assert bad.status_code == 400 and "question" in bad.json()["detail"]
        assert llm.count == 0


def test_bearer_token(tmp_path: Path, served: Callable[..., Served]) -> None:
    with FakeLLM([]) as llm:
        write_network(tmp_path, llm)
        server = served(NETRUN_API_TOKEN="s3cret-token")
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert httpx.get(f"{server.url}/networks").status_code == 401
        wrong = httpx.get(f"{server.url}/networks", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "s3cret" not in wrong.text
        assert httpx.get(f"{server.url}/networks", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert httpx.post(f"{server.url}/events", json={"name": "x"}).status_code == 401


def test_a_waiting_run_survives_a_restart_and_resumes_on_an_event(tmp_path: Path, served: Callable[..., Served]) -> None:
    with FakeLLM([ASK, FINISH]) as llm:
        write_network(tmp_path, llm)
        server = served()
        run_id = httpx.post(f"{server.url}/networks/helper/runs", json={"input": "q", "data": {"user": "ann"}}).json()["run_id"]
        wait_status(server.url, run_id, "waiting")
        server.restart()
        assert httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "waiting"
        # An answer for another user leaves it waiting; the right one resumes it.
        other = httpx.post(f"{server.url}/events", json={"name": "app/human.answered", "data": {"user": "bob", "answer": "no"}})
        assert other.json()["resumed"] == []
        answered = httpx.post(
            f"{server.url}/events", json={"name": "app/human.answered", "data": {"user": "ann", "answer": "blue"}}
        )
        assert answered.status_code == 202 and answered.json()["resumed"] == [run_id]
        run = wait_status(server.url, run_id, "completed")
    assert run["result"]["route"] == ["helper", "helper"]
    assert run["result"]["results"][0]["tool_calls"][0]["result"] == {"user": "ann", "answer": "blue"}
    assert llm.count == 2  # the restart asked the model nothing again


def test_events_start_the_networks_they_trigger_with_concurrency_per_key(tmp_path: Path, served: Callable[..., Served]) -> None:
    arrivals: list[tuple[float, str]] = []
    lock = threading.Lock()
    delay = 0.4

    def answer(body: dict[str, Any]) -> Reply:
        with lock:
            arrivals.append((time.monotonic(), body["messages"][0]["content"]))
        return Reply(text="ok", tool_calls=[ToolCall("finish", {"answer": "x"})], delay=delay)

    with FakeLLM([], fallback=answer) as llm:
        write_network(tmp_path, llm)
        server = served()
        ids = []
        for user, n in [("ann", 1), ("ann", 2), ("ann", 3), ("bob", 1), ("bob", 2)]:
            sent = httpx.post(
                f"{server.url}/events", json={"name": "app/helper.asked", "data": {"user": user, "question": f"{user}{n}"}}
            )
            assert sent.status_code == 202, sent.text
            ids += sent.json()["started"]
        assert len(ids) == 5
        assert "queued" in {
            httpx.get(f"{server.url}/runs/{run_id}").json()["status"] for run_id in ids[:3]
        }  # ann's wait their turn
        for run_id in ids:
            wait_status(server.url, run_id, "completed")
    # Runs of one user never overlapped (limit 1 per key); the two users' runs did.
    spans = [(t, t + delay, prompt.split()[-1][:3]) for t, prompt in arrivals]

    def overlap(a: tuple[float, float, str], b: tuple[float, float, str]) -> bool:
        return a[0] < b[1] - 0.05 and b[0] < a[1] - 0.05

    same = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if a[2] == b[2] and overlap(a, b)]
    across = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if a[2] != b[2] and overlap(a, b)]
    assert len(spans) == 5
    assert same == []
    assert across


def test_hot_reload_keeps_runs_on_their_definition_and_survives_an_invalid_edit(
    tmp_path: Path, served: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="netrun.serve")
    with FakeLLM([ASK, FINISH, FINISH, FINISH]) as llm:
        path = write_network(tmp_path, llm, prompt="Version one:")
        server = served()
        first_hash = httpx.get(f"{server.url}/networks").json()["networks"][0]["definition_hash"]
        in_flight = httpx.post(f"{server.url}/networks/helper/runs", json={"input": "q", "data": {"user": "ann"}}).json()[
            "run_id"
        ]
        wait_status(server.url, in_flight, "waiting")

        write_network(tmp_path, llm, prompt="Version two:")
        second_hash = _await_hash_change(server.url, first_hash)

        # An invalid edit: logged with validate's message; the last good version serves on.
        path.write_text(path.read_text().replace("tools: [ask_human, finish]", "tools: [ask_humn, finish]"))
        deadline = time.monotonic() + 15
        while "ask_humn" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
        assert httpx.get(f"{server.url}/networks").json()["networks"][0]["definition_hash"] == second_hash
        assert "helper.yaml:" in caplog.text and "still serving the last good version of: helper" in caplog.text

        new_run = httpx.post(f"{server.url}/networks/helper/runs", json={"input": "new", "data": {"user": "bob"}}).json()
        assert new_run["definition_hash"] == second_hash
        wait_status(server.url, new_run["run_id"], "completed")
        httpx.post(f"{server.url}/events", json={"name": "app/human.answered", "data": {"user": "ann"}})
        old = wait_status(server.url, in_flight, "completed")
        prompts = [r["messages"][0]["content"] for r in llm.requests]
    assert old["definition_hash"] == first_hash
    assert prompts == ["Version one: q", "Version two: new", "Version one: q"]


def _await_hash_change(url: str, old: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        current = httpx.get(f"{url}/networks").json()["networks"][0]["definition_hash"]
        if current != old:
            return str(current)
        assert time.monotonic() < deadline, "the edit was not picked up"
        time.sleep(0.05)


def test_kill_9_of_the_server_mid_run_then_restart_resumes_the_run(tmp_path: Path) -> None:
    """A real `netrun serve` process is killed during an inference; started again, it resumes
    the run from its journal: the completed inference is not asked again."""
    env = {**os.environ, **ENV}
    with FakeLLM([Reply(text="first"), Reply(text="slow", tool_calls=[ToolCall("finish", {"answer": "1"})], delay=3.0)]) as llm:
        (tmp_path / "helper.yaml").write_text(
            NETWORK.format(base=llm.base_url, prompt="Help").replace("max_iter: 4", "max_iter: 3")
        )
        port = free_port()

        def serve() -> subprocess.Popen[str]:
            return _serve_process(tmp_path, port, env)

        proc = serve()
        url = f"http://127.0.0.1:{port}"
        run_id = httpx.post(f"{url}/networks/helper/runs", json={"input": "q", "data": {"user": "ann"}}).json()["run_id"]
        llm.wait_for(2, timeout=30)  # the second inference is in flight (3 s)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        llm.set_script([Reply(text="slow", tool_calls=[ToolCall("finish", {"answer": "1"})])])
        proc = serve()
        try:
            run = wait_status(url, run_id, "completed", timeout=60)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        contents = [r["messages"][-1]["content"] for r in llm.requests]
    assert run["result"]["output"] == "slow"
    assert "resuming 1 run(s)" in err
    assert len(contents) == 3  # call 1 once; call 2 in flight at the kill, so made again
    assert contents[1] == contents[2] != contents[0]


def _serve_process(folder: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    """``netrun serve FOLDER`` as a process of its own session (a test may kill the group), up."""
    proc = subprocess.Popen(
        [NETRUN, "serve", str(folder), "--port", str(port), "--data-dir", str(folder / "data"), "--no-watch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _await_up(f"http://127.0.0.1:{port}", proc)
    return proc


def _await_up(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "netrun serve did not come up"
        time.sleep(0.1)


def test_serve_refuses_production_without_a_signing_key(netrun_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INNGEST_DEV", raising=False)
    monkeypatch.delenv("INNGEST_SIGNING_KEY", raising=False)
    monkeypatch.setenv("INNGEST_BASE_URL", "http://127.0.0.1:9")
    result = netrun_cli("serve", "networks")
    assert result.exit_code == 1
    assert "production mode needs INNGEST_SIGNING_KEY" in result.output and "INNGEST_DEV=1" in result.output
    monkeypatch.delenv("INNGEST_BASE_URL")
    result = netrun_cli("serve", "networks", "--engine", "inngest")
    assert result.exit_code == 1 and "INNGEST_SIGNING_KEY" in result.output


def test_serve_refuses_invalid_files_with_validates_messages(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nmodel: openai/x\nagents:\n  a: {system: hi, tools: [nope]}\n")
    result = netrun_cli("serve", str(tmp_path), "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 1
    assert "bad.yaml:4:" in result.output and "nope" in result.output
    assert netrun_cli("serve", str(tmp_path / "missing")).exit_code == 2


RACE = """\
name: racer
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
trigger: {{event: app/go}}
state: {{done: {{type: boolean, default: false}}}}
agents:
  a: {{description: d, system: "go", tools: [ask, slow, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: a}}]
tools:
  ask:
    wait_for_event: {{event: app/answer, match: data.user, timeout: 1h}}
    parameters: {{q: {{type: string}}}}
  slow:
    http: {{url: "{api}/slow", timeout: 10s}}
  finish: {{state: {{done: true}}}}
"""


def test_an_answer_that_arrives_while_the_turn_still_runs_resumes_the_run_once(
    tmp_path: Path, served: Callable[..., Served]
) -> None:
    """The wait is recorded while a slow tool of the same turn still runs; the answer comes
    then. The executing task goes on with it; no second task replays the run beside it."""
    from .fakes.http_server import FakeHttpServer
    from .fakes.http_server import Reply as HttpReply

    script = [
        Reply(text="both", tool_calls=[ToolCall("ask", {"q": "?"}), ToolCall("slow", {})]),
        Reply(text="done", tool_calls=[ToolCall("finish", {})]),
    ]
    with FakeLLM(script) as llm, FakeHttpServer() as api:
        api.script("/slow", HttpReply(200, {"ok": True}, delay=1.5))
        (tmp_path / "racer.yaml").write_text(RACE.format(base=llm.base_url, api=api.url))
        server = served()
        started = httpx.post(f"{server.url}/events", json={"name": "app/go", "data": {"user": "u", "input": "go"}}).json()
        assert len(started["started"]) == 1, started
        run_id = started["started"][0]
        deadline = time.monotonic() + 10
        while not api.hits_for("/slow"):  # the slow call is in flight, the wait recorded
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.2)
        answered = httpx.post(f"{server.url}/events", json={"name": "app/answer", "data": {"user": "u", "a": "yes"}}).json()
        assert answered["resumed"] == [run_id]
        run = wait_status(server.url, run_id, "completed")
        time.sleep(0.5)
    assert run["result"]["route"] == ["a", "a"]
    assert len(api.hits_for("/slow")) == 1
    assert llm.count == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INNGEST_SIGNING_KEY": "signkey-prod-" + "ab" * 32}, "INNGEST_EVENT_KEY"),
        ({"INNGEST_SIGNING_KEY": "hunter2-not-a-key", "INNGEST_EVENT_KEY": "e"}, "not a signing key"),
        ({"INNGEST_DEV": "1", "INNGEST_BASE_URL": "inngest:8288"}, "INNGEST_BASE_URL must be an http"),
        (
            {
                "INNGEST_SIGNING_KEY": "signkey-prod-" + "ab" * 32,
                "INNGEST_EVENT_KEY": "e",
                "NETRUN_PUBLIC_URL": "user:secret@host",
            },
            "NETRUN_PUBLIC_URL",
        ),
    ],
)
def test_settings_refuse_what_inngest_would_fail_on_later(env: dict[str, str], message: str) -> None:
    from netrun.serve.settings import SettingsError

    with pytest.raises(SettingsError) as error:
        ServeSettings.from_env(env, (Path("networks"),))
    assert message in str(error.value)
    assert "hunter2" not in str(error.value) and "secret" not in str(error.value)


def test_settings_pick_the_engine_from_the_environment() -> None:
    local = ServeSettings.from_env({}, (Path("n"),))
    assert (local.engine, local.inngest_mode) == ("local", None)
    dev = ServeSettings.from_env({"INNGEST_DEV": "http://127.0.0.1:8288"}, (Path("n"),))
    assert (dev.engine, dev.inngest_mode, dev.api_base_url) == ("inngest", "dev", "http://127.0.0.1:8288")
    cloud = ServeSettings.from_env({"INNGEST_SIGNING_KEY": "signkey-prod-" + "ab" * 32, "INNGEST_EVENT_KEY": "e"}, (Path("n"),))
    assert (cloud.engine, cloud.inngest_mode) == ("inngest", "cloud")
    assert "ab" * 32 not in cloud.describe()
    forced = ServeSettings.from_env({"INNGEST_DEV": "1"}, (Path("n"),), engine="local")
    assert (forced.engine, forced.inngest_mode) == ("local", "dev")  # runs here; /api/inngest served too


NOTIFIER = """\
name: notifier
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 2
agents:
  chat: {{description: chats, system: "Chat with {{{{ event.data.user }}}}", tools: [remember]}}
router: {{rules: [{{if: "call_count == 0", agent: chat}}], otherwise: stop}}
tools:
  remember:
    description: Keep a fact about the user for later.
    parameters: {{fact: {{type: string}}}}
    event: {{name: app/memory.write, data: {{user: "{{{{ event.data.user }}}}", fact: "{{{{ args.fact }}}}"}}}}
"""

MEMORY = """\
name: memory
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 1
trigger: {{event: app/memory.write, input: "Store for {{{{ event.data.user }}}}: {{{{ event.data.fact }}}}"}}
agents:
  keeper: {{description: stores, system: "{{{{ input }}}}"}}
router: {{rules: [{{if: "call_count == 0", agent: keeper}}], otherwise: stop}}
"""


def test_an_event_tool_starts_the_networks_its_event_triggers(tmp_path: Path, served: Callable[..., Served]) -> None:
    from netrun.engines.local import Journal

    with FakeLLM([Reply(text="Noted.", tool_calls=[ToolCall("remember", {"fact": "likes owls"})]), Reply(text="stored")]) as llm:
        (tmp_path / "notifier.yaml").write_text(NOTIFIER.format(base=llm.base_url))
        (tmp_path / "memory.yaml").write_text(MEMORY.format(base=llm.base_url))
        server = served()
        run_id = httpx.post(f"{server.url}/networks/notifier/runs", json={"input": "hi", "data": {"user": "ann"}}).json()[
            "run_id"
        ]
        run = wait_status(server.url, run_id, "completed")
        call = run["result"]["results"][0]["tool_calls"][0]
        assert call["result"] == {"sent": "app/memory.write", "id": f"{run_id}:turn.0.chat.tool.0.remember"}
        journal = Journal(tmp_path / "data" / "runs.db")
        deadline = time.monotonic() + 15
        while len(journal.runs()) < 2:
            assert time.monotonic() < deadline, "the event started no run"
            time.sleep(0.05)
        (memory_id,) = [r for r in journal.runs() if r != run_id]
        memory = wait_status(server.url, memory_id, "completed")
        journal.close()
    assert memory["network"] == "memory" and memory["input"] == "Store for ann: likes owls"
    assert llm.requests[1]["messages"][0]["content"] == "Store for ann: likes owls"


def test_a_graceful_stop_lets_the_step_in_flight_finish_so_nothing_is_asked_twice(tmp_path: Path) -> None:
    """SIGTERM during an inference: the server waits for it, records it, stops the run before
    its next step; started again, the run goes on without asking that inference again."""
    env = {**os.environ, **ENV}
    script = [
        Reply(text="first"),
        Reply(text="slow", delay=2.5),
        Reply(text="last", tool_calls=[ToolCall("finish", {"answer": "1"})]),
    ]
    with FakeLLM(script) as llm:
        (tmp_path / "helper.yaml").write_text(NETWORK.format(base=llm.base_url, prompt="Help"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"

        def serve() -> subprocess.Popen[str]:
            return _serve_process(tmp_path, port, env)

        proc = serve()
        run_id = httpx.post(f"{url}/networks/helper/runs", json={"input": "q", "data": {"user": "ann"}}).json()["run_id"]
        llm.wait_for(2, timeout=30)  # the slow inference is in flight
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert "finish their step in flight" in err
        assert llm.count == 2
        proc = serve()
        try:
            run = wait_status(url, run_id, "completed", timeout=60)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate(timeout=60)
    assert run["result"]["route"] == ["helper", "helper", "helper"]
    assert llm.count == 3  # the inference in flight at the stop was not made again


STORM = """\
name: storm
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 1
limits: {{depth: 3}}
trigger: {{event: app/storm, input: "{{{{ event.data.n }}}}"}}
agents:
  spinner: {{description: spins, system: "{{{{ input }}}}", tools: [again]}}
router: {{rules: [{{if: "call_count == 0", agent: spinner}}], otherwise: stop}}
tools:
  again:
    event: {{name: app/storm, data: {{n: more}}}}
"""


def _storm_ends(journal: Any, bound: int, timeout: float = 60) -> list[Any]:
    """The storm's runs once every one of them has completed; fails as soon as there are more
    than ``bound`` (an unbounded storm makes about 150 a second)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [journal.run(i) for i in journal.runs()]
        assert len(runs) <= bound, f"{len(runs)} runs: the storm did not stop at limits.depth"
        if (
            runs
            and all(r is not None and r.status == "completed" for r in runs)
            and any(t.get("error") for r in runs for res in r.result["results"] for t in res["tool_calls"])
        ):
            return runs
        assert time.monotonic() < deadline, [(r.status, r.options) for r in runs if r is not None]
        time.sleep(0.05)


@pytest.mark.parametrize("restart", [False, True], ids=["steady", "restart-mid-storm"])
def test_an_event_tool_that_triggers_its_own_network_stops_at_the_depth_limit(
    tmp_path: Path, served: Callable[..., Served], restart: bool
) -> None:
    """Each storm run sends the event that starts storm again: the run at depth 3 (the limit)
    is refused, so 4 runs in all; a restart in the middle changes nothing (depths are stored
    with the runs), and an outside event starts a new chain at depth 0."""
    from netrun.engines.local import Journal

    again = lambda body: Reply(text="again", tool_calls=[ToolCall("again", {})], delay=0.2 if restart else None)  # noqa: E731
    with FakeLLM(fallback=again) as llm:
        (tmp_path / "storm.yaml").write_text(STORM.format(base=llm.base_url))
        server = served()
        started = httpx.post(f"{server.url}/events", json={"name": "app/storm", "data": {"n": "go"}})
        assert started.status_code == 202 and len(started.json()["started"]) == 1, started.text
        journal = Journal(tmp_path / "data" / "runs.db")
        try:
            if restart:
                deadline = time.monotonic() + 30
                while len(journal.runs()) < 2:
                    assert time.monotonic() < deadline, "the storm's first event started no run"
                    time.sleep(0.02)
                midway = len(journal.runs())
                server.restart()
                assert midway < 4  # the storm was stopped half way, and goes on from the journal
            runs = _storm_ends(journal, bound=4)
            assert sorted(r.options.get("depth", 0) for r in runs) == [0, 1, 2, 3]
            (last,) = [r for r in runs if r.options.get("depth") == 3]
            (call,) = last.result["results"][0]["tool_calls"]
            assert call["error"] == (
                "refused: sending the event app/storm would start a run at depth 4, past the limit of 3 "
                "(limits.depth of network 'storm'; this run is at depth 3); the event was not sent"
            )
            assert llm.count == 4  # one inference per run, none asked again after the restart
            # A new outside event: a new chain from depth 0, which stops the same way.
            forged = httpx.post(
                f"{server.url}/events", json={"name": "app/storm", "data": {"n": "go", "_netrun": {"depth": -50}}}
            )
            assert forged.status_code == 422 and "_netrun is reserved" in forged.json()["detail"]  # no depth from outside
            assert httpx.post(f"{server.url}/events", json={"name": "app/storm", "data": {"n": "go"}}).status_code == 202
            deadline = time.monotonic() + 30
            while len(journal.runs()) < 5:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert len(_storm_ends(journal, bound=8)) == 8
        finally:
            journal.close()


def test_a_reload_whose_edit_closes_a_cycle_keeps_the_last_good_version_of_the_edited_network(tmp_path: Path) -> None:
    """b calls a; an edit makes a call b. Validation reports the cycle at b's tool (the edge a
    walk in file order closes), in the file that did not change: the reload must still not
    serve the new a beside b, or the served networks call each other without end."""
    from netrun.check.cycles import network_cycles
    from netrun.serve.catalog import Catalog

    def network(name: str, calls: str | None) -> str:
        tools = f", tools: [call]}}\ntools:\n  call: {{network: {calls}}}\n" if calls else "}\n"
        return f"name: {name}\nmodel: openai/x\nagents:\n  x: {{description: d, system: hi{tools}"

    (tmp_path / "a.yaml").write_text(network("a", None))
    (tmp_path / "b.yaml").write_text(network("b", "a"))
    catalog = Catalog((tmp_path,))
    assert catalog.reload().errors == 0
    first_a = catalog.get("a")
    (tmp_path / "a.yaml").write_text(network("a", "b"))
    result = catalog.reload()
    assert result.errors and "a -> b -> a" in result.problems
    assert network_cycles([v.spec for v in catalog.current.values()]) == []
    assert catalog.get("a") is first_a and "a" in result.kept  # the last good a keeps serving
    assert catalog.get("b") is not None
    # Undoing the edit serves a again, without a problem.
    (tmp_path / "a.yaml").write_text(network("a", None) + "description: again\n")
    assert catalog.reload().errors == 0 and catalog.get("a") is not first_a


PASS_ON = """\
name: {name}
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 1
trigger: {{event: {trigger}, input: "{{{{ event.data.n }}}}"}}
agents:
  a: {{description: works, system: "{{{{ input }}}}", tools: [{tools}]}}
router: {{rules: [{{if: "call_count == 0", agent: a}}], otherwise: stop}}
tools:
  pass_on:
    event: {{name: app/work, data: {{n: more}}}}
"""


def test_an_event_sent_again_after_a_crash_starts_no_run_twice(tmp_path: Path, served: Callable[..., Served]) -> None:
    """A crash between a run's event being delivered and its step being recorded makes the
    resumed run send the event again; its id (run and step) is the same, so the run it
    started is not started a second time."""
    import sqlite3

    from netrun.engines.local import Journal

    def reply(body: dict[str, Any]) -> Reply:
        sender = "first" in json.dumps(body["messages"])
        return Reply(text="passing on", tool_calls=[ToolCall("pass_on", {})]) if sender else Reply(text="worked")

    with FakeLLM(fallback=reply) as llm:
        (tmp_path / "sender.yaml").write_text(
            PASS_ON.format(name="sender", base=llm.base_url, trigger="app/start", tools="pass_on")
        )
        (tmp_path / "worker.yaml").write_text(PASS_ON.format(name="worker", base=llm.base_url, trigger="app/work", tools=""))
        server = served()
        started = httpx.post(f"{server.url}/events", json={"name": "app/start", "data": {"n": "first"}})
        (sender,) = started.json()["started"]
        journal = Journal(tmp_path / "data" / "runs.db")
        try:

            def settled() -> list[Any]:
                deadline = time.monotonic() + 30
                while True:
                    runs = [journal.run(i) for i in journal.runs()]
                    if len(runs) == 2 and all(r is not None and r.status == "completed" for r in runs):
                        return runs
                    assert len(runs) <= 2 and time.monotonic() < deadline, [(r.network, r.status) for r in runs if r]
                    time.sleep(0.05)

            settled()
            server.stop()
            # The state a crash right after the delivery leaves: the send step unrecorded, the run running.
            with sqlite3.connect(tmp_path / "data" / "runs.db") as db:
                assert (
                    db.execute("DELETE FROM steps WHERE run_id = ? AND step_id LIKE '%.tool.0.pass_on'", (sender,)).rowcount == 1
                )
                db.execute("UPDATE runs SET status = 'running', result = NULL WHERE id = ?", (sender,))
            server.start()
            deadline = time.monotonic() + 30
            while journal.run(sender).status != "completed":
                assert time.monotonic() < deadline, "the sender did not resume"
                time.sleep(0.05)
            runs = settled()
            assert sorted(r.network for r in runs) == ["sender", "worker"]  # the worker ran once
        finally:
            journal.close()


DEEP = "name: deep\nagents: " + "[" * 600 + "]" * 600 + "\n"
"""600 levels: under libyaml's limit, far past Python's recursion limit for a recursive walk."""


def _plain(name: str, extra: str = "") -> str:
    return f"name: {name}\nmodel: openai/x\nagents:\n  x: {{description: d, system: hi{extra}}}\n"


def test_serve_start_up_on_a_folder_with_a_deep_file_fails_with_its_located_message(tmp_path: Path) -> None:
    from netrun.serve.app import StartError

    (tmp_path / "ok.yaml").write_text(_plain("ok"))
    (tmp_path / "deep.yaml").write_text(DEEP)
    with pytest.raises(StartError) as raised:
        create_app(settings(tmp_path, free_port()))
    assert f"{tmp_path / 'deep.yaml'}:2:109: error: agents: nested deeper than 100 levels" in str(raised.value)
    done = subprocess.run(
        [NETRUN, "serve", str(tmp_path), "--port", str(free_port()), "--data-dir", str(tmp_path / "data"), "--no-watch"],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert f"{tmp_path / 'deep.yaml'}:2:109: error: agents: nested deeper than 100 levels" in done.stderr


def test_a_broken_fragment_no_network_includes_does_not_hold_back_a_valid_edit(tmp_path: Path) -> None:
    from netrun.serve.catalog import Catalog

    (tmp_path / "a.yaml").write_text(_plain("a"))
    catalog = Catalog((tmp_path,))
    assert catalog.reload().errors == 0
    first = catalog.get("a")
    (tmp_path / "stray.fragment.yaml").write_text("agents: {y: {description: [not, text]}}\n")
    (tmp_path / "a.yaml").write_text(_plain("a") + "description: edited\n")
    result = catalog.reload()
    assert (
        f"{tmp_path / 'stray.fragment.yaml'}:1:27: error: agents.y.description: expected a string, got a list" in result.problems
    )
    served = catalog.get("a")
    assert served is not None and served is not first and served.spec.description == "edited"
    assert result.kept == []


def test_a_broken_included_fragment_keeps_only_its_includers_at_their_last_good_version(tmp_path: Path) -> None:
    from netrun.serve.catalog import Catalog

    (tmp_path / "shared.fragment.yaml").write_text("prompts: {p: hello}\n")
    (tmp_path / "inner.fragment.yaml").write_text("include: [shared.fragment.yaml]\n")
    (tmp_path / "a.yaml").write_text(_plain("a") + "include: [inner.fragment.yaml]\n")  # through another fragment
    (tmp_path / "b.yaml").write_text(_plain("b"))
    catalog = Catalog((tmp_path,))
    assert catalog.reload().errors == 0
    first_a, first_b = catalog.get("a"), catalog.get("b")
    (tmp_path / "shared.fragment.yaml").write_text("prompts: {p: [broken]}\n")
    (tmp_path / "a.yaml").write_text(_plain("a") + "include: [inner.fragment.yaml]\ndescription: edited\n")
    (tmp_path / "b.yaml").write_text(_plain("b") + "description: edited\n")
    result = catalog.reload()
    assert result.errors and result.kept == ["a"]
    assert catalog.get("a") is first_a
    b = catalog.get("b")
    assert b is not None and b is not first_b and b.spec.description == "edited"
    (tmp_path / "shared.fragment.yaml").write_text("prompts: {p: mended}\n")
    assert catalog.reload().errors == 0
    a = catalog.get("a")
    assert a is not None and a.spec.description == "edited"


def test_hot_reload_goes_on_past_a_deep_file_and_never_logs_a_file_outside_the_folder(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, served: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="netrun.serve")
    secret = "PRIVATE-7f3a: the first line of a file outside the folder"
    outside = tmp_path_factory.mktemp("outside") / "notes.yaml"
    outside.write_text(secret + "\n")
    with FakeLLM([]) as llm:
        write_network(tmp_path, llm, prompt="Version one:")
        server = served()
        first_hash = httpx.get(f"{server.url}/networks").json()["networks"][0]["definition_hash"]
        (tmp_path / "deep.yaml").write_text(DEEP)
        (tmp_path / "notes.fragment.yaml").symlink_to(outside)
        deadline = time.monotonic() + 15
        while "notes.fragment.yaml" not in caplog.text or "deep.yaml" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
        # While the deep file exists, an edit of another file still takes effect.
        write_network(tmp_path, llm, prompt="Version two:")
        _await_hash_change(server.url, first_hash)
    assert f"{tmp_path / 'deep.yaml'}:2:109: error: agents: nested deeper than 100 levels" in caplog.text
    assert f"'{tmp_path / 'notes.fragment.yaml'}' resolves outside the validated folder ({tmp_path})" in caplog.text
    assert "PRIVATE-7f3a" not in caplog.text
    assert "Traceback" not in caplog.text


def test_start_up_names_the_settings_the_local_engine_does_not_apply(
    tmp_path: Path, served: Callable[..., Served], caplog: pytest.LogCaptureFixture
) -> None:
    with FakeLLM([]) as llm:
        text = NETWORK.format(base=llm.base_url, prompt="Help with").replace(
            "function: {concurrency: [{limit: 1, key: event.data.user}]}",
            "function: {concurrency: [{limit: 1, key: event.data.user}], throttle: {limit: 1, period: 1m},"
            " debounce: {period: 5s}, cancel: [{event: app/helper.cancelled}]}",
        )
        assert "throttle" in text
        (tmp_path / "helper.yaml").write_text(text)
        (tmp_path / "plain.yaml").write_text(NETWORK.format(base=llm.base_url, prompt="x").replace("name: helper", "name: plain"))
        caplog.set_level(logging.INFO, logger="netrun.serve")
        server = served()
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        warned = [r.getMessage() for r in caplog.records if "local engine does not apply" in r.getMessage()]
        # cancel and singleton are applied locally now: not named.
        assert warned == [
            "network helper declares throttle, debounce: the embedded local engine does not apply them (Inngest does)"
        ]


STEPPED = """\
name: stepped
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 4
function: {{concurrency: 1}}
state:
  done: {{type: boolean, default: false}}
  note: {{type: string}}
agents:
  worker: {{description: works, system: "Work on {{{{ input }}}}", tools: [note, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: worker}}]
tools:
  note:
    parameters: {{text: {{type: string}}}}
    state: {{note: "{{{{ args.text }}}}"}}
  finish:
    state: {{done: true}}
"""


def test_concurrency_limits_steps_at_once_not_runs(tmp_path: Path, served: Callable[..., Served]) -> None:
    """`concurrency: 1` means one step at a time, as on Inngest: two runs of two inferences
    each take turns step by step (the second run's first inference comes between the first
    run's two), no two inferences ever overlap, and a run whose first step waits is queued."""
    calls: list[tuple[float, float, str]] = []
    lock = threading.Lock()
    delay = 0.3

    def answer(body: dict[str, Any]) -> Reply:
        with lock:
            calls.append((time.monotonic(), time.monotonic() + delay, body["messages"][0]["content"].split()[-1]))
        first = len(body["messages"]) <= 2
        return Reply(text="step", tool_calls=[ToolCall("note", {"text": "n"}) if first else ToolCall("finish", {})], delay=delay)

    with FakeLLM([], fallback=answer) as llm:
        (tmp_path / "stepped.yaml").write_text(STEPPED.format(base=llm.base_url))
        server = served()
        a = httpx.post(f"{server.url}/networks/stepped/runs", json={"input": "A"}).json()["run_id"]
        llm.wait_for(1, timeout=30)
        b = httpx.post(f"{server.url}/networks/stepped/runs", json={"input": "B"}).json()["run_id"]
        assert httpx.get(f"{server.url}/runs/{b}").json()["status"] == "queued"  # its first step waits for A's
        for run_id in (a, b):
            wait_status(server.url, run_id, "completed")
    order = [who for _, _, who in calls]
    assert order == ["A", "B", "A", "B"], order  # a run limit would give A, A, B, B
    assert all(later[0] >= earlier[1] - 0.05 for earlier, later in itertools.pairwise(calls)), calls
