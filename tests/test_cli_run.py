"""`netrun run` tells the truth: the trigger's input for --event, what --resume finds, how a
waiting run goes on, and --retry of a failed run (issue 11, item 8)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import Result

from .conftest import REPO

NETWORKS = REPO / "networks"

ASKING = """\
name: asking
model: scripted/asking.replies.yaml
max_iter: 4
state: {done: {type: boolean, default: false}}
agents:
  a: {description: asks, system: hi, tools: [ask, finish]}
router:
  rules: [{if: state.done, stop: true}, {if: "true", agent: a}]
tools:
  ask: {wait_for_event: {event: app/answer, timeout: 1h}, parameters: {question: {type: string}}}
  finish: {state: {done: true}}
"""

QUICK_DBA = {"text": "Use a role.", "tool_calls": [{"name": "save_dba_answer", "args": {"answer": "CREATE ROLE r"}}]}
QUICK_SECURITY = {
    "text": "Fine.",
    "tool_calls": [{"name": "save_security_answer", "args": {"answer": "NOLOGIN"}}, {"name": "finish", "args": {}}],
}


def run_id_of(result: Result) -> str:
    for line in result.output.splitlines():
        if line.startswith("▶ run "):
            return line.split()[2]
    raise AssertionError(f"no run id in:\n{result.output}")


def test_event_makes_the_input_with_the_triggers_template(netrun_cli: Callable[..., Result], tmp_path: Path) -> None:
    event = json.dumps({"name": "app/support.ticket.created", "data": {"title": "Export crashes", "ticketId": "T-1"}})
    result = netrun_cli(
        "run",
        str(NETWORKS / "support.yaml"),
        "--event",
        event,
        "--replay",
        str(NETWORKS / "support.replies.yaml"),
        "--json",
        "--db",
        str(tmp_path / "runs.db"),
    )
    assert json.loads(result.output)["input"] == "Export crashes"  # support.yaml: input: "{{ event.data.title }}"
    given = netrun_cli(
        "run",
        str(NETWORKS / "support.yaml"),
        "-i",
        "typed",
        "--event",
        event,
        "--replay",
        str(NETWORKS / "support.replies.yaml"),
        "--json",
        "--db",
        str(tmp_path / "runs.db"),
    )
    assert json.loads(given.output)["input"] == "typed"  # -i wins, as the REST API's "input" does


def test_event_that_the_template_cannot_read_asks_for_input(netrun_cli: Callable[..., Result], tmp_path: Path) -> None:
    event = json.dumps({"name": "app/support.ticket.created", "data": {"ticketId": "T-1"}})
    result = netrun_cli("run", str(NETWORKS / "support.yaml"), "--event", event, "--db", str(tmp_path / "runs.db"))
    assert result.exit_code == 2
    assert "cannot make the network input from this event with the trigger's input template" in result.output
    assert "give the input with -i" in result.output


def test_resume_of_an_unknown_run_creates_no_journal(netrun_cli: Callable[..., Result], tmp_path: Path) -> None:
    db = tmp_path / "nothing" / "runs.db"
    for option in ("--resume", "--retry"):
        result = netrun_cli("run", option, "run_nope", "--db", str(db))
        assert result.exit_code == 1
        assert f"no run run_nope: there is no run journal {db}" in result.output
    assert not db.parent.exists()


def test_a_waiting_run_says_how_it_goes_on(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    network = write("asking.yaml", ASKING)
    write(
        "asking.replies.yaml",
        yaml.safe_dump(
            {
                "a": [
                    {"tool_calls": [{"name": "ask", "args": {"question": "ok?"}}]},
                    {"text": "done", "tool_calls": [{"name": "finish", "args": {}}]},
                ]
            }
        ),
    )
    db = str(tmp_path / "runs.db")
    first = netrun_cli("run", str(network), "-i", "x", "--db", db)
    assert first.exit_code == 0, first.output
    run_id = run_id_of(first)
    again = netrun_cli("run", "--resume", run_id, "--db", db)  # still waiting: nothing ran, and it says what answers it
    assert again.exit_code == 0, again.output
    assert f"run {run_id} is waiting; it goes on when an event answers it:" in again.output
    assert f"netrun send app/answer --run {run_id} --data '{{...}}'" in again.output
    sent = netrun_cli("send", "app/answer", "--run", run_id, "--data", "{}", "--db", db)
    assert sent.exit_code == 0, sent.output
    done = netrun_cli("run", "--resume", run_id, "--db", db)
    assert done.exit_code == 0
    assert f"run {run_id} completed already" in done.output


def test_a_failed_run_is_retried_once_its_cause_is_fixed(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """The replies file lacks the security expert's reply: the run fails at that inference.
    --resume says so and names --retry; with the reply added, --retry runs the failed step
    again and keeps the completed one (the dba's reply, changed in the file since, is not asked again)."""
    replies = write("quick.replies.yaml", yaml.safe_dump({"dba": [QUICK_DBA]}))
    db = str(tmp_path / "runs.db")
    failed = netrun_cli("run", str(NETWORKS / "quickstart.yaml"), "-i", "read-only?", "--replay", str(replies), "--db", db)
    assert failed.exit_code == 1
    run_id = run_id_of(failed)
    resumed = netrun_cli("run", "--resume", run_id, "--db", db)
    assert resumed.exit_code == 1
    assert f"run {run_id} failed: " in resumed.output
    assert f"once its cause is fixed, retry it with: netrun run --retry {run_id}" in resumed.output
    changed = {**QUICK_DBA, "tool_calls": [{"name": "save_dba_answer", "args": {"answer": "ASKED AGAIN"}}]}
    replies.write_text(yaml.safe_dump({"dba": [changed], "security": [QUICK_SECURITY]}))
    retried = netrun_cli("run", "--retry", run_id, "--json", "--db", db)
    assert retried.exit_code == 0, retried.output
    out = json.loads(retried.output)
    assert (out["run_id"], out["status"]) == (run_id, "completed")
    assert out["result"]["route"] == ["dba", "security"]
    assert out["result"]["state"]["dba_answer"] == "CREATE ROLE r"  # memoized, not asked again
    assert out["result"]["state"]["security_answer"] == "NOLOGIN"
    twice = netrun_cli("run", "--retry", run_id, "--db", db)
    assert twice.exit_code == 1
    assert f"run {run_id} is completed, not failed: only a failed run can be retried" in twice.output


def _cancelled_waiting_run(netrun_cli: Callable[..., Result], write: Callable[[str, str], Path], db: Path) -> str:
    """A run of ASKING that waits for its answer, then is cancelled: its id."""
    from netrun.engines.local import Journal
    from netrun.engines.runner import LocalEngine

    network = write("asking.yaml", ASKING)
    write("asking.replies.yaml", yaml.safe_dump({"a": [{"tool_calls": [{"name": "ask", "args": {"question": "ok?"}}]}]}))
    run_id = run_id_of(netrun_cli("run", str(network), "-i", "x", "--db", str(db)))
    journal = Journal(db)
    try:
        LocalEngine(journal, {}).cancel(run_id, "not needed any more")
    finally:
        journal.close()
    return run_id


def test_resume_of_a_cancelled_run_says_so_and_fails(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    run_id = _cancelled_waiting_run(netrun_cli, write, db)
    resumed = netrun_cli("run", "--resume", run_id, "--db", str(db))
    assert resumed.exit_code == 1
    assert f"run {run_id} was cancelled (not needed any more); a cancelled run does not go on" in resumed.output
    retried = netrun_cli("run", "--retry", run_id, "--db", str(db))
    assert retried.exit_code == 1 and "is cancelled, not failed" in retried.output


def test_an_approval_for_a_cancelled_run_is_refused_as_for_an_ended_run(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    from netrun.engines.approvals import ApprovalError, resolve_approval
    from netrun.engines.local import Journal
    from netrun.runtime.approvals import APPROVAL_EVENT

    db = tmp_path / "runs.db"
    run_id = _cancelled_waiting_run(netrun_cli, write, db)
    journal = Journal(db)
    try:
        with pytest.raises(ApprovalError) as raised:
            resolve_approval(journal, APPROVAL_EVENT, {"approved": True}, run_id)
        refused = raised.value
    finally:
        journal.close()
    assert refused.status == 409 and f"run {run_id} has ended (cancelled)" in str(refused)


def test_an_empty_netrun_data_dir_means_the_default_for_run_serve_and_the_api(tmp_path: Path) -> None:
    """``NETRUN_DATA_DIR=`` (set, empty) is unset for every entry point: the journal is
    ``.netrun/runs.db`` (the CLI alone read it as the current folder once)."""
    import os
    import subprocess

    from netrun.api import default_db
    from netrun.serve.settings import ServeSettings

    from .conftest import NETRUN, REPO

    env = {**os.environ, "NETRUN_DATA_DIR": ""}
    done = subprocess.run(
        [
            NETRUN,
            "run",
            str(REPO / "networks/quickstart.yaml"),
            "-i",
            "x",
            "--replay",
            str(REPO / "networks/quickstart.replies.yaml"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".netrun" / "runs.db").exists() and not (tmp_path / "runs.db").exists()
    assert default_db({"NETRUN_DATA_DIR": ""}) == Path(".netrun/runs.db")
    assert ServeSettings.from_env({"NETRUN_DATA_DIR": ""}, (tmp_path,), engine="local").data_dir == Path(".netrun")
