"""An approval approves one call (durability rule 7), under a real `netrun serve`.

The model (the fake OpenAI-compatible server, through litellm) asks for several gated
calls of one tool in one turn; the tool is an HTTP call to a local server whose request
log is the witness of what ran. Each call waits on its own approval id, shown in
``GET /runs/{id}``; ``POST /events`` answers one call by its id, resolves an id-less
approval only when exactly one call waits, and refuses with a reason what answers nothing.
Both engines: the embedded local one, and Inngest (the stand-in executor).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.runtime import agentkit_stream as ak
from netrun.runtime.approvals import approval_id
from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings

from .conftest import until
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
  ops: {{description: runs commands, system: "Run {{{{ input }}}}", tools: [shell]}}
router:
  rules: [{{if: "call_count >= 1", stop: true}}, {{if: "true", agent: ops}}]
tools:
  shell:
    description: Run a shell command on the production host.
    parameters: {{cmd: {{type: string}}}}
    approval: {{timeout: {timeout}}}
    http: {{method: POST, url: "{effects}/run", body: {{cmd: "{{{{ args.cmd }}}}"}}, retries: 0}}
"""

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
COMMANDS = ["echo harmless", "rm -rf /", "ls"]
THREE = Reply(text="running them", tool_calls=[ToolCall("shell", {"cmd": c}) for c in COMMANDS])
APPROVAL = "netrun/approval"


@pytest.fixture
def effects() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as server:
        server.script("/run", HttpReply(200, {"ok": True}))
        yield server


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM([]) as server:
        yield server


def ran(effects: FakeHttpServer) -> list[str]:
    """The commands that reached the far side: the only proof of what ran."""
    return [h.json()["cmd"] for h in effects.hits_for("/run")]


def approve(url: str, run_id: str | None, **data: Any) -> httpx.Response:
    return httpx.post(f"{url}/events", json={"name": APPROVAL, "data": data, **({"run_id": run_id} if run_id else {})})


def pending(url: str, run_id: str) -> list[dict[str, Any]]:
    return httpx.get(f"{url}/runs/{run_id}").json()["approvals"]  # type: ignore[no-any-return]


def waiting_on(url: str, run_id: str, commands: list[str]) -> list[dict[str, Any]]:
    """The run's pending approvals, once they are exactly the calls of ``commands``."""

    def check() -> list[dict[str, Any]] | None:
        run = httpx.get(f"{url}/runs/{run_id}").json()
        assert run["status"] not in ("completed", "failed"), run
        found = run["approvals"]
        return found if run["status"] == "waiting" and [a["args"]["cmd"] for a in found] == commands else None

    return until(f"run {run_id} to wait on {commands}", check)  # type: ignore[no-any-return]


def settled(url: str, run_id: str, step: str) -> list[dict[str, Any]]:
    """The run's events once the call ``step`` has its outcome and the run has stopped again
    (waiting or finished): nothing more happens until the next event, so what ran is final."""
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=30) as response:
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:") and kind:
                seen.append(json.loads(line.partition(":")[2]))
                output = ak.output_part(run_id, step)
                done = next(
                    (i for i, e in enumerate(seen) if e["event"] == "part.completed" and e["data"]["partId"] == output), None
                )
                if done is not None and any(
                    e["event"] in ("netrun.run.waiting", "run.completed", "run.failed") for e in seen[done:]
                ):
                    return seen
    raise AssertionError(f"the stream of run {run_id} ended before step {step} had its outcome: {seen}")


# -- the local engine ------------------------------------------------------------------------------


def start(url: str, text: str = "the cleanup") -> str:
    answer = httpx.post(f"{url}/networks/ops/runs", json={"input": text})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["run_id"])


def test_approving_one_call_runs_that_call_alone(
    tmp_path: Path, llm: FakeLLM, effects: FakeHttpServer, served: Callable[..., Served]
) -> None:
    """The issue's case, through nothing but the event: `echo harmless` and `rm -rf /` in one
    turn, only the first approved (naming its id and its step): only it runs."""
    llm.set_script(
        [Reply(text="two", tool_calls=[ToolCall("shell", {"cmd": "echo harmless"}), ToolCall("shell", {"cmd": "rm -rf /"})])]
    )
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=llm.base_url, effects=effects.url, timeout="1h"))
    server = served()
    run_id = start(server.url)
    until("the run to wait", lambda: httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "waiting")
    step = "turn.0.ops.tool.0.shell"
    answered = approve(server.url, run_id, approved=True, approval_id=approval_id(run_id, step), step=step, tool="shell")
    assert answered.status_code == 202, answered.text
    settled(server.url, run_id, step)
    assert ran(effects) == ["echo harmless"]
    assert httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "waiting"  # `rm -rf /` still waits for its own answer


