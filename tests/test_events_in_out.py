"""Events in and out: a trigger takes the thread and user from its event (AgentKit's
``agent/chat.requested``), a run sends the events ``send.completed``/``send.failed`` declare
(once, across a restart that replays it; they start the networks they trigger), and the
model can be chosen from event data within an allow-list.

Real parts: ``netrun serve``'s application in a real uvicorn on 127.0.0.1 (the local engine
and its journal), the fake OpenAI-compatible model server, the SQLite thread store, and
``netrun validate`` for the located errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result

from netrun.engines.journal import Journal
from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings

from .conftest import error_lines, until
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served
from .test_threads import stored

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[], Served]]:
    started: list[Served] = []

    def serve() -> Served:
        def app(port: int) -> Any:
            settings = ServeSettings.from_env(
                {**os.environ, **ENV}, (tmp_path,), engine="local", data_dir=tmp_path / "data", port=port
            )
            return create_app(settings)

        server = Served(app).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


def send(server: Served, name: str, data: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/events", json={"name": name, "data": data}, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def ended(server: Served, run_id: str) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        run = httpx.get(f"{server.url}/runs/{run_id}", timeout=30).json()
        return run if run["status"] in ("completed", "failed") else None

    return until(f"run {run_id} to end", final)  # type: ignore[no-any-return]


def runs_of(folder: Path, network: str) -> list[Any]:
    journal = Journal(folder / "data" / "runs.db")
    try:
        return [r for r in (journal.run(i) for i in journal.runs()) if r is not None and r.network == network]
    finally:
        journal.close()


# -- the thread and user from the trigger event --------------------------------------------

CHAT = """\
name: chat
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
trigger:
  event: agent/chat.requested
  input: "{{{{ event.data.userMessage.content }}}}"
  thread: "{{{{ event.data.threadId }}}}"
  user: "{{{{ event.data.userId }}}}"
state: {{done: {{type: boolean, default: false}}}}
agents:
  helper: {{description: helps, system: "Be brief.", tools: [done]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: helper}}]
tools:
  done: {{state: {{done: true}}}}
"""


def chat_event(thread: str, text: str) -> dict[str, Any]:
    """AgentKit's ``agent/chat.requested`` data, as ``@inngest/use-agent`` sends it."""
    return {"threadId": thread, "userId": "ann", "userMessage": {"id": f"m-{text[:4]}", "content": text, "role": "user"}}


def test_a_chat_event_appends_to_its_thread_and_the_next_one_continues_it(tmp_path: Path, served: Callable[[], Served]) -> None:
    with FakeLLM(
        [
            Reply(text="Hi Ann.", tool_calls=[ToolCall("done", {})]),
            Reply(text="Your name is Ann.", tool_calls=[ToolCall("done", {})]),
        ]
    ) as llm:
        (tmp_path / "chat.yaml").write_text(CHAT.format(base=llm.base_url))
        server = served()
        first = send(server, "agent/chat.requested", chat_event("t-chat-1", "My name is Ann."))
        assert ended(server, first["started"][0])["status"] == "completed"
        second = send(server, "agent/chat.requested", chat_event("t-chat-1", "What is my name?"))
        run = ended(server, second["started"][0])
        threads = httpx.get(f"{server.url}/threads", params={"user": "ann"}, timeout=30).json()["threads"]
        prompts = [r["messages"] for r in llm.requests]
    assert run["status"] == "completed" and run["result"]["thread_id"] == "t-chat-1"
    # The second run was sent the first one's turn from the thread the event named.
    assert [(m["role"], m.get("content")) for m in prompts[1][1:]] == [
        ("user", "My name is Ann."),
        ("assistant", "Hi Ann."),
        ("tool", '{"updated": {"done": true}}'),
        ("user", "What is my name?"),
    ]
    assert [(m["role"], m["content"]) for m in stored(tmp_path, "t-chat-1")][::3] == [
        ("user", "My name is Ann."),
        ("user", "What is my name?"),
    ]
    assert [t["thread_id"] for t in threads] == ["t-chat-1"]  # filed under the event's user


