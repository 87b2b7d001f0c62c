"""netrun's errors: one tree under NetrunError, each error with its phase and place, and the
command line's one mapping to exit codes."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import netrun
from netrun.cli import exit_code
from netrun.errors import NetrunError, UsageError
from netrun.history.base import HistoryError, PermanentHistoryError
from netrun.load import LoadError, load_text
from netrun.runtime.render import Renderer, RenderError
from netrun.runtime.router import rule_decision
from netrun.spec import RuleSpec
from netrun.sqlite_file import StorageFault
from netrun.validate import PathError

OUTSIDE = {
    # control flow and outcomes: a run doing what it should, never a failure to report
    "RunSuspended", "RunStopped", "RunCancelled", "SingletonSkipped",
    # private signals caught in their own module
    "_AttemptFailedError", "_SuspectError", "_StepError", "_GaveUpError", "_ClientGoneError", "_SyncUnreachableError", "_InngestDownError",
    # a bug in netrun (an assertion), not a user's mistake
    "ScopeError",
    # the CLI's own click exception
    "_Reported",
}  # fmt: skip


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(netrun.__path__, "netrun."):
        if info.name == "netrun.__main__":  # runs the command line when imported
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                found[name] = value
    return found


def test_every_error_of_netrun_is_a_netrun_error_with_a_phase() -> None:
    classes = _exception_classes()
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, NetrunError))
    assert set(outside) <= OUTSIDE, f"not under NetrunError: {sorted(set(outside) - OUTSIDE)}"
    assert len(classes) - len(outside) >= 18
    phases = {name: cls.phase for name, cls in classes.items() if issubclass(cls, NetrunError)}
    assert phases["LoadError"] == "load" and phases["CelError"] == "check" and phases["RunError"] == "run"
    assert phases["JournalError"] == "engine" and phases["SettingsError"] == "serve" and phases["PathError"] == "load"


def test_errors_keep_their_other_bases_and_attributes() -> None:
    assert issubclass(StorageFault, sqlite3.OperationalError)
    assert HistoryError.retriable and not PermanentHistoryError.retriable
    assert issubclass(PathError, UsageError)
    fault = StorageFault("/tmp/x.db", OSError(28, "No space left on device"))
    assert fault.path == "/tmp/x.db" and fault.phase == "engine"


def test_a_failing_router_rule_names_its_place() -> None:
    rules = [
        RuleSpec.model_validate(r)
        for r in ({"if": "false", "stop": True}, {"if": "false", "agent": "a"}, {"if": "1 / 0", "agent": "a"})
    ]
    with pytest.raises(RenderError) as failed:
        rule_decision(rules, {}, Renderer())
    assert str(failed.value).startswith("router.rules[2].if: expression '1 / 0': ")
    assert failed.value.yaml_path == ("router", "rules", 2, "if")
    assert failed.value.where == "router.rules[2].if"


def test_a_template_error_names_its_place_when_told() -> None:
    with pytest.raises(RenderError) as failed:
        Renderer().render("Hello {{ nobody.name }}", {}, ("agents", "triage", "system"))
    assert str(failed.value).startswith("agents.triage.system: template 'Hello {{ nobody.name }}': ")
    with pytest.raises(RenderError) as unplaced:  # a caller that gives no place reads as before
        Renderer().render("Hello {{ nobody.name }}", {})
    assert str(unplaced.value).startswith("template 'Hello {{ nobody.name }}': ") and unplaced.value.where == ""


def test_a_load_error_is_located_by_its_first_diagnostic() -> None:
    with pytest.raises(LoadError) as failed:
        load_text("a: 1\na: 2\n", "dup.yaml")
    assert failed.value.where.startswith("dup.yaml:2:1")


def test_usage_errors_exit_2_and_the_rest_1() -> None:
    assert exit_code(PathError("no such path")) == 2
    assert exit_code(RenderError("x")) == 1 and exit_code(StorageFault("f", OSError())) == 1


ROUTED = """name: rules
model: openai/gpt-4o-mini
agents:
  a: {description: d, system: hi}
router:
  rules:
    - {if: "call_count > 5", stop: true}
    - {if: "input == 'never'", agent: a}
    - {if: "(call_count / 0) > 1", agent: a}
  otherwise: stop
"""


def test_a_run_stopped_by_a_router_rule_says_which(netrun_cli: Callable[..., Result], tmp_path: Path) -> None:
    network = tmp_path / "rules.yaml"
    network.write_text(ROUTED)
    result = netrun_cli("run", str(network), "-i", "go", "--db", str(tmp_path / "runs.db"))
    assert result.exit_code == 1
    assert "router.rules[2].if: expression '(call_count / 0) > 1': division by zero" in result.output


def test_a_path_that_does_not_exist_is_a_usage_error_of_its_command(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    result = netrun_cli("validate", str(tmp_path / "missing"))
    assert result.exit_code == 2
    assert "validate [OPTIONS] [PATHS]..." in result.output  # the command's usage line, not the group's
    assert "Error: no such file or directory: " in result.output


def test_the_tree_in_the_errors_docstring_names_each_class_where_it_is_defined() -> None:
    """netrun/errors.py draws the tree with each class's module; a class that moves must
    move in the drawing too, and every exception kept outside the tree is named there."""
    import netrun.errors

    classes = _exception_classes()
    rows = re.findall(r"[├└]── (\w+).*?(?:engine|run|load|check|serve|cli)\s+([\w/]+\.py):", netrun.errors.__doc__ or "")
    assert len(rows) >= 15
    for name, module in rows:
        defined = classes[name].__module__.replace(".", "/").removeprefix("netrun/") + ".py"
        assert defined == module, f"{name}: the docstring says {module}, it is defined in {defined}"
    missing = sorted(name for name in OUTSIDE if f"``{name}``" not in (netrun.errors.__doc__ or ""))
    assert missing == [], f"kept outside the tree but not named in netrun/errors.py: {missing}"
