"""`netrun graph` (Mermaid and Graphviz text of a network) and `netrun new` (a scaffold that
validates and passes its tests as created)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydot
import pytest

from .conftest import REPO


def test_mermaid_graph_of_the_support_example(netrun_cli: Callable[..., Any]) -> None:
    result = netrun_cli("graph", "networks/support.yaml")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "flowchart TD"
    assert '  agent0["triage"]' in lines and '  agent1["technical"]' in lines
    assert '  router -->|"1: state.answer"| stop' in lines
    assert '  router -->|"2: not state.category"| agent0' in lines
    assert '  router -.->|"LLM router"| agent1' in lines  # otherwise: llm
    assert '  tool2{{"ask_developer: waits for app/support.ticket.developer-response"}}' in lines
    assert "  agent1 --> tool2" in lines
    # Every line is a node or an edge in Mermaid's flowchart syntax; every edge joins declared nodes.
    nodes = {m.group(1) for line in lines[1:] if (m := re.fullmatch(r"  (\w+)(\(\(|\{\{|\{|\[/|\[\[|\[\(|\[)\".*", line))}
    edges = [re.fullmatch(r"  (\w+) (-->|-\.->)(\|\"[^\"]*\"\|)? (\w+)", line) for line in lines[1:] if "->" in line]
    assert all(edges) and len(nodes) + len(edges) == len(lines) - 1
    assert {e.group(1) for e in edges if e} | {e.group(4) for e in edges if e} <= nodes


def test_dot_graph_parses_and_shows_approvals_and_mcp_servers(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "n.yaml").write_text("""\
name: n
model: openai/gpt-4o-mini
agents:
  a: {description: "says \\"hi\\"", system: s, tools: [refund, docs.search, child], mcp_servers: [files]}
  b: {description: b, system: s}
  a-b: {description: ab, system: s}
  a_b: {description: a_b, system: s}
router:
  rules: [{if: 'state.x == "y"', agent: b}, {if: "state.x < '#1' or state.x > 'b'", agent: a-b}, {if: "false", agent: a_b}]
  otherwise: llm
state: {x: {type: string}}
tools:
  refund: {approval: required, state: {x: done}}
  child: {network: other}
mcp_servers:
  docs: {transport: streamable-http, url: "http://127.0.0.1:1/mcp"}
  files: {transport: stdio, command: files-server}
""")
    (tmp_path / "other.yaml").write_text("name: other\nmodel: openai/gpt-4o-mini\nagents: {o: {system: s}}\n")
    result = netrun_cli("graph", str(tmp_path / "n.yaml"), "--format", "dot")
    assert result.exit_code == 0, result.output
    (graph,) = pydot.graph_from_dot_data(result.output)
    labels = {n.get_name(): n.get("label") for n in graph.get_nodes()}
    assert labels["tool0"] == '"refund: sets x + approval"'
    assert labels["mcp0"] == '"MCP docs (streamable-http)"' and labels["mcp1"] == '"MCP files (stdio)"'
    assert labels["tool1"] == '"child: runs network other"'
    assert labels["agent2"] == '"a-b"' and labels["agent3"] == '"a_b"'  # names differing in - and _ stay apart
    edges = {(e.get_source(), e.get_destination(), e.get("label"), e.get("style")) for e in graph.get_edges()}
    assert ("router", "agent1", '"1: state.x == \\"y\\""', None) in edges
    assert ("router", "agent0", '"LLM router"', "dashed") in edges
    assert ("agent0", "mcp0", '"search"', None) in edges and ("agent0", "mcp1", '"all tools"', None) in edges
    mermaid = netrun_cli("graph", str(tmp_path / "n.yaml")).output
    assert "  router -->|\"2: state.x #lt; '#35;1' or state.x #gt; 'b'\"| agent2" in mermaid.splitlines()


def test_graph_of_an_invalid_file_prints_validates_errors(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nagents: {a: {system: s, tools: [nope]}}\n")
    result = netrun_cli("graph", str(tmp_path / "bad.yaml"))
    assert result.exit_code == 1 and "bad.yaml:2:" in result.output


def test_new_scaffolds_files_that_validate_and_pass(
    netrun_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "networks").mkdir()
    created = netrun_cli("new", "helpdesk")
    assert created.exit_code == 0, created.output
    network, tests = tmp_path / "networks" / "helpdesk.yaml", tmp_path / "networks" / "helpdesk.test.yaml"
    assert network.read_text().startswith("# yaml-language-server: $schema=../schemas/network.schema.json\nname: helpdesk\n")
    assert tests.read_text().startswith("# yaml-language-server: $schema=../schemas/test.schema.json\n")
    assert (tmp_path / "schemas" / "test.schema.json").exists()  # the modelines point at real files
    assert netrun_cli("validate", "--strict", "networks").exit_code == 0
    passed = netrun_cli("test", "networks")
    assert passed.exit_code == 0 and "1 passed" in passed.output
    again = netrun_cli("new", "helpdesk")
    assert again.exit_code == 1 and "exists" in again.output
    assert netrun_cli("new", "9 bad name").exit_code == 2


def test_the_readme_shows_the_graph_of_an_example(netrun_cli: Callable[..., Any]) -> None:
    readme = (REPO / "README.md").read_text()
    shown = readme.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert shown.strip() == netrun_cli("graph", "networks/support.yaml").output.strip()