def test_a_chat_event_without_a_thread_id_fails_the_run_with_the_reason(tmp_path: Path, served: Callable[[], Served]) -> None:
    with FakeLLM([]) as llm:
        (tmp_path / "chat.yaml").write_text(CHAT.format(base=llm.base_url))
        server = served()
        started = send(server, "agent/chat.requested", {"userId": "ann", "userMessage": {"content": "hi"}})
        run = ended(server, started["started"][0])
        assert llm.count == 0
    assert run["status"] == "failed"
    assert run["error"] == "trigger.thread: template '{{ event.data.threadId }}': 'dict object' has no attribute 'threadId'"


# -- events sent when a run ends ------------------------------------------------------------

TRIAGE = """\
name: triage
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
function: {{retries: 0}}
trigger: {{event: app/ticket.created, input: "{{{{ event.data.title }}}}"}}
state: {{category: {{type: string}}}}
agents:
  triage: {{description: sorts, system: "Classify.", tools: [set_category]}}
router:
  rules: [{{if: state.category, stop: true}}, {{if: "true", agent: triage}}]
tools:
  set_category: {{parameters: {{category: {{type: string}}}}, state: {{category: "{{{{ args.category }}}}"}}}}
send:
  completed:
    - event: app/ticket.triaged
      data:
        ticket: "{{{{ event.data.ticket }}}}"
        answer: "{{{{ outcome.output }}}}"
        category: "{{{{ state.category }}}}"
        run: "{{{{ run.id }}}}"
        status: "{{{{ outcome.status }}}}"
  failed:
    - event: app/ticket.failed
      data: {{ticket: "{{{{ event.data.ticket }}}}", error: "{{{{ outcome.error }}}}"}}
"""

NOTIFIER = """\
name: notifier
model: openai/never-called
trigger:
  - {event: app/ticket.triaged, input: "{{ event.data.ticket }}: {{ event.data.category }} ({{ event.data.answer }})"}
  - {event: app/ticket.failed, input: "{{ event.data.ticket }} failed: {{ event.data.error }}"}
agents:
  noop: {description: never runs, system: "-"}
router:
  rules: [{if: "true", stop: true}]
"""


def write_pair(folder: Path, llm: FakeLLM) -> None:
    (folder / "triage.yaml").write_text(TRIAGE.format(base=llm.base_url))
    (folder / "notifier.yaml").write_text(NOTIFIER)


def test_a_completed_run_sends_its_event_once_and_it_starts_the_network_it_triggers(
    tmp_path: Path, served: Callable[[], Served]
) -> None:
    with FakeLLM([Reply(text="Billing it is.", tool_calls=[ToolCall("set_category", {"category": "billing"})])]) as llm:
        write_pair(tmp_path, llm)
        server = served()
        started = send(server, "app/ticket.created", {"ticket": "T-7", "title": "double charge"})
        run_id = started["started"][0]
        assert ended(server, run_id)["status"] == "completed"
        notified = until("the notifier's run", lambda: runs_of(tmp_path, "notifier"))
        assert ended(server, notified[0].id)["status"] == "completed"
        # A crash after the event went out and before the run was marked completed: the
        # restarted server resumes the run, which replays its recorded send step.
        journal = Journal(tmp_path / "data" / "runs.db")
        journal.set_status(run_id, "running")
        journal.close()
        server.restart()
        assert ended(server, run_id)["status"] == "completed"
        assert llm.count == 1  # the replay asked the model nothing
    [notice] = runs_of(tmp_path, "notifier")
    assert notice.input == "T-7: billing (Billing it is.)"
    assert notice.event["data"] == {
        "ticket": "T-7",
        "answer": "Billing it is.",
        "category": "billing",
        "run": run_id,
        "status": "completed",
    }
    assert notice.options.get("depth") == 1  # one deeper than the run that sent it


def test_a_failed_run_sends_its_failure_event_once(tmp_path: Path, served: Callable[[], Served]) -> None:
    with FakeLLM([Reply(status=400, error="the model refuses")]) as llm:
        write_pair(tmp_path, llm)
        server = served()
        started = send(server, "app/ticket.created", {"ticket": "T-8", "title": "?"})
        run = ended(server, started["started"][0])
        notified = until("the notifier's run", lambda: runs_of(tmp_path, "notifier"))
        assert ended(server, notified[0].id)["status"] == "completed"
    assert run["status"] == "failed"
    [notice] = runs_of(tmp_path, "notifier")
    assert notice.event["name"] == "app/ticket.failed"
    assert notice.event["data"]["ticket"] == "T-8"
    assert notice.event["data"]["error"] == run["error"] and "the model refuses" in run["error"]
    assert runs_of(tmp_path, "triage")[0].status == "failed"