def test_a_call_approved_while_the_server_is_down_runs_at_start_up(
    tmp_path: Path, llm: FakeLLM, effects: FakeHttpServer, served: Callable[..., Served]
) -> None:
    """One of two gated calls is answered in the journal and the server stops before the run
    resumes (a crash, or `netrun send --no-resume` style answers): at start-up the approved
    call runs, although the run still waits for the other one."""
    from netrun.engines.local import Journal
    from netrun.engines.runner import LocalEngine

    llm.set_script(
        [Reply(text="two", tool_calls=[ToolCall("shell", {"cmd": "echo harmless"}), ToolCall("shell", {"cmd": "rm -rf /"})])]
    )
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=llm.base_url, effects=effects.url, timeout="1h"))
    server = served()
    run_id = start(server.url)
    echo, _ = waiting_on(server.url, run_id, ["echo harmless", "rm -rf /"])
    server.stop()
    journal = Journal(tmp_path / "data" / "runs.db")
    try:  # the answer is recorded; no resume follows
        assert LocalEngine(journal, {}).answer(APPROVAL, {"run_id": run_id, "approval_id": echo["id"], "approved": True}) == [
            run_id
        ]
    finally:
        journal.close()
    assert ran(effects) == []
    server.start()
    until("the approved call to run after the restart", lambda: ran(effects) == ["echo harmless"])
    waiting_on(server.url, run_id, ["rm -rf /"])  # and the other still waits


ROGUE = """\
name: rogue
model: {{id: openai/fake, api_base: "{llm}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 2
agents:
  rogue: {{description: sends events, system: "Do {{{{ input }}}}", tools: [approve, approve_by_id]}}
router:
  rules: [{{if: "call_count >= 1", stop: true}}, {{if: "true", agent: rogue}}]
tools:
  approve:
    parameters: {{run: {{type: string}}}}
    event: {{name: netrun/approval, data: {{run_id: "{{{{ args.run }}}}", approved: true}}}}
  approve_by_id:
    parameters: {{run: {{type: string}}, id: {{type: string}}}}
    event: {{name: netrun/approval, data: {{run_id: "{{{{ args.run }}}}", approval_id: "{{{{ args.id }}}}", approved: true}}}}
"""


def test_a_run_cannot_answer_an_approval(
    tmp_path: Path, llm: FakeLLM, effects: FakeHttpServer, served: Callable[..., Served]
) -> None:
    """A model with an event tool sends `netrun/approval` for another run's gated call, with
    and without its id: neither answers it (only people approve); the call still waits."""
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=llm.base_url, effects=effects.url, timeout="1h"))
    (tmp_path / "rogue.yaml").write_text(ROGUE.format(llm=llm.base_url))
    llm.set_script([Reply(text="one", tool_calls=[ToolCall("shell", {"cmd": "rm -rf /"})])])
    server = served()
    victim = start(server.url)
    [gated] = waiting_on(server.url, victim, ["rm -rf /"])
    llm.set_script(
        [
            Reply(
                text="approving",
                tool_calls=[ToolCall("approve", {"run": victim}), ToolCall("approve_by_id", {"run": victim, "id": gated["id"]})],
            )
        ]
    )
    answer = httpx.post(f"{server.url}/networks/rogue/runs", json={"input": "it"})
    assert answer.status_code == 202, answer.text
    rogue = answer.json()["run_id"]
    done = until(
        "the rogue run to end",
        lambda: (r := httpx.get(f"{server.url}/runs/{rogue}").json())["status"] in ("completed", "failed") and r,
    )
    assert done["status"] == "completed", done
    by_id = done["result"]["results"][0]["tool_calls"][1]
    assert "approval_id is reserved" in by_id["error"] and "the event was not sent" in by_id["error"]
    # The id-less one was sent (it is an ordinary event to its sender) and answered nothing.
    assert done["result"]["results"][0]["tool_calls"][0]["error"] is None
    assert pending(server.url, victim) == [gated]
    assert httpx.get(f"{server.url}/runs/{victim}").json()["status"] == "waiting"
    assert ran(effects) == []
    # A person still can.
    assert approve(server.url, victim, approved=True, approval_id=gated["id"]).status_code == 202
    until("the approved call to run", lambda: ran(effects) == ["rm -rf /"])


