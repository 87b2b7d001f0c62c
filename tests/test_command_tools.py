"""``command`` tools: real programs (``/bin/sh``, ``cat``, Python) run by runs whose model is
the fake OpenAI-compatible server over HTTP, with and without bubblewrap; ``netrun
validate``'s checks; kill -9 of a real ``netrun run`` in the middle of a command, then
``--resume`` (durability rule 6)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import netrun
from netrun.runtime.approvals import approval_id

from . import debian
from .conftest import error_lines, until
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .interrupted import kill_during_effect_then_resume

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
PY = sys.executable

NETWORK = """\
name: {name}
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: {turns}
agents:
  a: {{description: calls, system: "go", tools: [{tools}]}}
router:
  rules: [{{if: "true", agent: a}}]
tools:
{body}
"""

needs_bwrap = pytest.mark.skipif(
    not debian.has_bwrap(), reason="bubblewrap (bwrap) is not installed (apt-get install bubblewrap)"
)


def network(folder: Path, llm: FakeLLM, tools: str, *, name: str = "cmd", turns: int = 1) -> Path:
    """Write a network whose agent ``a`` offers the tools declared by ``tools`` (YAML lines)."""
    names = [line.split(":")[0].strip() for line in tools.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    path = folder / f"{name}.yaml"
    path.write_text(NETWORK.format(name=name, base=llm.base_url, turns=turns, tools=", ".join(names), body=tools))
    return path


def run(path: Path, tmp_path: Path, **environ: str) -> netrun.RunResult:
    return netrun.run_sync(path, "hi", db=tmp_path / "runs.db", environ={**os.environ, **ENV, **environ})


def calls(result: netrun.RunResult, turn: int = 0) -> list[tuple[Any, str | None]]:
    """Each tool call of one turn, in order: (result, error)."""
    assert result.result is not None, result.error
    return [(c["result"], c["error"]) for c in result.result["results"][turn]["tool_calls"]]


def one_call(
    tmp_path: Path, llm: FakeLLM, tool: str, args: dict[str, Any] | None = None, **environ: str
) -> tuple[Any, str | None]:
    """Run a network with the one tool ``t`` (its YAML after ``t: ``), called once with ``args``."""
    path = network(tmp_path, llm, f"  t: {tool}")
    llm.push(Reply(tool_calls=[ToolCall("t", args or {})]))
    result = run(path, tmp_path, **environ)
    assert result.status == "completed", result.error
    return calls(result)[0]


HOSTILE = ["; rm -rf /tmp/x", "$(touch pwned)", "`touch pwned`", "a b\tc", "'quoted' \"double\"", "$HOME", "*", "--help"]


def test_argv_items_are_single_literal_arguments(tmp_path: Path, llm: FakeLLM) -> None:
    tool = (
        '{command: {argv: ["' + PY + '", -c, "import json, sys; print(json.dumps(sys.argv[1:]))", "{{ args.a }}", '
        '"x{{ args.a }}y"]}, parameters: {a: {type: string}}}'
    )
    path = network(tmp_path, llm, f"  t: {tool}")
    llm.push(Reply(tool_calls=[ToolCall("t", {"a": a}) for a in HOSTILE]))
    result = run(path, tmp_path)
    for a, (res, error) in zip(HOSTILE, calls(result), strict=True):
        assert error is None
        assert json.loads(res["stdout"]) == [a, f"x{a}y"]
        assert res["exit_code"] == 0 and res["stderr"] == ""
    assert not (tmp_path / "pwned").exists()


def test_shell_true_quotes_every_inserted_value(tmp_path: Path, llm: FakeLLM) -> None:
    tool = "{command: {shell: true, argv: \"printf '%s|' {{ args.a }} && echo done\"}, parameters: {a: {type: string}}}"
    path = network(tmp_path, llm, f"  t: {tool}")
    llm.push(Reply(tool_calls=[ToolCall("t", {"a": a}) for a in HOSTILE]))
    result = run(path, tmp_path)
    for a, (res, error) in zip(HOSTILE, calls(result), strict=True):
        assert error is None
        assert res["stdout"] == f"{a}|done\n"  # one word, whatever it holds
    assert not (tmp_path / "pwned").exists()


def test_cwd_stdin_and_the_environment_allow_list(tmp_path: Path, llm: FakeLLM) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "here.txt").write_text("found")
    tool = (
        '{command: {argv: [/bin/sh, -c, "cat here.txt; echo; cat; echo; env | sort"], cwd: sub, '
        'stdin: "hello {{ args.who }}", env_pass: [PATH, KEEP_ME], env: {GREETING: "hi {{ args.who }}", '
        'TOKEN: "${CMD_TOKEN}"}}, parameters: {who: {type: string}}}'
    )
    res, error = one_call(
        tmp_path, llm, tool, {"who": "ann"}, KEEP_ME="kept", NOT_PASSED="hidden", CMD_TOKEN="s3cr3t-token-value"
    )
    assert error is None
    lines = res["stdout"].splitlines()
    assert lines[:2] == ["found", "hello ann"]
    env = dict(line.split("=", 1) for line in lines[2:])
    # KEEP_ME reached the command; its value is redacted from the output like a ${ENV} value's
    assert env["KEEP_ME"] == "***" and env["GREETING"] == "hi ann" and env["PATH"] == os.environ["PATH"]
    assert env["TOKEN"] == "***"  # the secret reached the command, and is redacted from what it printed
    assert "NOT_PASSED" not in env and "FAKE_LLM_KEY" not in env
    assert "s3cr3t-token-value" not in json.dumps(res)


def test_secrets_are_redacted_from_errors_the_journal_and_the_model(tmp_path: Path, llm: FakeLLM) -> None:
    tool = '{command: {argv: [/bin/sh, -c, "echo out $T; echo err $T >&2; exit 3", "${CMD_TOKEN}"], env: {T: "${CMD_TOKEN}"}}}'
    res, error = one_call(tmp_path, llm, tool, CMD_TOKEN="s3cr3t-token-value")
    assert res == {"exit_code": 3, "stdout": "out ***\n", "stderr": "err ***\n"}
    assert error == "the command exited with code 3\nstderr (end):\nerr ***\n\nstdout (end):\nout ***\n"
    journal = (tmp_path / "runs.db").read_bytes()
    assert b"s3cr3t-token-value" not in journal
    assert "s3cr3t-token-value" not in json.dumps(llm.requests)


def test_exit_codes_ok_codes_and_a_missing_program(tmp_path: Path, llm: FakeLLM) -> None:
    path = network(
        tmp_path,
        llm,
        "  grep: {command: {argv: [grep, -q, zzz, /dev/null], ok_codes: [0, 1]}}\n"
        "  fails: {command: {argv: [/bin/sh, -c, 'exit 2']}}\n"
        "  killed: {command: {argv: [/bin/sh, -c, 'kill -TERM $$']}}\n"
        "  missing: {command: {argv: [/no/such/program]}}",
    )
    llm.push(Reply(tool_calls=[ToolCall(n, {}) for n in ("grep", "fails", "killed", "missing")]))
    result = run(path, tmp_path)
    assert calls(result) == [
        ({"exit_code": 1, "stdout": "", "stderr": ""}, None),
        ({"exit_code": 2, "stdout": "", "stderr": ""}, "the command exited with code 2"),
        ({"exit_code": -15, "stdout": "", "stderr": ""}, "the command was killed by SIGTERM"),
        (None, "cannot run '/no/such/program': No such file or directory"),
    ]


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path, llm: FakeLLM) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pids}; echo started; wait"
    res, error = one_call(tmp_path, llm, f'{{command: {{argv: [/bin/sh, -c, "{script}"], timeout: 1s}}}}')
    assert error == "the command did not finish within 1 s: it was killed\nstdout (end):\nstarted\n"
    assert res["exit_code"] == -9 and res["stdout"] == "started\n"
    child = int(pids.read_text())
    until("the background child is gone too", lambda: not _alive(child), timeout=5)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_100_mb_of_output_is_cut_at_the_cap_with_bounded_memory(tmp_path: Path, llm: FakeLLM) -> None:
    printer = "import sys; b = b'x' * 1048576\nfor _ in range(100): sys.stdout.buffer.write(b)\nsys.stderr.write('e' * 10)"
    tool = '{command: {argv: ["' + PY + '", -c, "' + printer.replace("\n", "\\n") + '"], max_bytes: 1000}}'
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res, error = one_call(tmp_path, llm, tool)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert error is None
    assert res["stdout"] == "x" * 1000 + f"\n[... {100 * 1048576 - 1000} more bytes cut: the output cap (max_bytes) is 1000]"
    assert res["stderr"] == "e" * 10
    assert grown_mb < 50  # 100 MB went through, never held


# -- bubblewrap ------------------------------------------------------------------------------


@pytest.fixture
def port_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that answers ``pong`` to each connection."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


CONNECT = "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2); print(s.recv(4).decode())"


@needs_bwrap
def test_the_sandbox_has_no_network_unless_allowed(tmp_path: Path, llm: FakeLLM, port_server: int) -> None:
    argv = f'[/usr/bin/python3, -c, "{CONNECT}", "{port_server}"]'
    path = network(
        tmp_path,
        llm,
        f"  plain: {{command: {{argv: {argv}}}}}\n"
        f"  boxed: {{command: {{argv: {argv}, sandbox: true}}}}\n"
        f"  online: {{command: {{argv: {argv}, sandbox: {{network: true}}}}}}",
    )
    llm.push(Reply(tool_calls=[ToolCall(n, {}) for n in ("plain", "boxed", "online")]))
    (plain, _), (boxed, boxed_error), (online, _) = calls(run(path, tmp_path))
    assert plain["stdout"] == "pong\n"
    assert boxed["exit_code"] == 1 and boxed["stdout"] == ""
    assert "ConnectionRefusedError" in boxed["stderr"] or "OSError" in boxed["stderr"], boxed["stderr"]
    assert boxed_error is not None and boxed_error.startswith("the command exited with code 1")
    assert online["stdout"] == "pong\n"  # network: true shares the host's network


@needs_bwrap
def test_the_sandbox_writes_only_its_work_folder_which_lasts_for_the_run(tmp_path: Path, llm: FakeLLM) -> None:
    outside = tmp_path / "outside.txt"
    write = (
        f'{{command: {{argv: [/bin/sh, -c, "pwd; echo $1 >> notes.txt; cat notes.txt; touch {outside} /usr/x /etc/x '
        f'2>/dev/null; echo rc=$?; ls /tmp", sh, "{{{{ args.line }}}}"], sandbox: true}}, parameters: {{line: {{type: string}}}}}}'
    )
    fresh = '{command: {argv: [/bin/sh, -c, "ls; echo new > f"], sandbox: {work: call}}}'
    path = network(tmp_path, llm, f"  write: {write}\n  fresh: {fresh}", turns=2)
    script = [
        Reply(tool_calls=[ToolCall("write", {"line": "one"}), ToolCall("fresh", {})]),
        Reply(tool_calls=[ToolCall("write", {"line": "two"}), ToolCall("fresh", {})]),
    ]
    llm.push(*script)
    first = run(path, tmp_path)
    assert [c[0]["stdout"] for c in calls(first, 0)] == ["/work\none\nrc=1\n", ""]
    assert [c[0]["stdout"] for c in calls(first, 1)] == ["/work\none\ntwo\nrc=1\n", ""]  # the run's folder, kept
    assert not outside.exists() and not Path("/usr/x").exists()
    folder = tmp_path / "work" / first.run_id
    assert (folder / "notes.txt").read_text() == "one\ntwo\n"
    assert not (folder / "f").exists()  # work: call wrote in a folder of its own, gone since

    llm.push(*script)
    second = run(path, tmp_path)
    assert calls(second, 0)[0][0]["stdout"] == "/work\none\nrc=1\n"  # another run, another folder
    assert second.run_id != first.run_id


@needs_bwrap
def test_read_only_folders_are_readable_at_their_paths_and_nothing_else_of_the_host(tmp_path: Path, llm: FakeLLM) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("shared\n")
    (tmp_path / "private.txt").write_text("hidden")
    docs = tmp_path / "docs"
    script = f"cat {docs}/readme.txt; touch {docs}/new 2>/dev/null || echo read-only; cat {tmp_path}/private.txt 2>&1 || true"
    res, error = one_call(tmp_path, llm, f'{{command: {{argv: [/bin/sh, -c, "{script}"], sandbox: {{read_only: [docs]}}}}}}')
    assert error is None
    assert res["stdout"].splitlines() == ["shared", "read-only", f"cat: {tmp_path}/private.txt: No such file or directory"]
    assert not (docs / "new").exists()


@needs_bwrap
def test_a_timeout_in_the_sandbox_kills_everything_inside(tmp_path: Path, llm: FakeLLM) -> None:
    marker = "61.25"  # a sleep nothing else on the machine runs: found in /proc while it lives
    tool = f'{{command: {{argv: [/bin/sh, -c, "sleep {marker} & sleep {marker}"], timeout: 1s, sandbox: true}}}}'
    res, error = one_call(tmp_path, llm, tool)
    assert error == "the command did not finish within 1 s: it was killed" and res["exit_code"] == -9
    until("no process of the sandbox is left", lambda: not _running(marker), timeout=5)


def _running(marker: str) -> list[int]:
    """The live processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker.encode() in cmdline and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_a_sandbox_without_bubblewrap_is_an_error_result(tmp_path: Path, llm: FakeLLM) -> None:
    res, error = one_call(tmp_path, llm, "{command: {argv: [/bin/true], sandbox: true}}", PATH=str(tmp_path))
    assert res is None
    assert error == (
        "the command asks for a sandbox, but bubblewrap (bwrap) is not installed on the machine that runs it "
        "(install it: apt install bubblewrap)"
    )


