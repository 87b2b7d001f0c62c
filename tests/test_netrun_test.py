"""`netrun test`: test cases run offline and deterministically; failures print diffs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from . import debian
from .conftest import REPO

NETWORK = """\
# yaml-language-server: $schema=schemas/network.schema.json
name: triage
model: openai/gpt-4o-mini
max_iter: 4
state:
  category: {type: string, enum: [billing, technical]}
  done: {type: boolean, default: false}
agents:
  classifier:
    description: Sorts tickets.
    system: "Classify: {{ input }}"
    tools: [set_category, docs.search]
  closer:
    description: Closes tickets.
    system: Close it.
    tools: [ask, finish]
router:
  rules:
    - {if: state.done, stop: true}
    - {if: not state.category, agent: classifier}
    - {if: "true", agent: closer}
tools:
  set_category:
    parameters: {category: {type: string, enum: [billing, technical]}}
    state: {category: "{{ args.category }}"}
  ask:
    wait_for_event: {event: app/answered, match: data.ticket}
    parameters: {question: {type: string}}
  finish:
    approval: required
    state: {done: true}
mcp_servers:
  docs: {transport: stdio, command: /nonexistent/docs-server}
"""

CASES = """\
cases:
  billing:
    input: I was charged twice
    event: {name: app/ticket, data: {ticket: T-1}}
    replies:
      classifier:
        - text: Looking it up.
          tool_calls:
            - {name: docs__search, args: {q: charged twice}}
            - {name: set_category, args: {category: billing}}
      closer:
        - tool_calls: [{name: ask, args: {question: refunded?}}]
        - text: Closed as refunded.
          tool_calls: [{name: finish, args: {}}]
    tools:
      docs.search: {result: {hits: [refunds]}}
    events:
      - {name: app/answered, data: {ticket: T-1, answer: "yes"}}
      - {name: netrun/approval, data: {approved: true}}
    expect:
      route: [classifier, closer, closer]
      tool_calls:
        - {name: docs__search, args: {q: charged twice}}
        - {name: finish}
      state: {category: billing, done: true}
      output: {contains: refunded, regex: "^Closed"}
      stop_reason: router
      iterations: 3
