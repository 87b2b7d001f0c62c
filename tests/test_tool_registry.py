"""The one registry of tool kinds: it covers exactly the kinds the file format has, and a
run builds every declared tool from it (stubs and given tools in their place)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netrun.compile import compile_network, with_stubs
from netrun.models.scripted import ScriptedClient
from netrun.runtime.tooling import owns_steps, starts_runs
from netrun.spec import NetworkSpec
from netrun.spec.tools import TOOL_KINDS, kind_key
from netrun.tools.approval import Approved
from netrun.tools.registry import KINDS, build_tools
from netrun.tools.stub import StubTool

SPEC: dict[str, Any] = {
    "name": "all",
    "model": "openai/x",
    "state": {"x": "string"},
    "mcp_servers": {"srv": {"transport": "stdio", "command": "true"}},
    "agents": {"a": {"description": "a", "system": "hi", "tools": ["s", "h", "w", "n", "e", "srv.look"]}},
    "tools": {
        "s": {"state": {"x": "1"}},
        "h": {"http": {"url": "https://example.com/"}, "approval": "required"},
        "w": {"wait_for_event": {"event": "app/answer"}},
        "n": {"network": "other"},
        "e": {"event": {"name": "app/told"}},
    },
}


def program(**options: Any) -> Any:
    return compile_network(NetworkSpec.model_validate(SPEC), Path("."), lambda spec: ScriptedClient({}, "t"), **options)


def test_the_registry_has_one_entry_per_kind_of_the_file_format() -> None:
    assert sorted(kind_key(t) for t in KINDS) == sorted(TOOL_KINDS)


def test_a_run_builds_every_declared_tool_from_the_registry() -> None:
    tools = build_tools(program()).declared
    assert [type(t).__name__ for t in tools.values()] == [
        "StateToolImpl",
        "Approved",
        "WaitForEventTool",
        "NetworkRunTool",
        "SendEventTool",
    ]
    assert isinstance(tools["h"], Approved) and type(tools["h"].tool).__name__ == "HttpToolImpl"
    assert [name for name, t in tools.items() if owns_steps(t)] == ["h", "w", "n", "e"]
    assert [name for name, t in tools.items() if starts_runs(t)] == ["n", "e"]


def test_stubs_replace_tools_where_they_are_built_and_leave_the_program_as_it_was() -> None:
    planned = program()
    stubbed = with_stubs(planned, {"h": {"result": 1}, "n": {"result": 2}, "srv.look": {"result": 3}})
    assert planned.stubs == {} and planned.agents["a"].mcp_refs == [("srv", "look")]  # untouched
    assert stubbed.agents["a"].mcp_refs == [] and stubbed.agents["a"].stub_refs == [("srv", "look")]
    tools = build_tools(stubbed)
    assert isinstance(tools.declared["n"], StubTool) and not starts_runs(tools.declared["n"])
    assert isinstance(tools.declared["h"], Approved) and isinstance(tools.declared["h"].tool, StubTool)  # still gated
    assert {t: s.name for t, s in tools.servers["srv"].items()} == {"look": "srv__look"}


def test_a_given_tool_takes_the_place_of_the_registrys() -> None:
    given = StubTool("s", "mine", {"type": "object", "properties": {}}, None)  # type: ignore[arg-type]
    assert build_tools(program(tools={"s": given})).declared["s"] is given


def test_each_kind_s_templates_are_found_from_the_scope_table_alone() -> None:
    """validate checks a kind's templates at its scope-table place's paths: every place under
    ``tools.*`` belongs to exactly one registered kind, so a new kind adds its place and no
    code in the checker."""
    from netrun.check.tools import _tool_place
    from netrun.spec import scopes
    from netrun.spec.tools import ToolBase

    # a field every tool has (`save:`) is checked for every tool, not by kind
    tool_places = {
        p.key
        for p in scopes.PLACES
        if any(path.startswith("tools.") and path.split(".")[2] not in ToolBase.model_fields for path in p.paths)
    }
    found = {kind_key(t): _tool_place(kind_key(t)) for t in KINDS}
    assert {p.key for p in found.values() if p is not None} == tool_places
    assert all(p is not None for k, p in found.items() if k != "python")  # every kind but python has templates