@needs_bwrap
def test_an_approval_gated_command_runs_only_once_approved(tmp_path: Path, llm: FakeLLM) -> None:
    tools = (
        '  write: {command: {argv: [/bin/sh, -c, "echo $1 > $1.txt; ls", sh, "{{ args.name }}"], sandbox: true}, '
        "approval: required, parameters: {name: {type: string}}}"
    )
    path = network(tmp_path, llm, tools, turns=2)
    llm.push(Reply(tool_calls=[ToolCall("write", {"name": "kept"}), ToolCall("write", {"name": "refused"})]), Reply(text="ok"))

    async def scenario() -> tuple[netrun.RunResult, netrun.RunResult]:
        async with netrun.Runs(tmp_path / "runs.db", environ={**os.environ, **ENV}) as runs:
            waiting = await runs.start(path, "go")
            assert waiting.status == "waiting"
            assert not (tmp_path / "work" / waiting.run_id / "kept.txt").exists()  # nothing ran yet
            for i, approved in enumerate((True, False)):  # the first call approved, the second rejected
                ident = approval_id(waiting.run_id, f"turn.0.a.tool.{i}.write")
                await runs.send("netrun/approval", {"approval_id": ident, "approved": approved}, run_id=waiting.run_id)
            return waiting, await runs.resume(waiting.run_id)

    waiting, done = asyncio.run(scenario())
    assert done.status == "completed", done.error
    (kept, kept_error), (refused, refused_error) = calls(done)
    assert kept_error is None and kept["stdout"] == "kept.txt\n"
    assert refused is None and refused_error == "rejected by a human; the tool did not run"
    assert sorted(p.name for p in (tmp_path / "work" / waiting.run_id).iterdir()) == ["kept.txt"]


