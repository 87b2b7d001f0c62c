"""The hook layer observers plug into (netrun/observe.py): what the runtime marks, and that
work re-read from the journal is not marked again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from netrun import Runs, observe

from .test_api import GREETER, Greeting


class Recorder:
    """An observer that keeps what it is told, in order."""

    def __init__(self) -> None:
        self.ended: list[observe.Span] = []
        self.started: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def start(self, span: observe.Span) -> Any:
        self.started.append(f"{span.kind}:{span.name}")
        return len(self.started)

    def end(self, span: observe.Span, handle: Any) -> None:
        self.ended.append(span)

    def event(self, name: str, attributes: Mapping[str, Any]) -> None:
        self.events.append((name, dict(attributes)))

    def inject(self, headers: MutableMapping[str, str]) -> None:
        headers["x-recorded"] = str(len(self.started))

    def carrier(self) -> dict[str, str]:
        return {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}

    def of(self, kind: str) -> list[observe.Span]:
        return [s for s in self.ended if s.kind == kind]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    watching = Recorder()
    observe.install(watching)
    try:
        yield watching
    finally:
        observe.uninstall(watching)


def test_nothing_is_built_when_nothing_observes() -> None:
    assert not observe.observed()
    with observe.span("chat", "m", {"x": 1}) as marked:
        assert marked is None
    assert observe.inject({}) == {} and observe.carrier() == {}


def test_a_run_that_waits_and_resumes_is_marked_once_per_piece_of_work(tmp_path: Path, recorder: Recorder) -> None:
    (tmp_path / "greeter.yaml").write_text(GREETER, encoding="utf-8")
    client = Greeting(ask=True)

    async def scenario() -> None:
        async with Runs(tmp_path / "runs.db", model=client) as runs:
            waiting = await runs.start(tmp_path / "greeter.yaml", "Cy")
            assert waiting.status == "waiting"
            assert len(recorder.of("run")) == 1 and recorder.of("run")[0].error is None  # parking is no failure
            resumed = await runs.send("app/human.answered", {"name": "Cyril"}, run_id=waiting.run_id)
            assert resumed[0].status == "completed", resumed[0].error

    asyncio.run(scenario())
    runs_ = recorder.of("run")
    assert len(runs_) == 2 and runs_[-1].attributes["status"] == "completed"
    assert {s.attributes["run_id"] for s in recorder.ended} == {runs_[0].attributes["run_id"]}
    # One chat span per call the model really got: the resumed execution re-reads the first.
    chats = recorder.of("chat")
    assert len(chats) == len(client.requests) == 2
    assert [c.attributes["completion"]["usage"] for c in chats] == [
        {"prompt": 5, "completion": 3},
        {"prompt": 7, "completion": 2},
    ]
    assert [a.name for a in recorder.of("agent")] == ["greeter", "greeter"]
    # The wait is marked in the execution that parks on it (ended by the park, not a failure)
    # and ended with its answer by the execution that resumes; the YAML kind names each call.
    assert [(t.name, t.attributes["kind"], t.error, t.exception is None) for t in recorder.of("tool")] == [
        ("ask_human", "wait_for_event", None, False),
        ("ask_human", "wait_for_event", None, True),
        ("save", "state", None, True),
    ]
    assert recorder.of("tool")[1].attributes["outcome"]["result"]["name"] == "Cyril"
    routed = [e for e in recorder.events if e[0] == "netrun.routed"]
    assert [e[1]["agent"] for e in routed] == ["greeter", "greeter", None]
    # Nesting: each agent span opened inside a run span, each chat inside an agent span.
    order = recorder.started
    assert order[:3] == ["run:greeter", "agent:greeter", "chat:greeter"]


def test_a_failing_model_marks_its_inference_and_the_run_failed(tmp_path: Path, recorder: Recorder) -> None:
    from netrun import ModelError, Request

    def broken(request: Request) -> Any:
        raise ModelError("the provider refused: quota", retriable=False)

    async def scenario() -> str:
        async with Runs(tmp_path / "runs.db", model=broken) as runs:
            return (await runs.start(tmp_path / "greeter.yaml", "Cy")).status

    (tmp_path / "greeter.yaml").write_text(GREETER, encoding="utf-8")
    assert asyncio.run(scenario()) == "failed"
    [chat] = recorder.of("chat")
    assert chat.error and "quota" in chat.error
    [run] = recorder.of("run")
    assert run.attributes["status"] == "failed" and run.error and "quota" in run.error


class Broken(Recorder):
    """An observer with a bug in every call."""

    def start(self, span: observe.Span) -> Any:
        raise RuntimeError("observer bug: start")

    def end(self, span: observe.Span, handle: Any) -> None:
        raise RuntimeError("observer bug: end")

    def event(self, name: str, attributes: Mapping[str, Any]) -> None:
        raise RuntimeError("observer bug: event")

    def inject(self, headers: MutableMapping[str, str]) -> None:
        raise RuntimeError("observer bug: inject")

    def carrier(self) -> dict[str, str]:
        raise RuntimeError("observer bug: carrier")


class EndsBadly(Recorder):
    """Starts fine, fails at every end."""

    def end(self, span: observe.Span, handle: Any) -> None:
        raise RuntimeError("observer bug: end")


def test_an_observer_that_raises_never_fails_a_run_nor_the_other_observers(
    tmp_path: Path, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    broken, ends_badly = Broken(), EndsBadly()
    observe.install(broken)
    observe.install(ends_badly)
    try:
        (tmp_path / "greeter.yaml").write_text(GREETER, encoding="utf-8")

        async def scenario() -> str:
            async with Runs(tmp_path / "runs.db", model=Greeting()) as runs:
                return (await runs.start(tmp_path / "greeter.yaml", "Cy")).status

        assert asyncio.run(scenario()) == "completed"
        assert observe.inject({"a": "b"})["x-recorded"] and "traceparent" in observe.carrier()
    finally:
        observe.uninstall(broken)
        observe.uninstall(ends_badly)
    # The working observer saw everything, the one failing at its end was told of every start.
    assert [s.kind for s in recorder.ended].count("run") == 1 and recorder.of("chat")
    assert ends_badly.started == recorder.started
    complaints = [r.getMessage() for r in caplog.records if r.name == "netrun.observe"]
    # Once per observer and call, not once per span.
    assert sorted(complaints) == sorted(
        f"{who}.{call} failed; the run goes on without it"
        for who, call in [
            ("Broken", "start"),
            ("Broken", "event"),
            ("Broken", "inject"),
            ("Broken", "carrier"),
            ("EndsBadly", "end"),
        ]
    )


def test_a_model_client_that_raises_marks_its_inference_failed(tmp_path: Path, recorder: Recorder) -> None:
    def broken(request: Any) -> Any:
        raise ConnectionResetError("the socket went away")

    async def scenario() -> str:
        async with Runs(tmp_path / "runs.db", model=broken) as runs:
            return (await runs.start(tmp_path / "greeter.yaml", "Cy")).status

    (tmp_path / "greeter.yaml").write_text(GREETER, encoding="utf-8")
    asyncio.run(scenario())
    chats = recorder.of("chat")
    assert chats and all(c.error and "socket went away" in c.error for c in chats), [c.error for c in chats]