"""


def write(folder: Path, cases: str = CASES) -> Path:
    (folder / "triage.yaml").write_text(NETWORK)
    path = folder / "triage.test.yaml"
    path.write_text(cases)
    return path


def test_a_case_with_stubs_waits_and_approvals_passes(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    write(tmp_path)
    result = netrun_cli("test", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "triage.test.yaml::billing PASSED" in result.output
    assert "1 passed" in result.output


def test_a_failing_case_prints_what_differs(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    wrong = (
        CASES.replace("route: [classifier, closer, closer]", "route: [classifier, closer]")
        .replace("state: {category: billing, done: true}", "state: {category: technical, done: true}")
        .replace(
            "{name: docs__search, args: {q: charged twice}}\n        - {name: finish}",
            "{name: finish}\n        - {name: docs__search}",
        )
    )
    path = write(tmp_path, wrong)
    result = netrun_cli("test", str(path))
    assert result.exit_code == 1
    out = result.output
    assert "triage.test.yaml::billing FAILED" in out and "1 failed, 0 passed" in out
    assert f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:" in out
    assert (
        ':21:14: expect.route: the route differs\n    expected: ["classifier", "closer"]\n    actual:   ["classifier", "closer", "closer"]'
        in out
    )
    assert (
        'expect.state: the state differs\n    expected: {"category": "technical", "done": true}\n    actual:   {"category": "billing", "done": true}'
        in out
    )
    assert "expected call #2 (docs__search) was not made, in this order" in out


def test_junit_and_github_formats(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    path = write(tmp_path, CASES.replace("iterations: 3", "iterations: 9"))
    junit = netrun_cli("test", str(path), "--format", "junit")
    assert junit.exit_code == 1
    suites = ET.fromstring(junit.output)
    case = suites.find("testsuite/testcase")
    assert suites.get("tests") == "1" and suites.get("failures") == "1"
    assert case is not None and case.get("name") == "billing"
    failure = case.find("failure")
    assert failure is not None and "the number of iterations differs" in failure.get("message", "")
    assert "expected: 9\n    actual:   3" in (failure.text or "")
    github = netrun_cli("test", str(path), "--format", "github")
    line = next(x for x in github.output.splitlines() if x.startswith("::error"))
    assert "line=28,col=19" in line and "title=netrun test%3A billing" in line and "expected: 9%0Aactual:   3" in line
    report = tmp_path / "report.xml"
    written = netrun_cli("test", str(path), "--format", "junit", "-o", str(report))
    assert written.exit_code == 1 and ET.parse(report).getroot().get("failures") == "1"


def test_a_run_that_takes_another_path_fails_clearly(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    # No approval in the events: the run waits for it at the end.
    path = write(tmp_path, CASES.replace("      - {name: netrun/approval, data: {approved: true}}\n", ""))
    result = netrun_cli("test", str(path))
    assert result.exit_code == 1
    assert "the run waits for netrun/approval; the case has no more events to deliver" in result.output
    # One reply too few: the scripted model says which call it has no reply for.
    short = write(
        tmp_path, CASES.replace("        - text: Closed as refunded.\n          tool_calls: [{name: finish, args: {}}]\n", "")
    )
    result = netrun_cli("test", str(short))
    assert "the run ended failed" in result.output and "no reply for closer call #2" in result.output
    # One reply too many: the case fails, naming the caller whose replies were left over.
    extra = write(
        tmp_path,
        CASES.replace(
            "          tool_calls: [{name: finish, args: {}}]\n",
            "          tool_calls: [{name: finish, args: {}}]\n        - text: never asked\n",
            1,
        ),
    )
    result = netrun_cli("test", str(extra))
    assert result.exit_code == 1
    assert "1 of the 3 replies for closer were not used: the run made fewer calls than scripted" in result.output


def test_invalid_test_files_are_reported_where_they_are_wrong(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    bad = CASES.replace("      classifier:\n", "      clasifier:\n").replace("    expect:\n", "    expect:\n      rout: [x]\n")
    bad = bad.replace("docs.search: {result", "docs.serch_all: {result").replace(
        "      route: [classifier", "      route: [nobody"
    )
    path = write(tmp_path, bad)
    result = netrun_cli("test", str(path))
    assert result.exit_code == 1
    assert "triage.test.yaml:21:7: error: cases.billing.expect.rout: unknown field" in result.output
    (tmp_path / "triage.test.yaml").write_text(
        CASES.replace("      classifier:\n", "      clasifier:\n").replace("route: [classifier", "route: [nobody")
    )
    result = netrun_cli("test", str(path))
    assert result.exit_code == 1
    assert "triage.test.yaml:6:7: error: cases.billing.replies.clasifier: no agent 'clasifier' in the network" in result.output
    assert "cases.billing.expect.route[0]: no agent 'nobody'" in result.output
    assert netrun_cli("test", str(tmp_path / "nothing-here")).exit_code == 2


def test_every_example_network_has_passing_test_cases(netrun_cli: Callable[..., Any]) -> None:
    networks = sorted(p for p in (REPO / "networks").glob("*.yaml") if not p.name.endswith((".replies.yaml", ".test.yaml")))
    for network in networks:
        assert network.with_name(network.stem + ".test.yaml").exists(), f"{network.name} has no test file"
    result = netrun_cli("test", "networks", "--format", "junit")
    assert result.exit_code == 0, result.output
    suites = ET.fromstring(result.output)
    assert suites.get("failures") == "0" and int(suites.get("tests", "0")) >= len(networks)


def test_netrun_test_runs_no_model_or_server(netrun_cli: Callable[..., Any], tmp_path: Path, monkeypatch: Any) -> None:
    """The MCP server of the network does not exist: the stub stands in for it, so the case
    never starts it; no API key is needed either."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    write(tmp_path)
    result = netrun_cli("test", str(tmp_path), "--format", "github")
    assert result.exit_code == 0, result.output
    assert json.dumps("0 failed")[1:-1] in result.output


def test_expectations_on_a_failed_run_or_failed_calls_do_not_pass_silently(
    netrun_cli: Callable[..., Any], tmp_path: Path
) -> None:
    short = CASES.replace("        - text: Closed as refunded.\n          tool_calls: [{name: finish, args: {}}]\n", "")
    path = write(
        tmp_path, short.replace("    expect:\n", "    expect:\n      status: failed\n      error: no reply for closer\n")
    )
    result = netrun_cli("test", str(path))
    assert result.exit_code == 1  # the route, state... cannot hold for a run that failed
    assert "cannot check route, tool_calls, state, output, stop_reason, iterations: the run failed" in result.output
    # A call that failed is not the call a case expects, unless it says so.
    down = CASES.replace("docs.search: {result: {hits: [refunds]}}", "docs.search: {error: index down}")
    path = write(tmp_path, down)
    result = netrun_cli("test", str(path))
    assert result.exit_code == 1 and "expected call #1 (docs__search) was not made" in result.output
    path = write(
        tmp_path,
        down.replace(
            "\n        - {name: docs__search, args: {q: charged twice}}",
            "\n        - {name: docs.search, args: {q: charged twice}, error: down}",
        ),
    )
    assert netrun_cli("test", str(path)).exit_code == 0