# -- netrun validate ---------------------------------------------------------------------------

INVALID = """\
name: bad
model: openai/x
agents:
  a: {description: d, system: go, tools: [t1, t2, t3, t4, t5, t6, t7, t8, t9]}
tools:
  t1: {command: {argv: "ls -la"}}
  t2: {command: {argv: [ls, "{{ args.x }}"], shell: true}, parameters: {x: {type: string}}}
  t3: {command: {argv: []}}
  t4: {command: {argv: [ls], cwd: sub, sandbox: true}}
  t5: {command: {argv: [ls], sandbox: {read_only: [/tmp, /dev/shm], netwrk: true}}}
  t6: {command: {argv: [ls, "{{ args.y }}"], stdin: "{{ state.nope }}", env: {"A=B": x}, env_pass: [PATH, 1X]}}
  t7: {command: {argv: 5, timout: 5s}}
  t8: {command: {argv: [ls], cwd: nowhere, sandbox: {read_only: [/, /dev/shm]}}}
  t9: {command: {argv: "curl -H 'Authorization: ${TOKEN}' x", shell: true}}
"""


def test_validate_reports_each_bad_command_where_it_is(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path]
) -> None:
    path = write("bad.yaml", INVALID)
    result = netrun_cli("validate", "-q", str(path))
    assert result.exit_code == 1
    errors = error_lines(result)
    assert errors == [
        f"{path}:6:24: error: tools.t1.command.argv: argv is a list of arguments, each one template "
        "([grep, -rn, '{{ args.pattern }}']); one string is a shell script, run only with shell: true",
        f"{path}:7:46: error: tools.t2.command.shell: shell: true runs argv as one string (the script, its inserted "
        "values shell-quoted); write argv as one string, or drop shell: true to pass the list as arguments",
        f"{path}:8:24: error: tools.t3.command.argv: must not be empty",
        f"{path}:9:30: error: tools.t4.command.cwd: a sandboxed command runs in its work folder, /work: cwd is not "
        "used with sandbox (mount more folders with sandbox.read_only)",
        f"{path}:10:69: error: tools.t5.command.sandbox.netwrk: unknown field 'netwrk'; did you mean 'network'? "
        "allowed: network, read_only, work",
        f"{path}:11:38: error: tools.t6.command.argv[1]: args has no field 'y'; no parameters are defined",
        f"{path}:11:63: error: tools.t6.command.stdin: state has no field 'nope'; no state fields are defined",
        f"{path}:11:79: error: tools.t6.command.env['A=B']: 'A=B' is not an environment variable name "
        "(letters, digits and '_', not starting with a digit)",
        f"{path}:11:107: error: tools.t6.command.env_pass[1]: '1X' is not an environment variable name "
        "(letters, digits and '_', not starting with a digit)",
        f"{path}:12:24: error: tools.t7.command.argv: argv is a list of arguments (or, with shell: true, one string)",
        f"{path}:12:27: error: tools.t7.command.timout: unknown field 'timout'; did you mean 'timeout'? allowed: argv, "
        "cwd, env, env_pass, idempotent, max_bytes, ok_codes, sandbox, shell, stdin, timeout",
        f"{path}:13:30: error: tools.t8.command.cwd: a sandboxed command runs in its work folder, /work: cwd is not "
        "used with sandbox (mount more folders with sandbox.read_only)",
        f"{path}:13:66: error: tools.t8.command.sandbox.read_only[0]: '/' (/) would hide the sandbox's own /work: "
        "mount a folder beside it",
        f"{path}:13:69: error: tools.t8.command.sandbox.read_only[1]: '/dev/shm' (/dev/shm) is inside the "
        "sandbox's own /dev or /proc: mount a folder beside it",
        f"{path}:14:24: error: tools.t9.command.argv: a shell script may not hold ${{ENV}} references (the shell would "
        'read their values as code): set them in env (env: {TOKEN: ${TOKEN}}) and write "$TOKEN" in the script',
    ]