def test_each_gated_call_waits_on_its_own_approval_id(
    tmp_path: Path, llm: FakeLLM, effects: FakeHttpServer, served: Callable[..., Served]
) -> None:
    llm.set_script([THREE])
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=llm.base_url, effects=effects.url, timeout="1h"))
    server = served()
    run_id = start(server.url)
    echo, rm, ls = waiting_on(server.url, run_id, COMMANDS)
    assert [a["step"] for a in (echo, rm, ls)] == [f"turn.0.ops.tool.{i}.shell" for i in range(3)]
    assert [a["id"] for a in (echo, rm, ls)] == [approval_id(run_id, a["step"]) for a in (echo, rm, ls)]
    assert len({echo["id"], rm["id"], ls["id"]}) == 3 and all(
        a["tool"] == "shell" and a["event"] == APPROVAL for a in (echo, rm, ls)
    )
    assert all(a["expires_at"].endswith("Z") for a in (echo, rm, ls))

    # Without an id, with three waiting: refused, listing them; nothing ran.
    ambiguous = approve(server.url, run_id, approved=True)
    assert ambiguous.status_code == 409, ambiguous.text
    assert [a["id"] for a in ambiguous.json()["pending"]] == [echo["id"], rm["id"], ls["id"]]
    assert echo["id"] in ambiguous.json()["detail"] and "approval_id" in ambiguous.json()["detail"]

    # Approving `echo harmless` by its id runs it alone; the others still wait.
    answered = approve(server.url, run_id, approved=True, approval_id=echo["id"])
    assert answered.status_code == 202, answered.text
    assert (
        answered.json()["resumed"] == [run_id]
        and answered.json()["approval_id"] == echo["id"]
        and answered.json()["matched"] is True
    )
    settled(server.url, run_id, echo["step"])
    assert waiting_on(server.url, run_id, ["rm -rf /", "ls"]) == [rm, ls]
    assert ran(effects) == ["echo harmless"]

    # Answering it again is reported, not a silent 202.
    again = approve(server.url, run_id, approved=True, approval_id=echo["id"])
    assert again.status_code == 409 and "answered already" in again.json()["detail"], again.text

    # Rejecting `rm -rf /` leaves `ls` waiting.
    rejected = approve(server.url, run_id, approved=False, approval_id=rm["id"], reason="never")
    assert rejected.status_code == 202, rejected.text
    events = settled(server.url, run_id, rm["step"])
    assert [e["data"]["resolution"] for e in events if e["event"] == "hitl.resolved"] == ["approved", "denied"]
    assert waiting_on(server.url, run_id, ["ls"]) == [ls]
    assert ran(effects) == ["echo harmless"]

    # One call waits: an id-less approval answers it.
    last = approve(server.url, run_id, approved=True)
    assert last.status_code == 202 and last.json()["approval_id"] == ls["id"], last.text
    run = until(
        "the run to complete", lambda: (r := httpx.get(f"{server.url}/runs/{run_id}").json())["status"] == "completed" and r
    )
    assert ran(effects) == ["echo harmless", "ls"]
    calls = run["result"]["results"][0]["tool_calls"]
    assert [c["error"] for c in calls] == [None, "rejected by a human: never; the tool did not run", None]
    assert run["approvals"] == [] and llm.count == 1

    # After the run: every approval is refused with the reason.
    ended = approve(server.url, run_id, approved=True, approval_id=rm["id"])
    assert ended.status_code == 409 and "has ended" in ended.json()["detail"], ended.text
    assert ran(effects) == ["echo harmless", "ls"]