def test_broken_test_files_count_in_every_format(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "other.yaml").write_text(NETWORK.replace("name: triage", "name: other"))
    (tmp_path / "other.test.yaml").write_text("cases:\n  broken:\n    expect: {route: [nobody]}\n")
    human = netrun_cli("test", str(tmp_path))
    assert human.exit_code == 1 and "1 passed, 1 test file(s) with errors" in human.output
    report = tmp_path / "report.xml"
    assert netrun_cli("test", str(tmp_path), "--format", "junit", "-o", str(report)).exit_code == 1
    suites = ET.parse(report).getroot()
    assert suites.get("errors") == "1" and suites.get("tests") == "2"
    error = suites.find("testsuite/testcase/error")
    assert error is not None and "no agent 'nobody'" in error.get("message", "")
    missing = netrun_cli("test", str(tmp_path), "-o", str(tmp_path / "no" / "such" / "dir" / "r.xml"))
    assert missing.exit_code == 1 and "cannot write the report" in missing.output


def test_a_network_used_as_a_tool_is_scripted_by_prefix(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        "name: child\nmodel: openai/gpt-4o-mini\nagents: {worker: {system: s}}\n"
        "router: {rules: [{if: call_count == 0, agent: worker}], otherwise: stop}\n"
    )
    (tmp_path / "boss.yaml").write_text(
        "name: boss\nmodel: openai/gpt-4o-mini\nagents: {boss: {system: s, tools: [helper]}}\n"
        "router: {rules: [{if: call_count < 2, agent: boss}], otherwise: stop}\n"
        "tools: {helper: {network: child}}\n"
    )
    (tmp_path / "boss.test.yaml").write_text("""\
cases:
  delegates:
    replies:
      boss:
        - tool_calls: [{name: helper, args: {input: dig}}]
        - text: The helper found gold.
      turn.0.boss.tool.0.helper/worker:
        - text: gold
    expect:
      tool_calls_exact: [{name: helper, args: {input: dig}}]
      output: gold
""")
    result = netrun_cli("test", str(tmp_path / "boss.test.yaml"))
    assert result.exit_code == 0, result.output


def test_a_case_whose_initial_state_does_not_fit_is_a_located_error(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    """A case's `state` is checked as `netrun run --state` checks it: `done: maybe` would have
    made a stop rule fire at once; an undeclared field is never read."""
    cases = CASES.replace(
        "    input: I was charged twice\n",
        "    input: I was charged twice\n    state: {done: maybe, categry: billing, category: other}\n",
    )
    path = write(tmp_path, cases)
    result = netrun_cli("test", str(path))
    assert result.exit_code == 1, result.output
    assert "triage.test.yaml:4:19: error: cases.billing.state.done: expected boolean, got string" in result.output
    assert "4:26: error: cases.billing.state.categry: not a declared state field; did you mean 'category'?" in result.output
    assert '4:54: error: cases.billing.state.category: must be one of ["billing", "technical"]' in result.output
    assert "PASSED" not in result.output


@pytest.mark.skipif(not debian.has_bwrap(), reason="bubblewrap (bwrap) is not installed (apt-get install bubblewrap)")
def test_netrun_test_keeps_sandbox_work_folders_in_its_scratch_folder(
    netrun_cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sandboxed command's run folder is in the engine's data directory, beside its journal:
    for `netrun test` its scratch folder. It was once `.netrun/work/RUN` beside the network
    file, left behind by every `netrun test networks`."""
    monkeypatch.delenv("NETRUN_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "box.yaml").write_text(
        "name: box\nmodel: openai/x\nagents:\n  a: {description: d, system: go, tools: [write]}\n"
        "router: {rules: [{if: call_count >= 1, stop: true}, {if: 'true', agent: a}]}\n"
        "tools:\n  write: {command: {argv: [/bin/sh, -c, 'echo hi > kept.txt; cat kept.txt'], sandbox: true}}\n"
    )
    (tmp_path / "box.test.yaml").write_text(
        "cases:\n  writes in its folder:\n    replies:\n      a: [{tool_calls: [{name: write}]}]\n"
        "    expect: {tool_calls: [{name: write}]}\n"
    )
    result = netrun_cli("test", str(tmp_path / "box.yaml"))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / ".netrun").exists()