def test_validate_warns_of_a_missing_cwd_and_of_a_sandbox_without_bubblewrap(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(
        "warn.yaml",
        "name: warn\nmodel: openai/x\nagents:\n  a: {description: d, system: go, tools: [t1, t2, t3]}\n"
        "tools:\n  t1: {command: {argv: [ls], cwd: nowhere}}\n  t2: {command: {argv: [ls], sandbox: true}}\n"
        '  t3: {command: {argv: ["{{ args.p }}", x]}, parameters: {p: {type: string}}}\n',
    )
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    result = netrun_cli("validate", str(path))
    warnings = [line for line in result.output.splitlines() if ": warning: " in line]
    assert warnings == [
        f"{path}:6:35: warning: tools.t1.command.cwd: cwd 'nowhere' is not a folder (relative to the network file) yet",
        f"{path}:7:30: warning: tools.t2.command.sandbox: sandbox needs bubblewrap (bwrap), which is not installed "
        "here: install it where the network runs (apt install bubblewrap), or its calls get an error result",
        f"{path}:8:25: warning: tools.t3.command.argv[0]: argv[0] is a template: whoever writes its values (the model) "
        "chooses the program to run; write the program literally and pass values as arguments",
    ]
    assert result.exit_code == 0


def test_validate_warns_when_a_read_only_folder_would_show_secrets_or_the_journal(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path]
) -> None:
    path = write(
        "exposed.yaml",
        "name: exposed\nmodel: openai/x\nagents:\n  a: {description: d, system: go, tools: [t]}\n"
        "tools:\n  t: {command: {argv: [ls], sandbox: {read_only: [.]}}}\n",
    )
    (path.parent / ".env").write_text("TOKEN=x\n")
    (path.parent / ".netrun").mkdir(exist_ok=True)
    result = netrun_cli("validate", str(path))
    warnings = [line for line in result.output.splitlines() if "sandbox-exposes" in line or "could read" in line]
    assert warnings == [
        f"{path}:6:51: warning: tools.t.command.sandbox.read_only[0]: '.' holds .env and .netrun, which the sandboxed "
        "command could read (secrets; netrun's journal and other runs' work folders): mount a folder that holds only "
        "what it needs"
    ]


