"""The public Python API (netrun/api.py): load, run on the local engine, mount the app.

Runs use a real SQLite journal in a temporary directory; models are the scripted replies
files of the examples, or clients injected here (an object with ``complete``, a function);
the mounted application is served by a real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import netrun
from netrun import Completion, InvalidInputError, InvalidNetworkError, ModelError, Request, Runs, ToolRequest

from .conftest import REPO, until
from .fakes.served import Served

GREETER = """\
name: greeter
model: openai/gpt-4o-mini
state:
  greeting: {type: string}
  answer: {type: string}
  count: {type: integer, default: 0}
agents:
  greeter:
    description: greets
    system: "Greet {{ input }}."
    tools: [ask_human, save]
router:
  rules:
    - {if: state.greeting, stop: true}
    - {if: "true", agent: greeter}
tools:
  ask_human:
    wait_for_event: {event: app/human.answered, timeout: 1h}
    parameters: {question: {type: string}}
  save:
    parameters: {text: {type: string}}
    state: {greeting: "{{ args.text }}"}
"""


def call(name: str, turn: int, **args: Any) -> ToolRequest:
    return ToolRequest(f"call_{name}_{turn}", name, json.dumps(args))


class Greeting:
    """A model client (netrun's protocol): saves a greeting, or first asks a human with ``ask``."""

    def __init__(self, ask: bool = False) -> None:
        self.ask = ask
        self.requests: list[Request] = []

    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        self.requests.append(request)
        if self.ask and request.turn == 0:
            return Completion(
                text="Asking.", tool_calls=[call("ask_human", 0, question="which name?")], prompt_tokens=5, completion_tokens=3
            )
        # The human's answer reaches the next turn as the tool's result: `{"name": ...}`.
        results = [str(m.get("content")) for m in request.messages if m["role"] in ("tool", "assistant")]
        heard = re.search(r'"name": "(\w+)"', " ".join(results))
        return Completion(
            text="Hello!",
            tool_calls=[call("save", request.turn, text=f"hello {heard[1] if heard else 'there'}")],
            prompt_tokens=7,
            completion_tokens=2,
        )


@pytest.fixture
def greeter(tmp_path: Path) -> Path:
    path = tmp_path / "greeter.yaml"
    path.write_text(GREETER, encoding="utf-8")
    return path


# -- load ------------------------------------------------------------------------------------


def test_load_validates_as_netrun_validate_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    network = netrun.load_network("networks/quickstart.yaml")
    assert network.name == "quickstart" and network.path == REPO / "networks/quickstart.yaml"
    assert set(network.spec.agents) == {"dba", "security"} and network.warnings == []


@pytest.mark.parametrize("name", ["wrong_type_collections", "unreachable_and_unused"])
def test_a_file_with_errors_raises_one_error_carrying_every_located_message(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(InvalidNetworkError) as raised:
        netrun.load_network(f"tests/invalid/{name}.yaml")
    expected = (REPO / f"tests/invalid/{name}.expected").read_text(encoding="utf-8").splitlines()
    assert raised.value.messages == expected  # warnings too, as `netrun validate -q` prints them
    assert str(raised.value).splitlines()[:-1] == expected  # and the count line after them
    assert isinstance(raised.value, netrun.NetrunError) and raised.value.phase == "check"
    assert raised.value.where == expected[0].split(": ")[0] + ": " + raised.value.diagnostics[0].where


def test_strict_makes_warnings_errors_and_a_missing_file_is_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(InvalidNetworkError, match="never run"):
        netrun.load_network("tests/invalid/unreachable_and_unused.yaml", strict=True)
    with pytest.raises(FileNotFoundError, match="no such network file"):
        netrun.load_network(tmp_path / "nope.yaml")


# -- runs on the local engine --------------------------------------------------------------------


def test_run_sync_with_a_replies_file_offline(tmp_path: Path) -> None:
    result = netrun.run_sync(
        REPO / "networks/quickstart.yaml",
        "How do I give analysts read-only access?",
        replies=REPO / "networks/quickstart.replies.yaml",
        db=tmp_path / "runs.db",
    )
    assert result.status == "completed", result.error
    assert result.route == ["dba", "security"] and result.stop_reason == "router"
    assert result.state is not None and result.state["dba_answer"].startswith("A NOLOGIN role analysts_ro")
    assert (
        result.usage is not None
        and result.usage["tokens"] == result.usage["prompt_tokens"] + result.usage["completion_tokens"] > 0
    )
    assert result.result is not None and result.result["output"] == result.output


def test_an_injected_client_answers_every_call_and_the_journal_keeps_the_run(tmp_path: Path, greeter: Path) -> None:
    client = Greeting()

    async def scenario() -> tuple[netrun.RunResult, netrun.RunResult | None]:
        async with Runs(tmp_path / "runs.db", model=client) as runs:
            result = await runs.start(netrun.load_network(greeter), "Ada", state={"count": 2})
            return result, runs.get(result.run_id)

    result, stored = asyncio.run(scenario())
    assert result.status == "completed", result.error
    assert result.output == "Hello!" and result.route == ["greeter"]
    assert result.state == {"greeting": "hello there", "answer": None, "count": 2}
    assert result.usage is not None and result.usage["prompt_tokens"] == 7 and result.usage["completion_tokens"] == 2
    assert [r.caller for r in client.requests] == ["greeter"] and "Greet Ada." in client.requests[0].messages[0]["content"]
    assert stored == result  # the journal holds the same outcome (netrun run --resume finds it there)


def test_a_model_function_may_answer_with_text(tmp_path: Path, greeter: Path) -> None:
    seen: list[str] = []

    def model(request: Request) -> str:
        seen.append(request.caller)
        return "Just text, no tool call."

    result = netrun.run_sync(greeter, "Bo", model=model, db=tmp_path / "runs.db")
    assert result.status == "completed" and result.output == "Just text, no tool call."
    assert seen == ["greeter"] * len(seen) and result.route == ["greeter"] * len(seen)


def test_an_async_model_function_answers_with_a_completion(tmp_path: Path, greeter: Path) -> None:
    """The README's "a function of the request (sync or async ...)": an ``async def`` too."""

    async def model(request: Request) -> Completion:
        await asyncio.sleep(0)
        return Completion(text="Hi!", tool_calls=[call("save", request.turn, text="hello async")])

    result = netrun.run_sync(greeter, "Al", model=model, db=tmp_path / "runs.db")
    assert result.status == "completed", result.error
    assert result.state is not None and result.state["greeting"] == "hello async"


def test_a_wait_is_answered_with_send(tmp_path: Path, greeter: Path) -> None:
    client = Greeting(ask=True)

    async def scenario() -> tuple[netrun.RunResult, list[netrun.RunResult]]:
        async with Runs(tmp_path / "runs.db", model=client) as runs:
            waiting = await runs.start(greeter, "Cy")
            return waiting, await runs.send("app/human.answered", {"name": "Cyril"}, run_id=waiting.run_id)

    waiting, resumed = asyncio.run(scenario())
    assert waiting.status == "waiting" and waiting.output is None
    assert [r.run_id for r in resumed] == [waiting.run_id]
    assert resumed[0].status == "completed", resumed[0].error
    assert resumed[0].state is not None and resumed[0].state["greeting"] == "hello Cyril"


def test_a_failing_model_fails_the_run_with_its_reason(tmp_path: Path, greeter: Path) -> None:
    def model(request: Request) -> Completion:
        raise ModelError("the model is down for good", retriable=False)

    result = netrun.run_sync(greeter, "Di", model=model, db=tmp_path / "runs.db")
    assert result.status == "failed" and "the model is down for good" in (result.error or "")


def test_an_initial_state_the_network_refuses_records_no_run(tmp_path: Path, greeter: Path) -> None:
    async def scenario() -> list[str]:
        async with Runs(tmp_path / "runs.db", model=Greeting()) as runs:
            with pytest.raises(InvalidInputError) as raised:
                await runs.start(greeter, "Ed", state={"count": "many", "colour": "red"})
            assert isinstance(raised.value, ValueError)
            assert runs.journal.runs() == []
            return raised.value.problems

    assert asyncio.run(scenario()) == [
        "state.count: expected integer, got string",
        "state.colour: not a declared state field; defined state fields: answer, count, greeting",
    ]


def test_a_failed_run_is_retried_from_the_step_that_failed(tmp_path: Path, greeter: Path) -> None:
    """``Runs.retry`` (as ``netrun run --retry``): the failed inference is made again; the
    run completes, under the same id, without a second run in the journal."""
    calls: list[int] = []

    def model(request: Request) -> Completion:
        calls.append(request.turn)
        if len(calls) == 1:
            raise ModelError("the model is busy", retriable=True)
        return Completion(text="Hello!", tool_calls=[call("save", request.turn, text="hello again")])

    async def scenario() -> tuple[netrun.RunResult, netrun.RunResult, int]:
        async with Runs(tmp_path / "runs.db", model=model, retries=0) as runs:
            failed = await runs.start(greeter, "Gus")
            return failed, await runs.retry(failed.run_id), len(runs.journal.runs())

    failed, retried, count = asyncio.run(scenario())
    assert failed.status == "failed" and "the model is busy" in (failed.error or "")
    assert retried.run_id == failed.run_id and retried.status == "completed", retried.error
    assert retried.state is not None and retried.state["greeting"] == "hello again"
    assert calls == [0, 0] and count == 1


def test_a_cancelled_run_ends_and_no_event_resumes_it(tmp_path: Path, greeter: Path) -> None:
    """``Runs.cancel``: a waiting run ends as cancelled; the event it waited for then wakes
    nothing, a second cancel is refused (the run has ended), and ``resume`` leaves it ended."""
    from netrun.errors import NetrunError

    client = Greeting(ask=True)

    async def scenario() -> tuple[netrun.RunResult, netrun.RunResult, list[netrun.RunResult], str, netrun.RunResult | None]:
        async with Runs(tmp_path / "runs.db", model=client) as runs:
            waiting = await runs.start(greeter, "Hal")
            cancelled = runs.cancel(waiting.run_id, "not needed")
            woken = await runs.send("app/human.answered", {"name": "Hally"}, run_id=waiting.run_id)
            with pytest.raises(NetrunError) as again:
                runs.cancel(waiting.run_id)
            with contextlib.suppress(NetrunError):
                await runs.resume(waiting.run_id)
            return cancelled, waiting, woken, str(again.value), runs.get(waiting.run_id)

    cancelled, waiting, woken, again, stored = asyncio.run(scenario())
    assert waiting.status == "waiting"
    assert cancelled.status == "cancelled" and "not needed" in (cancelled.error or "")
    assert woken == [] and "only a run that has not ended can be cancelled" in again
    assert stored is not None and stored.status == "cancelled"
    assert [r.turn for r in client.requests] == [0]  # nothing ran after the cancel


def test_a_resume_times_out_only_its_own_run_s_waits(tmp_path: Path) -> None:
    """Two runs wait with a 1 s timeout; once it has passed, resuming one times out its wait
    and it goes on; the other's wait stays in the journal until that run is resumed."""
    path = tmp_path / "greeter.yaml"
    path.write_text(GREETER.replace("timeout: 1h", "timeout: 1s"), encoding="utf-8")

    async def scenario() -> tuple[list[str], netrun.RunResult, int, netrun.RunResult | None, netrun.RunResult]:
        async with Runs(tmp_path / "runs.db", model=Greeting(ask=True)) as runs:
            first, second = [await runs.start(path, name) for name in ("Ida", "Jo")]
            statuses = [first.status, second.status]
            begun = time.time()  # both waits began before this
            await asyncio.to_thread(until, "the waits' 1 s to pass", lambda: time.time() - begun > 1.2)
            resumed = await runs.resume(first.run_id)
            left = len(runs.journal.waits(run_id=second.run_id))
            untouched = runs.get(second.run_id)
            return statuses, resumed, left, untouched, await runs.resume(second.run_id)

    statuses, resumed, left, untouched, later = asyncio.run(scenario())
    assert statuses == ["waiting", "waiting"]
    assert resumed.status == "completed", resumed.error
    assert left == 1 and untouched is not None and untouched.status == "waiting"
    assert later.status == "completed", later.error


def test_model_and_replies_exclude_each_other(tmp_path: Path, greeter: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        netrun.run_sync(greeter, "x", model=Greeting(), replies={"greeter": []}, db=tmp_path / "runs.db")
    with pytest.raises(TypeError, match="complete"):
        Runs(tmp_path / "runs.db", model=42)  # type: ignore[arg-type]


# -- the ASGI app, mounted in an existing FastAPI app -----------------------------------------------


def test_the_app_mounts_in_an_existing_fastapi_app(tmp_path: Path, greeter: Path) -> None:
    lifespans: list[str] = []

    @contextlib.asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[None]:
        lifespans.append("up")
        yield
        lifespans.append("down")

    def make(port: int) -> FastAPI:
        parent = FastAPI(lifespan=own)

        @parent.get("/hello")
        async def hello() -> dict[str, str]:
            return {"hello": "world"}

        netrun.mount(
            parent, netrun.asgi_app([tmp_path], data_dir=tmp_path / "data", model=Greeting(), api_token="s3cret"), "/agents"
        )
        return parent

    with Served(make) as served, httpx.Client(base_url=served.url, timeout=10) as http:
        assert lifespans == ["up"]
        assert http.get("/hello").json() == {"hello": "world"}
        assert http.get("/agents/healthz").json()["status"] == "ok"
        assert http.post("/agents/networks/greeter/runs", json={"input": "Flo"}).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        started = http.post("/agents/networks/greeter/runs", json={"input": "Flo"}, headers=auth)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        done = until(
            "the run to complete",
            lambda: (r := http.get(f"/agents/runs/{run_id}", headers=auth).json())["status"] == "completed" and r,
        )
        assert done["result"]["state"]["greeting"] == "hello there"
    assert lifespans == ["up", "down"]
    assert (tmp_path / "data" / "runs.db").exists()


# -- import cost ----------------------------------------------------------------------------------


def test_import_netrun_and_load_import_nothing_heavy() -> None:
    code = (
        "import sys, netrun\n"
        "heavy = ('litellm', 'fastapi', 'inngest', 'mcp', 'jsonschema', 'pydantic', 'asyncio')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "netrun.load_network('networks/quickstart.yaml')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy[:5]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout.splitlines()
    assert out == ["[]", "[]"]


def test_every_public_name_resolves() -> None:
    assert sorted(netrun.__all__) == sorted(set(netrun.__all__))
    for name in netrun.__all__:
        assert getattr(netrun, name) is not None, name
    assert set(netrun.__all__) <= set(dir(netrun))
    with pytest.raises(AttributeError):
        netrun.no_such_name  # noqa: B018


def test_the_readme_example_runs(tmp_path: Path) -> None:
    """The README's "Python API" section is runnable as it stands, from the repository root."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    code = "\n".join(re.findall(r"```python\n(.*?)```", section, re.S))
    assert "netrun.load_network(" in code and "netrun.mount(" in code
    env = {**os.environ, "NETRUN_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("completed ['dba', 'security'] ")
    assert (tmp_path / "data" / "runs.db").exists()