def test_events_past_the_depth_limit_are_not_sent(tmp_path: Path, served: Callable[[], Served]) -> None:
    with FakeLLM([Reply(text="Billing.", tool_calls=[ToolCall("set_category", {"category": "billing"})])]) as llm:
        (tmp_path / "triage.yaml").write_text(TRIAGE.format(base=llm.base_url) + "limits: {depth: 0}\n")
        (tmp_path / "notifier.yaml").write_text(NOTIFIER)
        server = served()
        started = send(server, "app/ticket.created", {"ticket": "T-9", "title": "x"})
        assert ended(server, started["started"][0])["status"] == "completed"
        # The event would be delivered before the run is marked completed: nothing came.
        assert runs_of(tmp_path, "notifier") == []


# -- the model chosen from event data ------------------------------------------------------

CHOOSER = """\
name: chooser
max_iter: 1
trigger: {{event: app/ask, input: "{{{{ event.data.question }}}}"}}
model:
  from: "{{{{ event.data.model }}}}"
  allowed:
    - {{id: openai/fake-mini, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
    - {{id: openai/fake-large, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
  default: openai/fake-mini
agents:
  answer: {{description: answers, system: "Answer."}}
router:
  rules: [{{if: "call_count > 0", stop: true}}, {{if: "true", agent: answer}}]
"""


def test_the_model_comes_from_the_event_within_the_allow_list(tmp_path: Path, served: Callable[[], Served]) -> None:
    with FakeLLM([Reply(text="big"), Reply(text="small")]) as llm:
        (tmp_path / "chooser.yaml").write_text(CHOOSER.format(base=llm.base_url))
        server = served()
        large = send(server, "app/ask", {"question": "q1", "model": "openai/fake-large"})
        assert ended(server, large["started"][0])["status"] == "completed"
        default = send(server, "app/ask", {"question": "q2"})  # no model named: the default
        assert ended(server, default["started"][0])["status"] == "completed"
        refused = send(server, "app/ask", {"question": "q3", "model": "openai/gpt-4o"})
        run = ended(server, refused["started"][0])
        models = llm.models
    assert models == ["fake-large", "fake-mini"]  # the refused run asked no model
    assert run["status"] == "failed"
    assert run["error"] == (
        "model: the event asks for the model 'openai/gpt-4o', which is not allowed; allowed: openai/fake-mini, openai/fake-large"
    )


# -- netrun validate ------------------------------------------------------------------------

INVALID = """\
name: bad
model:
  from: "{{ evnt.data.model }}"
  allowed: [openai/gpt-4o-mini, openia/gpt-4o]
  default: openai/gpt-4o
trigger:
  event: agent/chat.requested
  thread: "{{ event.data.threadId }}"
  user: "{{ events.data.userId }}"
agents:
  a: {description: d, system: go}
send:
  completed:
    - event: app/ticket.triaged
      data: {answer: "{{ outcome.output }}", cat: "{{ stat.category }}", key: "${TOKEN}"}
    - {event: app/ticket.failed, data: {approval_id: "x"}}
  failed:
    - {event: "bad name"}
"""