# -- kill -9 in the middle of a command, then resume (durability rule 6) ----------------------


@pytest.mark.parametrize("idempotent", [False, True])
def test_kill_9_during_a_command_then_resume(tmp_path: Path, idempotent: bool) -> None:
    (tmp_path / "block").touch()
    # The first execution blocks until the test removes `block` (after killing netrun: an
    # unsandboxed command outlives a netrun killed with -9, so it must end by itself).
    effect = "echo ran >> effect.txt; while [ -e block ]; do sleep 0.05; done; echo effect done"
    script = [Reply(tool_calls=[ToolCall("first", {}), ToolCall("effect", {})]), Reply(text="done")]
    with FakeLLM(script) as llm:
        tools = (
            '  first: {command: {argv: [/bin/sh, -c, "echo ran >> first.txt; echo first done"]}}\n'
            f'  effect: {{command: {{argv: [/bin/sh, -c, "{effect}"], idempotent: {str(idempotent).lower()}}}}}'
        )
        network(tmp_path, llm, tools, turns=2)
        result, requests = kill_during_effect_then_resume(tmp_path, llm, "cmd.yaml", script, ENV)

    assert result["status"] == "completed"
    assert (tmp_path / "first.txt").read_text() == "ran\n"  # a completed step is never repeated
    effect_result = result["result"]["results"][0]["tool_calls"][1]
    told = {m.get("tool_call_id"): m["content"] for m in requests[-1]["messages"] if m["role"] == "tool"}
    if idempotent:
        assert (tmp_path / "effect.txt").read_text() == "ran\nran\n"  # run again: it is safe to
        assert effect_result["result"]["stdout"] == "effect done\n"
    else:
        assert (tmp_path / "effect.txt").read_text() == "ran\n"  # never run twice
        assert effect_result["error"].startswith("the call of 'effect' was interrupted (netrun stopped while it ran)")
        assert any("may or may not have run" in text for text in told.values())  # and the model is told