def test_approvals_that_answer_nothing_are_refused_with_the_reason(
    tmp_path: Path, llm: FakeLLM, effects: FakeHttpServer, served: Callable[..., Served]
) -> None:
    llm.set_script([THREE, Reply(text="one", tool_calls=[ToolCall("shell", {"cmd": "date"})])])
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=llm.base_url, effects=effects.url, timeout="1h"))
    server = served()
    first = start(server.url)
    echo, rm, ls = waiting_on(server.url, first, COMMANDS)
    second = start(server.url, "another")
    (date,) = waiting_on(server.url, second, ["date"])

    # The first run's id sent for the second run: that run has no such approval.
    crossed = approve(server.url, second, approved=True, approval_id=echo["id"])
    assert crossed.status_code == 404 and f"run {second} has no approval {echo['id']}" in crossed.json()["detail"], crossed.text
    assert [a["id"] for a in crossed.json()["pending"]] == [date["id"]]
    # An id no run has, a run that does not exist, no run at all.
    unknown = approve(server.url, first, approved=True, approval_id="apr_" + "0" * 24)
    assert unknown.status_code == 404 and unknown.json()["run_id"] == first, unknown.text
    assert approve(server.url, "no-such-run", approved=True).status_code == 404
    nameless = approve(server.url, None, approved=True)
    assert nameless.status_code == 422 and "run_id" in nameless.json()["detail"], nameless.text
    # A decision that is not a boolean is no approval (it used to count as a rejection).
    vague = approve(server.url, second, approved="yes")
    assert vague.status_code == 422 and "approved" in vague.json()["detail"], vague.text
    two_runs = httpx.post(
        f"{server.url}/events", json={"name": APPROVAL, "run_id": first, "data": {"run_id": second, "approved": True}}
    )
    assert two_runs.status_code == 422, two_runs.text
    # The named tool must be the call's.
    other_tool = approve(server.url, second, approved=True, tool="deploy")
    assert other_tool.status_code == 409 and "not deploy" in other_tool.json()["detail"], other_tool.text
    # An answer to one run that matches none of its waits is reported too.
    stray = httpx.post(f"{server.url}/events", json={"name": "app/unrelated", "run_id": first, "data": {}})
    assert stray.status_code == 404 and "no wait of run" in stray.json()["detail"], stray.text
    # A broadcast event that starts and answers nothing says so in its 202.
    broadcast = httpx.post(f"{server.url}/events", json={"name": "app/unrelated", "data": {}})
    assert broadcast.status_code == 202 and broadcast.json()["matched"] is False, broadcast.text

    assert ran(effects) == []  # none of that ran anything
    assert waiting_on(server.url, first, COMMANDS) == [echo, rm, ls]
    # With one call waiting, the second run takes an id-less approval.
    assert approve(server.url, second, approved=True).status_code == 202
    until("date to run", lambda: ran(effects) == ["date"])


def test_an_approval_after_its_timeout_is_refused(
    tmp_path: Path, llm: FakeLLM, effects: FakeHttpServer, served: Callable[..., Served]
) -> None:
    llm.set_script([THREE])
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=llm.base_url, effects=effects.url, timeout="1s"))
    server = served()
    run_id = start(server.url)
    echo, _, _ = waiting_on(server.url, run_id, COMMANDS)
    run = until(
        "the approvals to time out", lambda: (r := httpx.get(f"{server.url}/runs/{run_id}").json())["status"] == "completed" and r
    )
    assert [c["error"] for c in run["result"]["results"][0]["tool_calls"]] == [
        "not approved: no decision within 1s; the tool did not run"
    ] * 3
    late = approve(server.url, run_id, approved=True, approval_id=echo["id"])
    assert late.status_code == 409, late.text
    assert ran(effects) == []


# -- Inngest ---------------------------------------------------------------------------------------


@pytest.fixture
def executor() -> Iterator[StandInExecutor]:
    with StandInExecutor() as ex:
        yield ex


@pytest.fixture
def served_inngest(tmp_path: Path, executor: StandInExecutor) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def serve() -> Served:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")}
        environ |= {**ENV, "INNGEST_API_BASE_URL": executor.url, "INNGEST_EVENT_API_BASE_URL": executor.url, "INNGEST_DEV": "1"}
        server = Served(
            lambda port: create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=port))
        ).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


