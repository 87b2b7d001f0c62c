"""`netrun validate` as users and CI run it: exit codes, formats, many files, secrets."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import NETRUN, REPO

VALID = "name: {name}\nmodel: openai/gpt-4o-mini\nagents:\n  a:\n    description: d\n    system: hi\n"


def test_valid_file_exits_0(netrun_cli, write) -> None:
    path = write("ok.yaml", VALID.format(name="ok"))
    result = netrun_cli("validate", str(path))
    assert result.exit_code == 0
    assert result.output.strip() == "1 file valid"


def test_usage_errors_exit_2(netrun_cli, tmp_path) -> None:
    missing = netrun_cli("validate", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2
    assert "no such file or directory" in missing.output
    assert netrun_cli("validate", "--format", "xml", "networks").exit_code == 2
    assert netrun_cli("validate", str(tmp_path)).exit_code == 2  # a directory with no network files


def test_every_error_of_every_file_is_reported(netrun_cli, write) -> None:
    write("a.yaml", "name: a\nmodel: openai/x\nagents:\n  a: {system: '{{ nope }}', tools: [missing]}\n")
    b = write("b.yaml", "name: b\nagents: {}\n")
    result = netrun_cli("validate", "-q", str(b.parent))
    lines = result.output.splitlines()
    assert result.exit_code == 1
    assert any(line.startswith(f"{b.parent}/a.yaml:4:19: error: agents.a.system: undefined variable 'nope'") for line in lines)
    assert any(line.startswith(f"{b.parent}/a.yaml:4:37: error: agents.a.tools[0]: unknown tool 'missing'") for line in lines)
    assert f"{b.parent}/b.yaml:2:9: error: agents: must not be empty" in lines
    assert lines[-1] == "3 errors, 1 warning in 2 of 2 files"


def test_human_format_prints_the_source_line_and_a_caret(netrun_cli, write) -> None:
    path = write("n.yaml", VALID.format(name="n").replace("tools", "x") + "    tools: [serch]\ntools:\n  search: {state: {x: 1}}\n")
    result = netrun_cli("validate", str(path))
    assert result.output.splitlines()[:3] == [
        f"{path}:7:13: error: agents.a.tools[0]: unknown tool 'serch'; did you mean 'search'? defined tools: search",
        "     7 |     tools: [serch]",
        "       |             ^",
    ]


def test_warnings_pass_unless_strict(netrun_cli, write) -> None:
    path = write("w.yaml", VALID.format(name="w") + "tools:\n  unused: {state: {x: 1}}\nstate: {x: integer}\n")
    ok = netrun_cli("validate", "-q", str(path))
    assert ok.exit_code == 0
    assert "warning: tools.unused: tool 'unused' is not used by any agent" in ok.output
    assert netrun_cli("validate", "--strict", str(path)).exit_code == 1


def test_json_format(netrun_cli, write) -> None:
    path = write("j.yaml", "name: j\nagents:\n  a: {system: hi}\n")
    result = netrun_cli("validate", "--format", "json", str(path))
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert report["errors"] == 1
    assert [d for d in report["diagnostics"] if d["severity"] == "error"] == [
        {
            "file": str(path), "line": 3, "col": 3, "path": "agents.a", "severity": "error", "phase": "check",
            "code": "no-model", "message": "agent 'a' has no model, and the network sets no default 'model'",
        }
    ]


def test_github_format(netrun_cli, write) -> None:
    path = write("g.yaml", VALID.format(name="g") + "max_iter: 0\n")
    result = netrun_cli("validate", "--format", "github", str(path))
    assert result.output.splitlines()[0] == (
        f"::error file={path},line=7,col=11,title=netrun spec%3A out-of-range::max_iter: must be greater than 0, got 0"
    )


def test_network_names_are_unique_across_files(netrun_cli, write) -> None:
    write("one.yaml", VALID.format(name="same"))
    two = write("two.yaml", VALID.format(name="same"))
    result = netrun_cli("validate", "-q", str(two.parent))
    assert f"{two}:1:7: error: name: network name 'same' is already used by {two.parent}/one.yaml:1:7" in result.output


def test_network_tools_refer_to_networks_beside_them(netrun_cli, write) -> None:
    write("helper.yaml", VALID.format(name="helper"))
    caller = write("caller.yaml", VALID.format(name="caller").replace("system: hi", "system: hi\n    tools: [h, g]")
                   + "tools:\n  h: {network: helper}\n  g: {network: {name: helpr}}\n")
    result = netrun_cli("validate", "-q", str(caller))  # only this file, as pre-commit passes it
    assert result.output.splitlines() == [
        f"{caller}:10:23: error: tools.g.network.name: unknown network 'helpr'; did you mean 'helper'? defined networks: caller, helper",
        "1 error in 1 of 1 file",
    ]


def test_errors_inside_included_fragments_point_into_the_fragment(netrun_cli, write) -> None:
    write("shared/tools.fragment.yaml", "tools:\n  note:\n    state: {nothere: '{{ args.x }}'}\n")
    net = write("net.yaml", VALID.format(name="net").replace("system: hi", "system: hi\n    tools: [note]") + "include: [shared/tools.fragment.yaml]\n")
    result = netrun_cli("validate", "-q", str(net))
    frag = net.parent / "shared/tools.fragment.yaml"
    assert f"{frag}:3:13: error: tools.note.state.nothere: state has no field 'nothere'; no state fields are defined (declare it under 'state:')" in result.output
    assert f"{frag}:3:31: error: tools.note.state.nothere: args has no field 'x'; no parameters are defined" in result.output


def test_literal_secrets_never_appear_in_any_format(netrun_cli, write) -> None:
    secret = "sk-live-9f8e7d6c5b4a"
    path = write("s.yaml", f"name: s\nmodel: {{id: gpt-4o, api_key: {secret}}}\nagents:\n  a: {{system: hi}}\n"
                 f"tools:\n  t:\n    http: {{url: 'https://x', headers: {{Authorization: Bearer {secret}}}, timeout: 1 minute}}\n")
    for fmt in ("human", "json", "github"):
        result = netrun_cli("validate", "--format", fmt, str(path))
        assert result.exit_code == 1
        assert "api_key must be an ${ENV} reference" in result.output
        assert secret not in result.output, fmt


def test_validate_imports_nothing_heavy(write) -> None:
    path = write("ok.yaml", VALID.format(name="ok"))
    code = (
        "import sys\nfrom netrun.cli import main\n"
        f"try:\n    main(['validate', {str(path)!r}])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in ('litellm', 'mcp', 'fastapi', 'inngest', 'openai', 'httpx') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_and_console_script(write) -> None:
    path = write("ok.yaml", VALID.format(name="ok"))
    for cmd in ([sys.executable, "-m", "netrun"], [NETRUN]):
        out = subprocess.run([*cmd, "validate", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "1 file valid"


def _tool_network(name: str, *calls: str, extra: str = "") -> str:
    tools = "".join(f"  to_{c}: {{network: {c}}}\n" for c in calls)
    return f"name: {name}\nmodel: openai/x\nagents:\n  a: {{description: d, system: hi, tools: [{', '.join(f'to_{c}' for c in calls)}]}}\ntools:\n{tools}{extra}"


def test_networks_calling_each_other_in_a_cycle_are_an_error_at_the_tool_that_closes_it(netrun_cli, write) -> None:
    a = write("a.yaml", _tool_network("a", "b"))
    b = write("b.yaml", _tool_network("b", "a"))
    write("c.yaml", _tool_network("c", "d"))
    write("d.yaml", _tool_network("d", "e"))
    e = write("e.yaml", _tool_network("e", "c"))
    result = netrun_cli("validate", "-q", str(a.parent))
    assert result.exit_code == 1
    assert [line for line in result.output.splitlines() if ": error: " in line] == [
        f"{b}:6:19: error: tools.to_a.network: network tools call each other in a cycle: a -> b -> a (each run would start the next without end)",
        f"{e}:6:19: error: tools.to_c.network: network tools call each other in a cycle: c -> d -> e -> c (each run would start the next without end)",
    ]
    # Validated alone (pre-commit, `netrun validate FILE`), a file still closes the cycle
    # through the files beside it: its tools run them at run time.
    alone = netrun_cli("validate", "-q", str(b))
    assert alone.exit_code == 1 and f"{b}:6:19: error: tools.to_a.network: network tools call each other in a cycle: b -> a -> b" in alone.output


def test_a_file_validated_alone_reports_cycles_through_its_siblings_fragments_and_yml_files(netrun_cli, write) -> None:
    """The cycle goes through a fragment's tool, a `{name, input}` reference, a `.yml` file,
    a network whose name differs from its partner's only by case, and a sibling with an
    unrelated error; each file of it, validated alone, reports it."""
    a = write("a.yml", "name: a\nmodel: openai/x\ninclude: [shared.fragment.yaml]\nagents:\n  x: {description: d, system: hi, tools: [to_b]}\n")
    shared = write("shared.fragment.yaml", "tools:\n  to_b: {network: {name: B, input: '{{ args.input }}'}}\n")
    b = write("B.yaml", _tool_network("B", "A").replace("system: hi", "system: hi, model: 5"))
    big_a = write("A.yaml", _tool_network("A", "a"))
    write("unrelated.yaml", _tool_network("u", "a"))  # reaches the cycle, is not on it
    for path, where, chain in ((a, f"{shared}:2:26: error: tools.to_b.network.name", "a -> B -> A -> a"),
                               (b, f"{b}:6:19: error: tools.to_A.network", "B -> A -> a -> B"),
                               (big_a, f"{big_a}:6:19: error: tools.to_a.network", "A -> a -> B -> A")):
        result = netrun_cli("validate", "-q", str(path))
        assert result.exit_code == 1, result.output
        assert f"{where}: network tools call each other in a cycle: {chain} (each run would start the next without end)" in result.output
    assert netrun_cli("validate", "-q", str(a.parent / "unrelated.yaml")).exit_code == 0


def test_a_network_calling_itself_is_an_error_showing_the_chain(netrun_cli, write) -> None:
    path = write("s.yaml", _tool_network("s", "s"))
    result = netrun_cli("validate", "-q", str(path))
    assert result.exit_code == 1
    assert f"{path}:6:19: error: tools.to_s.network: network 's' calls itself as a tool: s -> s (each run would start the next without end)" in result.output


def test_an_event_that_triggers_a_network_sending_it_again_is_a_warning(netrun_cli, write) -> None:
    loop = "  ping: {event: {name: app/ping}}\ntrigger: {event: app/ping}\n"
    a = write("a.yaml", _tool_network("a", "b").replace("tools: [to_b]", "tools: [to_b, ping]") + loop)
    b = write("b.yaml", "name: b\nmodel: openai/x\nagents:\n  a: {description: d, system: hi, tools: [pong]}\n"
                    "tools:\n  pong: {event: {name: app/pong}}\n")
    c = write("c.yaml", "name: c\nmodel: openai/x\ntrigger: {event: app/pong}\nagents:\n  a: {description: d, system: hi, tools: [back]}\n"
                        "tools:\n  back: {event: {name: app/ping}}\n")
    write("quiet.yaml", "name: quiet\nmodel: openai/x\nagents:\n  a: {description: d, system: hi, tools: [t]}\n"
                        "tools:\n  t: {event: {name: 'app/{{ args.kind }}'}, parameters: {kind: {type: string}}}\n")
    result = netrun_cli("validate", "-q", str(a.parent))
    assert result.exit_code == 0  # a trigger's `if` may stop the loop: the run-time limit is the defence
    warnings = [line for line in result.output.splitlines() if ": warning: " in line]
    assert warnings == [
        f"{a}:7:24: warning: tools.ping.event.name: the event app/ping starts network 'a', whose runs send it again: a -> a; "
        "runs would start each other until limits.depth refuses (unless a trigger's 'if' stops them)",
        f"{b}:6:24: warning: tools.pong.event.name: the event app/pong starts network 'c', whose runs send it again: b -> c -> a -> b; "
        "runs would start each other until limits.depth refuses (unless a trigger's 'if' stops them)",
        f"{c}:7:24: warning: tools.back.event.name: the event app/ping starts network 'a', whose runs send it again: c -> a -> b -> c; "
        "runs would start each other until limits.depth refuses (unless a trigger's 'if' stops them)",
    ]