def test_a_shell_script_never_runs_an_inserted_value_whatever_its_quotes(tmp_path: Path, llm: FakeLLM) -> None:
    """Values reach a ``shell: true`` script through environment variables, not its text: inside
    double quotes (where ``shlex.quote``'s single quotes were plain characters and ``$(...)``
    in a value ran) and in a here-document alike (there, the shell reads no quotes: the value
    comes out inside the double quotes netrun writes; ``stdin:`` is the way to pass text);
    inside single quotes a value is refused."""
    double = '{command: {shell: true, argv: "echo \\"[{{ args.a }}]\\""}, parameters: {a: {type: string}}}'
    heredoc = '{command: {shell: true, argv: "cat <<END\\n{{ args.a }}\\nEND"}, parameters: {a: {type: string}}}'
    single = "{command: {shell: true, argv: \"echo '{{ args.a }}'\"}, parameters: {a: {type: string}}}"
    path = network(tmp_path, llm, f"  double: {double}\n  heredoc: {heredoc}\n  single: {single}")
    hostile = "$(touch pwned) `touch pwned` \\\" ' $HOME"
    llm.push(Reply(tool_calls=[ToolCall(t, {"a": hostile}) for t in ("double", "heredoc", "single")]))
    (d, d_err), (h, h_err), (s, s_err) = calls(run(path, tmp_path))
    assert d_err is None and d["stdout"] == f"[{hostile}]\n"
    assert h_err is None and h["stdout"] == f'"{hostile}"\n'
    assert s is None and s_err is not None and "inside '...'" in s_err
    assert not (tmp_path / "pwned").exists()