def test_on_inngest_an_approval_approves_one_call(
    tmp_path: Path, llm: FakeLLM, effects: FakeHttpServer, executor: StandInExecutor, served_inngest: Callable[..., Served]
) -> None:
    llm.set_script([THREE])
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=llm.base_url, effects=effects.url, timeout="1h"))
    server = served_inngest()
    executor.sync(f"{server.url}/api/inngest")
    run = executor.run("netrun-ops", {"name": "netrun/ops.run", "data": {"input": "the cleanup"}})
    assert run.status == "waiting", run.error
    assert sorted(op["name"] for op in run.waits.values()) == [APPROVAL] * 3
    echo, rm, ls = waiting_on(server.url, run.id, COMMANDS)
    assert [a["id"] for a in (echo, rm, ls)] == [approval_id(run.id, f"turn.0.ops.tool.{i}.shell") for i in range(3)]

    # Sent straight to Inngest, an approval without an id matches no wait: the id is required.
    assert executor.send({"name": APPROVAL, "data": {"run_id": run.id, "approved": True}}) == []
    # Through the server: refused with the pending ids; nothing is sent.
    sent = len(executor.events)
    ambiguous = approve(server.url, run.id, approved=True)
    assert ambiguous.status_code == 409 and [a["id"] for a in ambiguous.json()["pending"]] == [echo["id"], rm["id"], ls["id"]], (
        ambiguous.text
    )
    unknown = approve(server.url, run.id, approved=True, approval_id="apr_" + "0" * 24)
    assert unknown.status_code == 404, unknown.text
    assert approve(server.url, "another-run", approved=True, approval_id=echo["id"]).status_code == 404
    assert len(executor.events) == sent

    answered = approve(server.url, run.id, approved=True, approval_id=echo["id"])
    assert answered.status_code == 202 and answered.json()["approval_id"] == echo["id"], answered.text
    again = approve(server.url, run.id, approved=True, approval_id=echo["id"])
    assert again.status_code == 409 and "answered already" in again.json()["detail"], again.text
    assert executor.deliver_received() == [run.id]
    assert run.status == "waiting" and ran(effects) == ["echo harmless"]
    assert waiting_on(server.url, run.id, ["rm -rf /", "ls"]) == [rm, ls]

    rejected = approve(server.url, run.id, approved=False, approval_id=rm["id"])
    assert rejected.status_code == 202, rejected.text
    executor.deliver_received()
    assert run.status == "waiting" and ran(effects) == ["echo harmless"]
    assert waiting_on(server.url, run.id, ["ls"]) == [ls]

    last = approve(server.url, run.id, approved=True)  # one waits: the id-less approval is its
    assert last.status_code == 202 and last.json()["approval_id"] == ls["id"], last.text
    executor.deliver_received()
    assert run.status == "completed", run.error
    assert ran(effects) == ["echo harmless", "ls"]
    assert [c["error"] is None for c in run.output["results"][0]["tool_calls"]] == [True, False, True]
    record = httpx.get(f"{server.url}/runs/{run.id}").json()
    assert record["status"] == "completed" and record["approvals"] == []
    assert approve(server.url, run.id, approved=True, approval_id=rm["id"]).status_code == 409


# -- netrun test ---------------------------------------------------------------------------------

GATED = """\
name: gated
model: openai/unused
state: {last: {type: string}}
agents:
  ops: {description: runs commands, system: "Run {{ input }}", tools: [shell]}
router:
  rules: [{if: "call_count >= 1", stop: true}, {if: "true", agent: ops}]
tools:
  shell: {approval: required, parameters: {cmd: {type: string}}, state: {last: "{{ args.cmd }}"}}
"""

GATED_CASES = """\
cases:
  one of two approved:
    input: clean up
    replies:
      ops:
        - tool_calls: [{name: shell, args: {cmd: echo harmless}}, {name: shell, args: {cmd: rm -rf /}}]
    events: EVENTS
    expect:
      tool_calls_exact:
        - {name: shell, args: {cmd: echo harmless}}
        - {name: shell, args: {cmd: rm -rf /}, error: rejected by a human}
      state: {last: echo harmless}
"""


def test_a_test_case_names_the_call_it_approves_by_its_step(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "gated.yaml").write_text(GATED)
    by_step = (
        "\n      - {name: netrun/approval, data: {step: turn.0.ops.tool.1.shell, approved: false}}"
        "\n      - {name: netrun/approval, data: {approved: true}}"
    )
    (tmp_path / "gated.test.yaml").write_text(GATED_CASES.replace("EVENTS", by_step))
    result = netrun_cli("test", str(tmp_path / "gated.test.yaml"))
    assert result.exit_code == 0, result.output
    # An id-less approval while both calls wait answers neither: the case says so.
    (tmp_path / "gated.test.yaml").write_text(
        GATED_CASES.replace("EVENTS", "\n      - {name: netrun/approval, data: {approved: true}}")
    )
    result = netrun_cli("test", str(tmp_path / "gated.test.yaml"))
    assert result.exit_code == 1
    assert "answered no approval" in result.output and "waits for 2 approvals" in result.output, result.output


