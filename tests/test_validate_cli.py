"""`netrun validate` as users and CI run it: exit codes, formats, many files, secrets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
    path = write(
        "n.yaml", VALID.format(name="n").replace("tools", "x") + "    tools: [serch]\ntools:\n  search: {state: {x: 1}}\n"
    )
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
            "file": str(path),
            "line": 3,
            "col": 3,
            "path": "agents.a",
            "severity": "error",
            "phase": "check",
            "code": "no-model",
            "message": "agent 'a' has no model, and the network sets no default 'model'",
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
    caller = write(
        "caller.yaml",
        VALID.format(name="caller").replace("system: hi", "system: hi\n    tools: [h, g]")
        + "tools:\n  h: {network: helper}\n  g: {network: {name: helpr}}\n",
    )
    result = netrun_cli("validate", "-q", str(caller))  # only this file, as pre-commit passes it
    assert result.output.splitlines() == [
        f"{caller}:10:23: error: tools.g.network.name: unknown network 'helpr'; did you mean 'helper'? defined networks: caller, helper",
        "1 error in 1 of 1 file",
    ]


def test_errors_inside_included_fragments_point_into_the_fragment(netrun_cli, write) -> None:
    write("shared/tools.fragment.yaml", "tools:\n  note:\n    state: {nothere: '{{ args.x }}'}\n")
    net = write(
        "net.yaml",
        VALID.format(name="net").replace("system: hi", "system: hi\n    tools: [note]")
        + "include: [shared/tools.fragment.yaml]\n",
    )
    result = netrun_cli("validate", "-q", str(net))
    frag = net.parent / "shared/tools.fragment.yaml"
    assert (
        f"{frag}:3:13: error: tools.note.state.nothere: state has no field 'nothere'; no state fields are defined (declare it under 'state:')"
        in result.output
    )
    assert f"{frag}:3:31: error: tools.note.state.nothere: args has no field 'x'; no parameters are defined" in result.output


def test_literal_secrets_never_appear_in_any_format(netrun_cli, write) -> None:
    secret = "sk-live-9f8e7d6c5b4a"
    path = write(
        "s.yaml",
        f"name: s\nmodel: {{id: gpt-4o, api_key: {secret}}}\nagents:\n  a: {{system: hi}}\n"
        f"tools:\n  t:\n    http: {{url: 'https://x', headers: {{Authorization: Bearer {secret}}}, timeout: 1 minute}}\n",
    )
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
    assert (
        alone.exit_code == 1
        and f"{b}:6:19: error: tools.to_a.network: network tools call each other in a cycle: b -> a -> b" in alone.output
    )


def test_a_file_validated_alone_reports_cycles_through_its_siblings_fragments_and_yml_files(netrun_cli, write) -> None:
    """The cycle goes through a fragment's tool, a `{name, input}` reference, a `.yml` file,
    a network whose name differs from its partner's only by case, and a sibling with an
    unrelated error; each file of it, validated alone, reports it."""
    a = write(
        "a.yml",
        "name: a\nmodel: openai/x\ninclude: [shared.fragment.yaml]\nagents:\n  x: {description: d, system: hi, tools: [to_b]}\n",
    )
    shared = write("shared.fragment.yaml", "tools:\n  to_b: {network: {name: B, input: '{{ args.input }}'}}\n")
    b = write("B.yaml", _tool_network("B", "A").replace("system: hi", "system: hi, model: 5"))
    big_a = write("A.yaml", _tool_network("A", "a"))
    write("unrelated.yaml", _tool_network("u", "a"))  # reaches the cycle, is not on it
    for path, where, chain in (
        (a, f"{shared}:2:26: error: tools.to_b.network.name", "a -> B -> A -> a"),
        (b, f"{b}:6:19: error: tools.to_A.network", "B -> A -> a -> B"),
        (big_a, f"{big_a}:6:19: error: tools.to_a.network", "A -> a -> B -> A"),
    ):
        result = netrun_cli("validate", "-q", str(path))
        assert result.exit_code == 1, result.output
        assert (
            f"{where}: network tools call each other in a cycle: {chain} (each run would start the next without end)"
            in result.output
        )
    assert netrun_cli("validate", "-q", str(a.parent / "unrelated.yaml")).exit_code == 0


def test_a_network_calling_itself_is_an_error_showing_the_chain(netrun_cli, write) -> None:
    path = write("s.yaml", _tool_network("s", "s"))
    result = netrun_cli("validate", "-q", str(path))
    assert result.exit_code == 1
    assert (
        f"{path}:6:19: error: tools.to_s.network: network 's' calls itself as a tool: s -> s (each run would start the next without end)"
        in result.output
    )


def test_an_event_that_triggers_a_network_sending_it_again_is_a_warning(netrun_cli, write) -> None:
    loop = "  ping: {event: {name: app/ping}}\ntrigger: {event: app/ping}\n"
    a = write("a.yaml", _tool_network("a", "b").replace("tools: [to_b]", "tools: [to_b, ping]") + loop)
    b = write(
        "b.yaml",
        "name: b\nmodel: openai/x\nagents:\n  a: {description: d, system: hi, tools: [pong]}\n"
        "tools:\n  pong: {event: {name: app/pong}}\n",
    )
    c = write(
        "c.yaml",
        "name: c\nmodel: openai/x\ntrigger: {event: app/pong}\nagents:\n  a: {description: d, system: hi, tools: [back]}\n"
        "tools:\n  back: {event: {name: app/ping}}\n",
    )
    write(
        "quiet.yaml",
        "name: quiet\nmodel: openai/x\nagents:\n  a: {description: d, system: hi, tools: [t]}\n"
        "tools:\n  t: {event: {name: 'app/{{ args.kind }}'}, parameters: {kind: {type: string}}}\n",
    )
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


def _deep(style: str, depth: int = 600) -> str:
    """``agents:`` holding a value nested ``depth`` levels, written in ``style``."""
    if style == "flow list":
        return "[" * depth + "]" * depth
    if style == "flow mapping":
        return "{a: " * depth + "1" + "}" * depth
    if style == "block mapping":
        return "".join("\n" + "  " * (i + 1) + "a:" for i in range(depth)) + " 1"
    return "".join("\n" + "  " * (i + 1) + "-" for i in range(depth)) + " x"  # block sequence


# The first node past the limit (101 levels below the top): where each style puts it.
_DEEP_AT = {"flow list": "2:109", "flow mapping": "2:409", "block mapping": "103:203", "block sequence": "103:203"}


@pytest.mark.parametrize("style", list(_DEEP_AT))
def test_a_file_nested_600_levels_is_a_located_error_not_a_traceback(write, style: str) -> None:
    """600 levels is under libyaml's own limit; netrun's walks would hit Python's recursion limit."""
    path = write("deep.yaml", f"name: deep\nagents: {_deep(style)}\n")
    done = subprocess.run([NETRUN, "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert f"{path}:{_DEEP_AT[style]}: error: agents: nested deeper than 100 levels" in done.stdout


def test_deep_nesting_inside_an_included_fragment_is_located_in_the_fragment(netrun_cli, write) -> None:
    frag = write("shared/deep.fragment.yaml", f"prompts:\n  p: {_deep('flow list')}\n")
    net = write("net.yaml", VALID.format(name="net") + "include: [shared/deep.fragment.yaml]\n")
    result = netrun_cli("validate", "-q", str(net))
    assert result.exit_code == 1
    assert f"{frag}:2:105: error: prompts: nested deeper than 100 levels" in result.output
    # The fragment validated on its own says the same, once per file.
    result = netrun_cli("validate", "-q", str(net.parent))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.count(f"{frag}:2:105: error: prompts: nested deeper than 100 levels") == 2


def test_aliases_that_nest_deeper_than_the_limit_are_a_located_error(netrun_cli, write) -> None:
    chain = "".join(f"x{i}: &x{i} [*x{i - 1}]\n" for i in range(1, 300))
    path = write("alias.yaml", VALID.format(name="alias") + "x0: &x0 [x]\n" + chain)
    result = netrun_cli("validate", "-q", str(path))
    assert result.exit_code == 1
    assert f"{path}:7:10: error: x99: nested deeper than 100 levels" in result.output


def test_nesting_up_to_the_limit_validates_in_every_phase(write) -> None:
    """Schemas, bodies and state defaults 100 levels deep go through the spec, the checks and
    the templates without reaching Python's recursion limit."""
    from netrun.validate import validate_paths

    schema = "{type: string}"
    for _ in range(47):  # tools.t.parameters.q (4 levels) + 2 per object level: the leaf type at 99
        schema = "{type: object, properties: {p: " + schema + "}}"
    body = "{a: " * 96 + '"{{ args.q }}"' + "}" * 96  # tools.t.http.body is at level 4: the leaf at 100
    path = write(
        "edge.yaml",
        VALID.format(name="edge").replace("system: hi", "system: hi\n    tools: [t]")
        + f"tools:\n  t:\n    parameters: {{q: {schema}}}\n    http: {{url: 'http://127.0.0.1/', method: POST, body: {body}}}\n",
    )
    (result,) = validate_paths([path]).files
    assert [d.message for d in result.diagnostics] == []
    assert result.spec is not None


SECRET_LINE = "PRIVATE-7f3a: the first line of a file outside the folder"


def test_a_fragment_linked_to_a_file_outside_the_folder_is_refused_without_its_contents(netrun_cli, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text(SECRET_LINE + "\nagents: {}\n")
    (outside / "real.fragment.yaml").write_text(SECRET_LINE + "\n")
    nets = tmp_path / "nets"
    nets.mkdir()
    (nets / "leak.fragment.yaml").symlink_to(outside / "secret.yaml")
    (nets / "net.yaml").write_text(VALID.format(name="net") + "include: [leak.fragment.yaml, ../outside/real.fragment.yaml]\n")
    for fmt in ("human", "json", "github"):
        result = netrun_cli("validate", "--format", fmt, str(nets))
        assert result.exit_code == 1
        assert "PRIVATE-7f3a" not in result.output, fmt
    result = netrun_cli("validate", str(nets))
    assert (
        f"{nets / 'leak.fragment.yaml'}:1:1: error: '{nets / 'leak.fragment.yaml'}' resolves outside the validated folder ({nets}); files outside it are not read"
        in result.output
    )
    assert (
        f"{nets / 'net.yaml'}:7:11: error: include[0]: included file 'leak.fragment.yaml' resolves outside the validated folder ({nets}); "
        "files outside it are not read"
    ) in result.output
    assert (
        f"{nets / 'net.yaml'}:7:31: error: include[1]: included file '../outside/real.fragment.yaml' resolves outside"
        in result.output
    )


def test_a_fragment_included_by_a_fragment_and_by_a_network_defines_its_names_once(netrun_cli, write) -> None:
    """The cached fragment stays as written: including it again does not see its includes twice."""
    write("a.fragment.yaml", "include: [b.fragment.yaml]\nprompts: {pa: hi}\n")
    write("b.fragment.yaml", "prompts: {pb: hi}\n")
    net = write("net.yaml", VALID.format(name="net") + "include: [a.fragment.yaml]\n")
    result = netrun_cli("validate", "-q", str(net.parent))
    assert result.exit_code == 0, result.output


def test_includes_chained_deeper_than_the_limit_are_a_located_error(netrun_cli, write) -> None:
    from netrun.includes import MAX_INCLUDE_DEPTH

    for i in range(600):
        write(
            f"f{i}.fragment.yaml",
            f"include: [f{i + 1}.fragment.yaml]\nprompts: {{p{i}: hi}}\n" if i < 599 else "prompts: {last: hi}\n",
        )
    net = write("net.yaml", VALID.format(name="net") + "include: [f0.fragment.yaml]\n")
    result = netrun_cli("validate", "-q", str(net))
    assert result.exit_code == 1
    last = net.parent / f"f{MAX_INCLUDE_DEPTH - 1}.fragment.yaml"
    assert result.output.splitlines()[0] == (
        f"{last}:1:11: error: include[0]: includes nested deeper than {MAX_INCLUDE_DEPTH} files: 'f{MAX_INCLUDE_DEPTH}.fragment.yaml' is not read"
    )


def test_a_file_over_the_size_limit_is_one_located_error(netrun_cli, write) -> None:
    from netrun.includes import MAX_BYTES

    path = write("huge.yaml", "name: huge\n# " + "x" * MAX_BYTES + "\n")
    result = netrun_cli("validate", str(path))
    assert result.exit_code == 1, result.output
    assert f"huge.yaml:1:1: error: the file is larger than {MAX_BYTES // 1_000_000} MB" in result.output
    assert "Traceback" not in result.output