def test_validate_reports_each_bad_field_where_it_is(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path]
) -> None:
    path = write("bad.yaml", INVALID)
    result = netrun_cli("validate", "-q", str(path))
    assert result.exit_code == 1
    errors = error_lines(result)
    assert errors == [
        f"{path}:3:13: error: model.from: undefined variable 'evnt'; did you mean 'event'? available here: event",
        f"{path}:4:33: error: model.allowed[1]: unknown model provider 'openia' in 'openia/gpt-4o'; did you mean 'openai'? "
        "litellm knows 166 providers, e.g. openai, anthropic, gemini, ollama, azure, bedrock",
        f"{path}:5:12: error: model.default: the default model 'openai/gpt-4o' is not one of the allowed models: "
        "openai/gpt-4o-mini, openia/gpt-4o",
        f"{path}:9:13: error: trigger.user: undefined variable 'events'; did you mean 'event'? available here: event",
        f"{path}:15:55: error: send.completed[0].data.cat: undefined variable 'stat'; did you mean 'state'? "
        "available here: event, input, outcome, run, state",
        f"{path}:15:79: error: send.completed[0].data.key: an event's data cannot use ${{ENV}} references: "
        "events are stored and shown, and a secret must not be in them",
        f"{path}:16:41: error: send.completed[1].data.approval_id: approval_id is reserved for the people who answer "
        "approvals: a run's event cannot approve tool calls",
        f"{path}:18:15: error: send.failed[0].event: 'bad name' is not an event name: no spaces, e.g. app/ticket.created",
    ]


def test_validate_refuses_a_model_choice_without_allowed_models(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path]
) -> None:
    path = write("bad.yaml", "name: bad\nmodel: {from: '{{ event.data.m }}', allowed: []}\nagents: {a: {system: go}}\n")
    result = netrun_cli("validate", "-q", str(path))
    errors = error_lines(result)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:2:46: error: model.allowed: "), errors


# -- the same on the Inngest engine ---------------------------------------------------------


@pytest.fixture
def on_inngest(tmp_path: Path) -> Iterator[tuple[Any, Callable[[], Served]]]:
    """The stand-in Inngest executor, and a function that serves the folder's networks to it."""
    from .fakes.inngest_executor import StandInExecutor

    started: list[Served] = []
    with StandInExecutor() as executor:
        environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")},
            **ENV,
            "INNGEST_DEV": "1",
            "INNGEST_API_BASE_URL": executor.url,
            "INNGEST_EVENT_API_BASE_URL": executor.url,
        }

        def serve() -> Served:
            def app(port: int) -> Any:
                return create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=port))

            server = Served(app).start()
            started.append(server)
            executor.sync(f"{server.url}/api/inngest")
            return server

        try:
            yield executor, serve
        finally:
            for server in started:
                server.stop()


def test_on_inngest_the_event_names_the_thread_and_the_run_sends_its_event(
    tmp_path: Path, on_inngest: tuple[Any, Callable[[], Served]]
) -> None:
    executor, serve = on_inngest
    with FakeLLM(
        [
            Reply(text="Hi Ann.", tool_calls=[ToolCall("done", {})]),
            Reply(text="Your name is Ann.", tool_calls=[ToolCall("done", {})]),
            Reply(text="Billing.", tool_calls=[ToolCall("set_category", {"category": "billing"})]),
        ]
    ) as llm:
        (tmp_path / "chat.yaml").write_text(CHAT.format(base=llm.base_url))
        write_pair(tmp_path, llm)
        serve()
        for text in ("My name is Ann.", "What is my name?"):
            (run_id,) = executor.send({"name": "agent/chat.requested", "data": chat_event("t-inn", text)})
            assert executor.runs[run_id].status == "completed", executor.runs[run_id].error
        (triage_id,) = executor.send({"name": "app/ticket.created", "data": {"ticket": "T-1", "title": "charge"}})
        executor.deliver_received()
        prompts = [r["messages"] for r in llm.requests]
    assert [m["role"] for m in prompts[1][1:]] == ["user", "assistant", "tool", "user"]
    assert [m["content"] for m in stored(tmp_path, "t-inn")][::3] == ["My name is Ann.", "What is my name?"]
    (sent,) = [e for e in executor.events if e["name"] == "app/ticket.triaged"]
    assert sent["id"] == f"{triage_id}:send.completed.0"  # one step, sent once however often replayed
    assert sent["data"]["category"] == "billing" and sent["data"]["_netrun"] == {"depth": 1}
    notified = [r for r in executor.runs.values() if r.fn_id.endswith("notifier")]
    assert [r.status for r in notified] == ["completed"]


NOTED = """\
name: notifier
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 1
trigger: {{event: app/ticket.triaged, input: "{{{{ event.data.ticket }}}} is {{{{ event.data.category }}}}"}}
agents:
  note: {{description: notes, system: "Note it."}}
router:
  rules: [{{if: "call_count > 0", stop: true}}, {{if: "true", agent: note}}]
"""