def test_an_approval_by_a_custom_event_without_a_run_is_refused(
    tmp_path: Path, llm: FakeLLM, effects: FakeHttpServer, served: Callable[..., Served]
) -> None:
    """``approval: {event: app/ok}``: an ``app/ok`` event without a run id is an approval
    that names no run, refused like one of ``netrun/approval`` (not a 202 that answered nothing)."""
    llm.set_script([Reply(text="one", tool_calls=[ToolCall("shell", {"cmd": "date"})])])
    custom = OPS.replace("approval: {{timeout: {timeout}}}", "approval: {{timeout: {timeout}, event: app/ok}}")
    (tmp_path / "ops.yaml").write_text(custom.format(llm=llm.base_url, effects=effects.url, timeout="1h"))
    server = served()
    run_id = start(server.url)
    (date,) = waiting_on(server.url, run_id, ["date"])
    assert date["event"] == "app/ok"
    for data in ({"approved": True}, {"approved": True, "tool": "shell"}):
        nameless = httpx.post(f"{server.url}/events", json={"name": "app/ok", "data": data})
        assert nameless.status_code == 422 and "names the run" in nameless.json()["detail"], nameless.text
    assert waiting_on(server.url, run_id, ["date"]) == [date]
    answered = httpx.post(f"{server.url}/events", json={"name": "app/ok", "data": {"approved": True, "run_id": run_id}})
    assert answered.status_code == 202 and answered.json()["approval_id"] == date["id"], answered.text
    until("the run to complete", lambda: httpx.get(f"{server.url}/runs/{run_id}").json()["status"] == "completed")
    assert ran(effects) == ["date"]


BOSS = """\
name: boss
model: {{id: openai/fake, api_base: "{llm}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
agents:
  boss: {{description: delegates, system: "Do {{{{ input }}}}", tools: [ops]}}
router:
  rules: [{{if: "call_count >= 1", stop: true}}, {{if: "true", agent: boss}}]
tools:
  ops: {{description: runs ops, parameters: {{input: {{type: string}}}}, network: ops}}
"""


def test_a_child_run_left_waiting_by_its_parent_answers_no_approval(
    tmp_path: Path, llm: FakeLLM, effects: FakeHttpServer, served: Callable[..., Served]
) -> None:
    """On the local engine a network used as a tool must finish on its own: when its child
    run waits for an approval the parent is told the call failed and goes on. Approving the
    child's call afterwards must not run it (its result would reach nobody)."""
    llm.set_script(
        [
            Reply(text="delegating", tool_calls=[ToolCall("ops", {"input": "x"})]),
            Reply(text="on it", tool_calls=[ToolCall("shell", {"cmd": "rm -rf /"})]),
        ]
    )
    (tmp_path / "ops.yaml").write_text(OPS.format(llm=llm.base_url, effects=effects.url, timeout="1h"))
    (tmp_path / "boss.yaml").write_text(BOSS.format(llm=llm.base_url))
    server = served()
    answer = httpx.post(f"{server.url}/networks/boss/runs", json={"input": "x"})
    parent = answer.json()["run_id"]
    run = until(
        "the parent to complete", lambda: (r := httpx.get(f"{server.url}/runs/{parent}").json())["status"] == "completed" and r
    )
    (call,) = run["result"]["results"][0]["tool_calls"]
    assert "is waiting for an event" in call["error"]
    child = f"{parent}.turn.0.boss.tool.0.ops"
    orphan = httpx.get(f"{server.url}/runs/{child}").json()
    assert orphan["status"] == "failed" and orphan["approvals"] == [], orphan
    for target, data in (
        (child, {"approved": True}),
        (child, {"approved": True, "approval_id": approval_id(child, "turn.0.ops.tool.0.shell")}),
        (parent, {"approved": True}),
    ):
        refused = approve(server.url, target, **data)
        assert refused.status_code == 409 and "has ended" in refused.json()["detail"], refused.text
    assert ran(effects) == []
