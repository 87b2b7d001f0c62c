"""`netrun run --state KEY=VALUE`: each value is read as the declared field's type and
checked against the declaration before the run is recorded; a mistake is a usage error
(exit 2) naming ``--state KEY`` and what is allowed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from netrun.runtime.state import read_state_text, state_problems

NETWORK = """\
name: gate
model: scripted/gate.replies
max_iter: 3
state:
  done: {type: boolean, default: false}
  color: {type: string, enum: [red, green]}
  count: integer
  note: string
agents:
  helper: {description: helps, system: "Help.", tools: [finish]}
router:
  rules: [{if: state.done, stop: true}, {if: "true", agent: helper}]
tools:
  finish:
    state: {done: true}
"""

STATELESS = """\
name: plain
model: scripted/gate.replies
max_iter: 1
agents:
  helper: {description: helps, system: "Help."}
"""

REPLIES = "helper:\n  - {text: finished, tool_calls: [{name: finish, args: {}}]}\n"


@pytest.fixture
def gate(write: Callable[[str, str], Path]) -> Path:
    write("gate.replies", REPLIES)
    return write("gate.yaml", NETWORK)


def run(netrun_cli: Callable[..., Result], network: Path, *state: str) -> Result:
    pairs = [arg for pair in state for arg in ("--state", pair)]
    return netrun_cli("run", str(network), "-i", "go", "--json", "--db", str(network.parent / "runs.db"), *pairs)


def stored_runs(network: Path) -> int:
    db = network.parent / "runs.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("done=maybe", "Invalid value for --state done: expected boolean, got string"),
        ("count=many", "Invalid value for --state count: expected integer, got string"),
        ("color=blue", 'Invalid value for --state color: must be one of ["red", "green"]'),
        (
            "colour=red",
            "Invalid value for --state colour: not a declared state field; did you mean 'color'? defined state fields: color, count, done, note",
        ),
        ("count=NaN", "Invalid value for --state count: nan is not a JSON number; send a finite number"),
    ],
)
def test_a_state_value_the_declaration_refuses_is_a_usage_error(
    netrun_cli: Callable[..., Result], gate: Path, pair: str, message: str
) -> None:
    result = run(netrun_cli, gate, pair)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert stored_runs(gate) == 0  # refused before the run was recorded (no stop rule fired on "maybe")


def test_every_bad_state_value_is_named_at_once(netrun_cli: Callable[..., Result], gate: Path) -> None:
    result = run(netrun_cli, gate, "done=maybe", "count=1", "colour=red")
    assert result.exit_code == 2, result.output
    assert "  --state done: expected boolean, got string\n" in result.output
    assert "  --state colour: not a declared state field" in result.output and "--state count" not in result.output


def test_values_are_read_as_the_declared_type(netrun_cli: Callable[..., Result], gate: Path) -> None:
    result = run(netrun_cli, gate, "count=5", "note=42", "color=red", "done=false")
    assert result.exit_code == 0, result.output
    final = json.loads(result.output)["result"]
    assert final["state"] == {"done": True, "color": "red", "count": 5, "note": "42"}  # "42": note is a string
    assert final["route"] == ["helper"]  # done started false: the agent ran, then finish set it


def test_a_network_without_declared_state_takes_none(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path]
) -> None:
    write("gate.replies", REPLIES)
    network = write("plain.yaml", STATELESS)
    result = run(netrun_cli, network, "x=1")
    assert result.exit_code == 2, result.output
    assert "--state x: not a declared state field: this network declares no state" in result.output


def test_read_state_text_prefers_the_reading_the_field_accepts() -> None:
    declared = {"n": "integer", "s": "string", "b": "boolean", "a": "array"}
    assert read_state_text(declared, "n", "7") == 7
    assert read_state_text(declared, "s", "7") == "7"
    assert read_state_text(declared, "s", '"quoted"') == "quoted"
    assert read_state_text(declared, "b", "true") is True
    assert read_state_text(declared, "b", "maybe") == "maybe"  # for state_problems to refuse
    assert read_state_text(declared, "a", "[1, 2]") == [1, 2]
    assert state_problems(declared, {"b": "maybe", "s": "\udcff"}) == [
        ("b", "b", "expected boolean, got string"),
        ("s", "s", "text that is not valid Unicode (a lone surrogate such as \\ud800); send UTF-8 text"),
    ]


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["-i", b"caf\xff"], "--input"),  # bytes that are not UTF-8 reach Python as lone surrogates
        (["-i", "go", "--event", '{"data": {"title": "\\ud800"}}'], "--event"),
        (["-i", "go", "--event", '{"data": {"n": NaN}}'], "--event"),
        (["-i", "go", "--event", "[" * 5000 + "]" * 5000], "--event"),
    ],
)
def test_command_line_text_that_would_not_read_back_is_a_usage_error(gate: Path, args: list[Any], hint: str) -> None:
    """What `netrun run` records must read back, from argv as from a request."""
    import subprocess

    from .conftest import NETRUN

    done = subprocess.run(
        [NETRUN, "run", str(gate), *args, "--db", str(gate.parent / "runs.db")], capture_output=True, timeout=60
    )
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 2, err
    assert hint in err and "Traceback" not in err
    assert stored_runs(gate) == 0