def test_variables_env_pass_lets_through_are_redacted_like_env_references(tmp_path: Path, llm: FakeLLM) -> None:
    tool = '{command: {argv: [/bin/sh, -c, "echo $MY_TOKEN $LANG"], env_pass: [PATH, MY_TOKEN, LANG]}}'
    path = network(tmp_path, llm, f"  t: {tool}")
    llm.push(Reply(tool_calls=[ToolCall("t", {})]))
    [(res, error)] = calls(run(path, tmp_path, MY_TOKEN="sk-live-abcdef123456", LANG="C.UTF-8"))
    assert error is None and res["stdout"] == "*** C.UTF-8\n"  # LANG is no secret
    assert "sk-live-abcdef123456" not in (tmp_path / "runs.db").read_bytes().decode("utf-8", "replace")


@needs_bwrap
def test_a_sandboxed_command_has_no_capabilities_even_when_netrun_is_root(tmp_path: Path, llm: FakeLLM) -> None:
    """As root (the CI machine), bwrap keeps nearly every capability unless told: a command
    could remount its read-only folders writable. Inside the sandbox there are none."""
    shared = tmp_path / "shared"
    shared.mkdir()
    script = "grep CapEff /proc/self/status; mount -o remount,bind,rw {d} {d} 2>/dev/null; echo x > {d}/escaped; true"
    tool = f'{{command: {{argv: [/bin/sh, -c, "{script.format(d=shared)}"], sandbox: {{read_only: [{shared}]}}}}}}'
    path = network(tmp_path, llm, f"  t: {tool}")
    llm.push(Reply(tool_calls=[ToolCall("t", {})]))
    [(res, error)] = calls(run(path, tmp_path))
    assert error is None and res["stdout"].split() == ["CapEff:", "0000000000000000"]
    assert not (shared / "escaped").exists()


def test_a_command_runs_in_a_session_of_its_own_and_a_timeout_kills_only_its_group(tmp_path: Path, llm: FakeLLM) -> None:
    # setsid: the command leads its own session and process group, so the timeout's killpg
    # reaches everything it started (a grandchild too) and nothing of netrun's own group.
    ids, grandchild = tmp_path / "ids", tmp_path / "grandchild"
    script = f"cut -d' ' -f5,6 /proc/$$/stat > {ids}; (sleep 61.5 & echo $! > {grandchild}; wait) & echo up; wait"
    res, error = one_call(tmp_path, llm, f'{{command: {{argv: [/bin/sh, -c, "{script}"], timeout: 1s}}}}')
    assert error is not None and error.startswith("the command did not finish within 1 s: it was killed")
    assert res["exit_code"] == -9
    pgid, sid = (int(x) for x in ids.read_text().split())
    assert pgid == sid  # a session leader (setsid) ...
    assert pgid not in (os.getpgrp(), os.getsid(0))  # ... not of the test's own session or group
    until("the grandchild of the timed-out command is gone", lambda: not _alive(int(grandchild.read_text())), timeout=5)
    assert _alive(os.getpid())


@needs_bwrap
def test_a_work_call_folder_is_deleted_after_a_timeout(tmp_path: Path, llm: FakeLLM) -> None:
    import tempfile
    import uuid

    marker = f"marker-{uuid.uuid4().hex}"
    tool = f'{{command: {{argv: [/bin/sh, -c, "echo x > /work/{marker}; sleep 30"], timeout: 1500ms, sandbox: {{work: call}}}}}}'
    path = network(tmp_path, llm, f"  t: {tool}")
    llm.push(Reply(tool_calls=[ToolCall("t", {})]))
    tmp = Path(tempfile.gettempdir())

    def folders() -> list[Path]:  # the call's own folder, told from other tests' by the marker
        return [p.parent for p in tmp.glob(f"netrun-work-*/{marker}")]

    done: list[netrun.RunResult] = []
    runner = threading.Thread(target=lambda: done.append(run(path, tmp_path)))
    runner.start()
    seen = until("the call's work folder holds its file", folders, timeout=20)
    runner.join(30)
    assert done and done[0].status == "completed", done and done[0].error
    ((_, error),) = calls(done[0])
    assert error is not None and "did not finish within 1.5 s" in error
    assert not any(folder.exists() for folder in seen)  # deleted after the timeout's kill
