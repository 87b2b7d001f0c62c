"""Every event a run emits is one the protocol declares (netrun/runtime/events.py), with
exactly the fields of its payload, each of the declared type.

Real networks on the local engine, offline (the scripted model): the examples with their
replies files, and small networks for what the examples do not do (an approval, a failed
and a cancelled run, a tool's error, a network run as a tool).
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest

from netrun.api import load_network
from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
from netrun.finder import find_network
from netrun.models.scripted import ScriptedClient
from netrun.runtime import events
from netrun.spec import NetworkSpec

from .conftest import REPO

Emitted = list[tuple[str, dict[str, Any]]]


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (the few forms the payloads use)."""
    origin = get_origin(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is Literal:
        return value in get_args(hint)
    if origin in (Union, types.UnionType):
        return any(fits(value, member) for member in get_args(hint))
    if origin is not None:  # dict[str, Any], ...: the container's type
        return isinstance(value, origin)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def engine(tmp_path: Path, emitted: Emitted, replies: dict[str, list[dict[str, Any]]] | None = None) -> LocalEngine:
    client = ScriptedClient(replies, "test") if replies is not None else None
    return LocalEngine(
        Journal(tmp_path / "runs.db"),
        {},
        lambda kind, data: emitted.append((kind, data)),
        models=(lambda spec: client) if client is not None else None,
        backoff=0.01,
        networks=find_network,
    )


def example(name: str) -> NetworkSpec:
    return load_network(REPO / "networks" / f"{name}.yaml").spec


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


def quickstart_and_writing(tmp_path: Path) -> Emitted:
    emitted: Emitted = []
    eng = engine(tmp_path, emitted)
    for name, text in (("quickstart", "Read-only access for analysts?"), ("writing", "Barn owls, 300 words.")):
        replay = str(REPO / "networks" / f"{name}.replies.yaml")
        record = asyncio.run(eng.start(example(name), REPO / "networks", input=text, options={"replay": replay}))
        assert record.status == "completed", record.error
    return emitted


def support_waits_and_resumes(tmp_path: Path) -> Emitted:
    emitted: Emitted = []
    eng = engine(tmp_path, emitted)
    replay = str(REPO / "networks" / "support.replies.yaml")
    record = asyncio.run(
        eng.start(
            example("support"),
            REPO / "networks",
            input="Export crashes",
            options={"replay": replay},
            event={"name": "app/support.ticket.created", "data": {"ticketId": "T-1"}},
        )
    )
    assert record.status == "waiting"
    (resumed,) = asyncio.run(eng.deliver("app/support.ticket.developer-response", {"ticketId": "T-1", "answer": "2.3.1"}))
    assert resumed.status == "completed", resumed.error
    assert any(data["replayed"] for _, data in emitted)  # the resumed run re-read its first turns
    return emitted


APPROVAL = {
    "name": "refunds",
    "model": "openai/x",
    "state": {"refunded": "boolean"},
    "agents": {"clerk": {"description": "d", "system": "refund", "tools": ["refund", "lookup"]}},
    "router": {"rules": [{"if": "call_count >= 2", "stop": True}, {"if": "true", "agent": "clerk"}]},
    "tools": {
        "refund": {"approval": "required", "parameters": {"order": {"type": "string"}}, "state": {"refunded": True}},
        "lookup": {"parameters": {"order": {"type": "integer"}}, "state": {"refunded": False}},
    },
}


def approval(decision: dict[str, Any]) -> Callable[[Path], Emitted]:
    def scenario(tmp_path: Path) -> Emitted:
        emitted: Emitted = []
        # "lookup" gets a string where its parameter is an integer: an error back to the model.
        replies: dict[str, list[dict[str, Any]]] = {
            "clerk": [{"tool_calls": [call("lookup", order="A1"), call("refund", order="A1")]}, {"text": "done"}]
        }
        eng = engine(tmp_path, emitted, replies)
        record = asyncio.run(eng.start(NetworkSpec.model_validate(APPROVAL), tmp_path, input="refund A1"))
        assert record.status == "waiting"
        (resumed,) = asyncio.run(eng.deliver("netrun/approval", {**decision, "run_id": record.id}))
        assert resumed.status == "completed", resumed.error
        assert any(kind == events.TOOL_RESULT and data["error"] for kind, data in emitted)
        return emitted

    return scenario


def cancelled(tmp_path: Path) -> Emitted:
    emitted: Emitted = []
    eng = engine(tmp_path, emitted, {"clerk": [{"tool_calls": [call("refund", order="A1")]}]})
    record = asyncio.run(eng.start(NetworkSpec.model_validate(APPROVAL), tmp_path, input="refund A1"))
    assert record.status == "waiting"
    assert eng.cancel(record.id, "not needed").status == "cancelled"
    return emitted


HELPER = """
name: helper
model: openai/x
agents: {h: {description: d, system: help}}
router: {rules: [{if: "call_count >= 1", stop: true}, {if: "true", agent: h}]}
"""

BOSS = {
    "name": "boss",
    "model": "openai/x",
    "agents": {"b": {"description": "d", "system": "ask", "tools": ["ask_helper"]}},
    "router": {"rules": [{"if": "call_count >= 2", "stop": True}, {"if": "true", "agent": "b"}]},
    "tools": {"ask_helper": {"network": "helper", "parameters": {"input": {"type": "string"}}}},
}


def failed_with_a_network_as_a_tool(tmp_path: Path) -> Emitted:
    (tmp_path / "helper.yaml").write_text(HELPER, encoding="utf-8")
    emitted: Emitted = []
    eng = engine(tmp_path, emitted, {"b": [{"tool_calls": [call("ask_helper", input="hi")]}], "h": [{"text": "hello"}]})
    record = asyncio.run(eng.start(NetworkSpec.model_validate(BOSS), tmp_path, input="go"))
    assert record.status == "failed"  # the script has no second reply for "b"
    assert len({data["run_id"] for kind, data in emitted if kind == events.RUN_STARTED}) == 2  # the helper's run too
    return emitted


SCENARIOS: dict[str, Callable[[Path], Emitted]] = {
    "quickstart and writing": quickstart_and_writing,
    "support waits and resumes": support_waits_and_resumes,
    "approved": approval({"approved": True, "by": "ana"}),
    "denied": approval({"approved": False, "reason": "too large"}),
    "cancelled": cancelled,
    "failed, with a network as a tool": failed_with_a_network_as_a_tool,
}


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Emitted]:
    """What each scenario emitted, run once for the tests below."""
    return {name: scenario(tmp_path_factory.mktemp("run")) for name, scenario in SCENARIOS.items()}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_event_is_declared_with_exactly_its_fields(emitted: dict[str, Emitted], scenario: str) -> None:
    assert emitted[scenario], "the run emitted nothing"
    for kind, data in emitted[scenario]:
        assert kind in events.PAYLOADS, f"{kind!r} is emitted but not declared in netrun/runtime/events.py"
        hints = get_type_hints(events.PAYLOADS[kind])
        assert set(data) == set(hints), f"{kind}: fields {sorted(data)}, declared {sorted(hints)}"
        for name, hint in hints.items():
            assert fits(data[name], hint), f"{kind}.{name} = {data[name]!r} is not {hint}"


def test_every_declared_kind_is_emitted(emitted: dict[str, Emitted]) -> None:
    assert set(get_args(events.EventKind)) == set(events.PAYLOADS)
    seen = {kind for run in emitted.values() for kind, _ in run}
    assert set(events.PAYLOADS) - seen == set(), "declared kinds that no run emitted"


def test_once_only_events_are_told_apart_by_a_field_they_carry() -> None:
    for kind, field_name in events.ONCE.items():
        assert kind in events.PAYLOADS
        assert field_name is None or field_name in get_type_hints(events.PAYLOADS[kind])
    assert set(events.FINAL) <= set(events.PAYLOADS) and set(events.WAITS) <= set(events.PAYLOADS)
