"""What `netrun validate` lets a template read is what it gets at run time (issue 11, item 9):
a wait's `if` may read `input`, an agent's system prompt `agent`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
from netrun.runtime.model import Completion, Request
from netrun.spec import NetworkSpec
from netrun.validate import validate_paths

from .test_run_loop import Counting, call


def checked(path: Path) -> NetworkSpec:
    """The spec of a file `netrun validate` accepts without a message."""
    result = validate_paths([path])
    assert [d.message for d in result.files[0].diagnostics] == []
    spec = result.files[0].spec
    assert spec is not None
    return spec  # type: ignore[no-any-return]


class Prompts(Counting):
    """Counting, and keeping each request's system prompt."""

    def __init__(self, replies: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__(replies)
        self.systems: list[str] = []

    async def complete(self, request: Request, on_text: Any = None) -> Completion:
        self.systems.append(str(request.messages[0]["content"]))
        return await super().complete(request, on_text)


def engine(tmp_path: Path, client: Any) -> LocalEngine:
    return LocalEngine(Journal(tmp_path / "runs.db"), {}, None, models=lambda spec: client, backoff=0.01)


ASKS = """\
name: quiz
model: openai/x
max_iter: 4
state: {done: {type: boolean, default: false}}
agents:
  host:
    description: Asks the room.
    system: "You are {{ agent.name }} ({{ agent.description }}); the question is {{ input }}."
    tools: [ask, finish]
router:
  rules: [{if: state.done, stop: true}, {if: "true", agent: host}]
tools:
  ask:
    parameters: {question: {type: string}}
    wait_for_event: {event: app/answered, if: "async.data.q == input", timeout: 1h}
  finish: {state: {done: true}}
"""


def test_a_wait_if_that_reads_input_validates_and_matches(write: Callable[[str, str], Path], tmp_path: Path) -> None:
    spec = checked(write("quiz.yaml", ASKS))
    client = Prompts({"host": [{"tool_calls": [call("ask", question="which?")]}, {"text": "ok", "tool_calls": [call("finish")]}]})
    eng = engine(tmp_path, client)
    record = asyncio.run(eng.start(spec, tmp_path, input="owls"))
    assert record.status == "waiting"
    assert asyncio.run(eng.deliver("app/answered", {"q": "bats"})) == []  # another question's answer
    (resumed,) = asyncio.run(eng.deliver("app/answered", {"q": "owls", "a": "they hoot"}))
    assert resumed.status == "completed", resumed.error
    assert resumed.result["results"][0]["tool_calls"][0]["result"] == {"q": "owls", "a": "they hoot"}


def test_an_agent_system_prompt_may_read_agent(write: Callable[[str, str], Path], tmp_path: Path) -> None:
    spec = checked(write("quiz.yaml", ASKS))
    client = Prompts({"host": [{"text": "ok", "tool_calls": [call("finish")]}]})
    record = asyncio.run(engine(tmp_path, client).start(spec, tmp_path, input="owls"))
    assert record.status == "completed", record.error
    assert client.systems[0].startswith("You are host (Asks the room.); the question is owls.")


def test_agent_is_still_unknown_outside_an_agents_system_prompt(write: Callable[[str, str], Path]) -> None:
    data = yaml.safe_load(ASKS)
    data["router"]["rules"][1]["if"] = "agent.name == 'host'"  # a rule runs before any agent
    result = validate_paths([write("quiz.yaml", yaml.safe_dump(data))])
    assert [d.message for d in result.files[0].diagnostics if d.severity == "error"] == [
        "undefined variable 'agent'; did you mean 'last_agent'? available here: call_count, event, input, last_agent, last_output, network, results, state, steps"
    ]