def test_kill_9_of_the_server_after_the_event_went_out_sends_it_no_second_time(tmp_path: Path) -> None:
    """A real `netrun serve` is killed while the run the event started is in its inference;
    started again, that run resumes and the run that sent the event sends nothing again."""
    import signal

    from .fakes.server_thread import free_port
    from .test_serve_local import _serve_process

    env = {**os.environ, **ENV}
    triaged = Reply(text="Billing.", tool_calls=[ToolCall("set_category", {"category": "billing"})])
    with FakeLLM([triaged, Reply(text="slow note", delay=3.0)]) as llm:
        (tmp_path / "triage.yaml").write_text(TRIAGE.format(base=llm.base_url))
        (tmp_path / "notifier.yaml").write_text(NOTED.format(base=llm.base_url))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _serve_process(tmp_path, port, env)
        started = httpx.post(f"{url}/events", json={"name": "app/ticket.created", "data": {"ticket": "T-3", "title": "x"}})
        triage_id = started.json()["started"][0]
        llm.wait_for(2, timeout=30)  # the notifier's inference is in flight (3 s)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        llm.set_script([Reply(text="noted")])
        proc = _serve_process(tmp_path, port, env)
        try:
            notices = until("the notifier's run", lambda: runs_of(tmp_path, "notifier"))
            notice = until(
                "the notifier to complete",
                lambda: (r := httpx.get(f"{url}/runs/{notices[0].id}").json())["status"] == "completed" and r,
            )
            triage = httpx.get(f"{url}/runs/{triage_id}").json()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate(timeout=30)
        systems = [r["messages"][0]["content"] for r in llm.requests]
    assert triage["status"] == "completed"
    assert notice["result"]["output"] == "noted" and notice["input"] == "T-3 is billing"
    assert len(runs_of(tmp_path, "notifier")) == 1  # the event went out once
    assert systems == ["Classify.", "Note it.", "Note it."]  # the triage was not run again


def test_validate_refuses_a_user_without_a_thread_and_a_model_allowed_twice(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path]
) -> None:
    path = write(
        "bad.yaml",
        "name: bad\n"
        "trigger: {event: agent/chat.requested, user: '{{ event.data.userId }}'}\n"
        "agents:\n"
        "  a:\n"
        "    system: go\n"
        "    model: {from: '{{ event.data.m }}', allowed: [openai/a, openai/a]}\n"
        "router: {rules: [{if: 'true', agent: a}], otherwise: stop}\n",
    )
    result = netrun_cli("validate", "-q", str(path))
    errors = error_lines(result)
    assert errors == [
        f"{path}:2:40: error: trigger.user: a user is the user of a thread: set the trigger's thread too "
        '(e.g. thread: "{{ event.data.threadId }}")',
        f"{path}:6:61: error: agents.a.model.allowed[1]: model 'openai/a' is allowed twice (also at allowed[0])",
    ]


def test_a_completed_event_that_cannot_render_fails_the_run_and_its_failure_event_goes(
    tmp_path: Path, served: Callable[[], Served]
) -> None:
    with FakeLLM([Reply(text="Billing.", tool_calls=[ToolCall("set_category", {"category": "billing"})])]) as llm:
        (tmp_path / "triage.yaml").write_text(
            TRIAGE.format(base=llm.base_url).replace(
                'ticket: "{{ event.data.ticket }}"\n', 'ticket: "{{ event.data.nope }}"\n', 1
            )
        )
        (tmp_path / "notifier.yaml").write_text(NOTIFIER)
        server = served()
        started = send(server, "app/ticket.created", {"ticket": "T-4", "title": "x"})
        run = ended(server, started["started"][0])
        notified = until("the notifier's run", lambda: runs_of(tmp_path, "notifier"))
    assert run["status"] == "failed"
    assert run["error"] == "send.completed[0].data: template '{{ event.data.nope }}': 'dict object' has no attribute 'nope'"
    assert [n.event["name"] for n in notified] == ["app/ticket.failed"]
    assert notified[0].event["data"] == {"ticket": "T-4", "error": run["error"]}
