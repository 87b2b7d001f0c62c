"""``python`` tools: real modules written into temporary folders, called by runs whose model is
the fake OpenAI-compatible server over HTTP; ``netrun validate``'s checks; kill -9 of a real
``netrun run`` in the middle of a python call, then ``--resume`` (durability rule 6)."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import netrun

from .conftest import error_lines
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .interrupted import kill_during_effect_then_resume

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}

NETWORK = """\
name: {name}
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: {turns}
state: {{note: string}}
agents:
  a: {{description: calls, system: "go", tools: [{tools}]}}
router:
  rules: [{{if: "true", agent: a}}]
{function}tools:
{body}
"""


def network(folder: Path, llm: FakeLLM, tools: str, *, name: str = "py", turns: int = 1, function: str = "") -> Path:
    """Write a network whose agent ``a`` offers the python tools declared by ``tools`` (YAML lines)."""
    names = [line.split(":")[0].strip() for line in tools.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    path = folder / f"{name}.yaml"
    path.write_text(
        NETWORK.format(name=name, base=llm.base_url, turns=turns, tools=", ".join(names), body=tools, function=function)
    )
    return path


def module(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


USES_SECRET = '  ping: {http: {url: "https://example.com/", headers: {Authorization: "Bearer ${API_TOKEN}"}}}'
"""A tool (never called) that makes ``${API_TOKEN}`` one of the network's secrets."""


def run(path: Path, tmp_path: Path, **environ: str) -> netrun.RunResult:
    return netrun.run_sync(path, "hi", db=tmp_path / "runs.db", environ={**os.environ, **ENV, **environ})


def calls(result: netrun.RunResult) -> dict[str, tuple[Any, str | None]]:
    """Each tool call of the run's first turn: name -> (result, error)."""
    assert result.result is not None, result.error
    return {c["name"]: (c["result"], c["error"]) for c in result.result["results"][0]["tool_calls"]}


# -- calling functions ------------------------------------------------------------------------


def test_sync_and_async_functions_with_schemas_derived_from_their_hints(tmp_path: Path, llm: FakeLLM) -> None:
    module(
        tmp_path,
        "tools/maths.py",
        '''
        import asyncio, datetime, threading
        from typing import Literal
        from pydantic import BaseModel

        class Point(BaseModel):
            x: float
            y: float

        def add(a: int, b: int = 2) -> dict:
            """Adds two numbers.

            The rest of the docstring is not shown."""
            return {"sum": a + b, "main_thread": threading.current_thread() is threading.main_thread()}

        async def shift(p: Point, day: datetime.date, unit: Literal["m", "km"] = "m") -> dict:
            await asyncio.sleep(0)
            return {"x": p.x + 1, "weekday": day.isoweekday(), "unit": unit}
        ''',
    )
    path = network(tmp_path, llm, '  add: {python: "tools.maths:add"}\n  shift: {python: "tools.maths:shift"}')
    llm.push(
        Reply(
            tool_calls=[
                ToolCall("add", {"a": 3}),
                ToolCall("shift", {"p": {"x": 1, "y": 2}, "day": "2026-12-02"}),
            ]
        )
    )
    result = run(path, tmp_path)
    assert result.status == "completed", result.error
    assert calls(result) == {
        "add": ({"sum": 5, "main_thread": False}, None),  # a sync function runs in a thread
        "shift": ({"x": 2.0, "weekday": 3, "unit": "m"}, None),  # validated and converted by the hints
    }
    shown = {t["function"]["name"]: t["function"] for t in llm.requests[0]["tools"]}
    assert shown["add"]["description"] == "Adds two numbers."
    assert shown["add"]["parameters"] == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 2}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert shown["shift"]["parameters"] == {
        "type": "object",
        "$defs": {
            "Point": {
                "type": "object",
                "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                "required": ["x", "y"],
            }
        },
        "properties": {
            "p": {"$ref": "#/$defs/Point"},
            "day": {"type": "string", "format": "date"},
            "unit": {"enum": ["m", "km"], "type": "string", "default": "m"},
        },
        "required": ["p", "day"],
        "additionalProperties": False,
    }


def test_declared_parameters_are_what_the_model_sees_and_bad_arguments_are_its_to_hear(tmp_path: Path, llm: FakeLLM) -> None:
    module(tmp_path, "calc.py", "def twice(n):\n    return n * 2\n\ndef typed(n: int):\n    return n\n")
    tools = (
        '  twice: {python: "calc:twice", description: Doubles., parameters: {n: {type: integer}}}\n'
        '  typed: {python: "calc:typed"}'
    )
    path = network(tmp_path, llm, tools)
    llm.push(Reply(tool_calls=[ToolCall("twice", {"n": 21}), ToolCall("typed", {"n": "many"})]))
    result = run(path, tmp_path)
    twice = next(t["function"] for t in llm.requests[0]["tools"] if t["function"]["name"] == "twice")
    assert twice == {
        "name": "twice",
        "description": "Doubles.",
        "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    }
    assert calls(result)["twice"] == (42, None)
    assert calls(result)["typed"] == (None, "args.n: expected integer")  # checked against the shown schema


def test_the_context_argument_is_read_only_and_never_shown_to_the_model(tmp_path: Path, llm: FakeLLM) -> None:
    module(
        tmp_path,
        "ctxtools.py",
        """
        import netrun

        def who(tag: str, ctx: netrun.CallContext) -> dict:
            try:
                ctx.state["note"] = "changed"
                writable = True
            except TypeError:
                writable = False
            return {
                "tag": tag, "run": ctx.run_id, "step": ctx.step_id, "key": ctx.idempotency_key,
                "state": dict(ctx.state), "writable": writable, "input": ctx.input,
                "greeting": ctx.environ.get("GREETING"), "network": ctx.network,
            }

        def plain(ctx):
            return ctx.step_id
        """,
    )
    path = network(tmp_path, llm, '  who: {python: "ctxtools:who"}\n  plain: {python: "ctxtools:plain"}')
    llm.push(Reply(tool_calls=[ToolCall("who", {"tag": "t"}), ToolCall("plain", {})]))
    result = run(path, tmp_path, GREETING="hello")
    who, error = calls(result)["who"]
    assert error is None
    assert who["run"] == result.run_id and who["step"] == "turn.0.a.tool.0.who"
    assert len(who["key"]) == 32 and who["writable"] is False and who["state"] == {"note": None}
    assert (who["tag"], who["input"], who["greeting"], who["network"]) == ("t", "hi", "hello", "py")
    assert calls(result)["plain"] == ("turn.0.a.tool.1.plain", None)
    assert result.state == {"note": None}
    shown = {t["function"]["name"]: t["function"]["parameters"] for t in llm.requests[0]["tools"]}
    assert shown["who"]["properties"] == {"tag": {"type": "string"}}
    assert shown["plain"]["properties"] == {}


def test_what_goes_wrong_in_a_function_is_an_error_result_never_a_crash(tmp_path: Path, llm: FakeLLM) -> None:
    module(
        tmp_path,
        "bad.py",
        """
        import asyncio, datetime, sys, time

        def when():
            return {"at": [1, datetime.date(2026, 1, 1)]}

        def keys():
            return {1: "one"}

        def boom(token: str = ""):
            raise ValueError("no such order (token " + token + ")")

        def leaks(ctx):
            return {"token": ctx.environ["API_TOKEN"]}

        def hangs():
            time.sleep(30)  # its thread is a daemon: it does not hold up the test's exit

        async def hangs_async():
            await asyncio.sleep(30)

        def exits():
            sys.exit(3)

        def upstream():
            raise TimeoutError("the upstream timed out")
        """,
    )
    tools = (
        """\
  when: {python: "bad:when"}
  keys: {python: "bad:keys"}
  boom: {python: "bad:boom"}
  leaks: {python: "bad:leaks"}
  hangs: {python: {function: "bad:hangs", timeout: 300ms}}
  hangs_async: {python: {function: "bad:hangs_async", timeout: 300ms}}
  exits: {python: "bad:exits"}
  upstream: {python: "bad:upstream"}
"""
        + USES_SECRET
    )
    path = network(tmp_path, llm, tools)
    secret = "tok-9f8e7d6c5b4a"
    llm.push(
        Reply(
            tool_calls=[
                ToolCall("when", {}),
                ToolCall("keys", {}),
                ToolCall("boom", {"token": secret}),
                ToolCall("leaks", {}),
                ToolCall("hangs", {}),
                ToolCall("hangs_async", {}),
                ToolCall("exits", {}),
                ToolCall("upstream", {}),
            ]
        )
    )
    started = time.monotonic()
    result = run(path, tmp_path, API_TOKEN=secret)
    assert time.monotonic() - started < 10  # the hung thread did not hold the run
    assert result.status == "completed", result.error
    assert calls(result) == {
        "when": (None, "bad:when returned a value that is not JSON: result['at'][1] is a datetime.date"),
        "keys": (None, "bad:keys returned a value that is not JSON: result has a key of type int (JSON keys are strings)"),
        "boom": (None, "ValueError: no such order (token ***)"),
        "leaks": ({"token": "***"}, None),
        "hangs": (None, "bad:hangs did not return within 0.3 s (its thread runs on, as Python cannot stop a thread)"),
        "hangs_async": (None, "bad:hangs_async did not return within 0.3 s (it was cancelled)"),
        "exits": (None, "RuntimeError: the function raised SystemExit(3)"),
        "upstream": (None, "TimeoutError: the upstream timed out"),  # its own, not the tool's timeout
    }
    journal = (tmp_path / "runs.db").read_bytes()
    assert secret.encode() not in journal  # nor in any step's output or event


def test_retry_step_retries_the_step_then_tells_the_model(tmp_path: Path, llm: FakeLLM) -> None:
    module(
        tmp_path,
        "flaky.py",
        """
        from pathlib import Path
        import netrun

        def flaky(ctx: netrun.CallContext) -> str:
            tries = Path(__file__).with_name("tries.txt")
            with tries.open("a") as f:
                f.write(ctx.idempotency_key + "\\n")
            if len(tries.read_text().splitlines()) < 2:
                raise netrun.RetryStep("not yet", after=0.05)
            return "ok"

        def never():
            raise netrun.RetryStep("the service is down")
        """,
    )
    tools = '  flaky: {python: "flaky:flaky"}\n  never: {python: "flaky:never"}'
    path = network(tmp_path, llm, tools, function="function: {retries: 1}\n")
    llm.push(Reply(tool_calls=[ToolCall("flaky", {}), ToolCall("never", {})]))
    result = run(path, tmp_path)
    assert calls(result) == {
        "flaky": ("ok", None),
        "never": (None, "the service is down (after 2 attempts)"),
    }
    keys = (tmp_path / "tries.txt").read_text().splitlines()
    assert len(keys) == 2 and keys[0] == keys[1]  # the same step retried: the same idempotency key


def test_fail_run_fails_the_run_with_its_message_redacted(tmp_path: Path, llm: FakeLLM) -> None:
    module(
        tmp_path,
        "stop.py",
        """
        import netrun

        def stop(ctx):
            raise netrun.FailRun("ticket not found; token " + ctx.environ["API_TOKEN"])
        """,
    )
    path = network(tmp_path, llm, '  stop: {python: "stop:stop"}\n' + USES_SECRET, turns=3)
    llm.push(Reply(tool_calls=[ToolCall("stop", {})]))
    result = run(path, tmp_path, API_TOKEN="tok-0a1b2c3d4e")
    assert result.status == "failed"
    assert result.error == "tool stop failed the run: ticket not found; token ***"
    assert llm.count == 1  # no further turn


def test_networks_in_two_folders_each_import_their_own_module(tmp_path: Path, llm: FakeLLM) -> None:
    for folder in ("one", "two"):
        module(tmp_path / folder, "helpers.py", f"def name():\n    return {folder!r}\n")
        module(tmp_path / folder, "tools.py", "import helpers\n\ndef which():\n    return helpers.name()\n")
    results = []
    for folder in ("one", "two"):
        path = network(tmp_path / folder, llm, '  which: {python: "tools:which"}', name=folder)
        llm.push(Reply(tool_calls=[ToolCall("which", {})]))
        results.append(calls(run(path, tmp_path))["which"])
    assert results == [("one", None), ("two", None)]
    assert "tools" not in sys.modules and "helpers" not in sys.modules  # nothing leaks into the process


def test_a_module_that_cannot_be_imported_fails_the_run_naming_the_tool(tmp_path: Path, llm: FakeLLM) -> None:
    module(tmp_path, "broken.py", "raise ImportError('needs libfoo')\n\ndef f():\n    pass\n")
    path = network(tmp_path, llm, '  f: {python: "broken:f"}')
    result = run(path, tmp_path)
    assert result.status == "failed"
    assert result.error is not None
    assert "tool f: python: importing 'broken' raised ImportError: needs libfoo" in result.error
    assert llm.count == 0


# -- netrun validate ------------------------------------------------------------------------


INVALID = """\
name: bad
model: openai/x
agents:
  a: {description: d, system: go, tools: [t1, t2, t3, t4, t5, t6]}
tools:
  t1: {python: "tools.add"}
  t2: {python: "tool:add"}
  t3: {python: {function: "tools:ad"}}
  t4: {python: "json:dumpz"}
  t5: {python: "tools.sub:f"}
  t6: {python: "tools:lazy"}
"""


def test_validate_finds_modules_and_functions_without_running_them(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    ran = tmp_path / "ran.txt"
    write("tools.py", f"open({str(ran)!r}, 'w').write('imported')\n\ndef add(a: int): ...\nasync def sub(): ...\nlazy = add\n")
    path = write("bad.yaml", INVALID)
    result = netrun_cli("validate", "-q", str(path))
    assert result.exit_code == 1
    errors = error_lines(result)
    assert errors == [
        f"{path}:6:16: error: tools.t1.python: 'tools.add' is not 'package.module:function' (like tools.orders:lookup)",
        f"{path}:7:16: error: tools.t2.python: unknown module 'tool' (not in the network's folder nor installed); "
        "did you mean 'tools'? modules in the network's folder: tools",
        f"{path}:8:27: error: tools.t3.python.function: module 'tools' has no function 'ad'; did you mean 'add'? "
        "defined functions: add, sub",
        f"{path}:9:16: error: tools.t4.python: module 'json' has no function 'dumpz'; did you mean 'dump'? "
        "defined functions: detect_encoding, dump, dumps, load, loads",
        f"{path}:10:16: error: tools.t5.python: unknown module 'tools.sub': 'tools' is a module, not a package: "
        "it has no module 'sub'",
    ]
    assert not ran.exists()  # the module was read, never run


def test_validate_reads_packages_part_by_part_and_reports_a_syntax_error(
    netrun_cli: Callable[..., Result], write: Callable[[str, str], Path], tmp_path: Path
) -> None:
    write("pkg/__init__.py", "raise SystemExit('must not run')\n")
    write("pkg/orders.py", "from json import loads as lookup\nif True:\n    def cancel(): ...\n")
    write("pkg/broken.py", "def f(:\n")
    path = write(
        "ok.yaml",
        "name: ok\nmodel: openai/x\nagents:\n  a: {description: d, system: go, tools: [l, c, o, b]}\n"
        'tools:\n  l: {python: "pkg.orders:lookup"}\n  c: {python: "pkg.orders:cancel"}\n'
        '  o: {python: "pkg.order:x"}\n  b: {python: "pkg.broken:f"}\n',
    )
    result = netrun_cli("validate", "-q", str(path))
    errors = error_lines(result)
    assert errors == [
        f"{path}:8:15: error: tools.o.python: unknown module 'pkg.order': 'pkg' has no module 'order'; did you mean 'orders'?",
        f"{path}:9:15: error: tools.b.python: module 'pkg.broken' has a syntax error: invalid syntax (broken.py, line 1)",
    ]


# -- kill -9 in the middle of a python call, then resume (durability rule 6) ----------------


EFFECTS = """
from pathlib import Path

HERE = Path(__file__).parent

def first() -> str:
    with (HERE / "first.txt").open("a") as f:
        f.write("ran\\n")
    return "first done"

def effect() -> str:
    with (HERE / "effect.txt").open("a") as f:
        f.write("ran\\n")
    if (HERE / "block").exists():  # the first execution blocks here until it is killed
        import time
        time.sleep(120)
    return "effect done"
"""


@pytest.mark.parametrize("idempotent", [False, True])
def test_kill_9_during_a_python_call_then_resume(tmp_path: Path, idempotent: bool) -> None:
    module(tmp_path, "effects.py", EFFECTS)
    (tmp_path / "block").touch()
    script = [Reply(tool_calls=[ToolCall("first", {}), ToolCall("effect", {})]), Reply(text="done")]
    with FakeLLM(script) as llm:
        tools = f'  first: {{python: "effects:first"}}\n  effect: {{python: {{function: "effects:effect", idempotent: {str(idempotent).lower()}}}}}'
        network(tmp_path, llm, tools, turns=2)
        result, requests = kill_during_effect_then_resume(tmp_path, llm, "py.yaml", script, ENV)

    assert result["status"] == "completed"
    assert (tmp_path / "first.txt").read_text() == "ran\n"  # a completed step is never repeated
    told = {m.get("tool_call_id"): m["content"] for m in requests[-1]["messages"] if m["role"] == "tool"}
    effect_result = result["result"]["results"][0]["tool_calls"][1]
    if idempotent:
        assert (tmp_path / "effect.txt").read_text() == "ran\nran\n"  # run again: it is safe to
        assert effect_result["result"] == "effect done"
    else:
        assert (tmp_path / "effect.txt").read_text() == "ran\n"  # never run twice
        assert effect_result["error"] == (
            "the call of 'effect' was interrupted (netrun stopped while it ran), so it may or may not have run; "
            "it was not run again, as the tool is not declared idempotent. Check its effect before calling it again"
        )
        assert any("may or may not have run" in text for text in told.values())  # and the model is told


# -- on Inngest (the stand-in executor): RetryStep is Inngest's retry, FailRun fails the run ----


def test_on_inngest_retry_step_is_retried_by_inngest_and_fail_run_fails_the_run(tmp_path: Path) -> None:
    from .fakes.inngest_executor import StandInExecutor
    from .test_serve_inngest import serve

    module(
        tmp_path,
        "flow.py",
        """
        from pathlib import Path
        import netrun

        def flaky() -> str:
            tries = Path(__file__).with_name("tries.txt")
            with tries.open("a") as f:
                f.write("try\\n")
            if len(tries.read_text().splitlines()) < 2:
                raise netrun.RetryStep("not yet")
            return "ok"

        def stop():
            raise netrun.FailRun("no such ticket")
        """,
    )
    script = [Reply(tool_calls=[ToolCall("flaky", {})]), Reply(tool_calls=[ToolCall("stop", {})])]
    with StandInExecutor() as executor, FakeLLM(script) as llm:
        tools = '  flaky: {python: "flow:flaky"}\n  stop: {python: "flow:stop"}'
        network(tmp_path, llm, tools, turns=3, function="function: {retries: 1}\n")
        server = serve(tmp_path, executor)
        try:
            executor.sync(f"{server.url}/api/inngest")
            run = executor.run("netrun-py", {"name": "netrun/py.run", "data": {"input": "x"}})
        finally:
            server.stop()
        assert run.status == "failed"
        assert "tool stop failed the run: no such ticket" in run.error["message"]
        assert (tmp_path / "tries.txt").read_text() == "try\ntry\n"  # retried once by Inngest, then ok
        told = [m["content"] for m in llm.requests[1]["messages"] if m["role"] == "tool"]
        assert told == ['"ok"']


def test_a_sync_function_past_its_timeout_runs_on_in_its_thread_while_the_run_goes_on(tmp_path: Path, llm: FakeLLM) -> None:
    release = tmp_path / "release"
    module(
        tmp_path,
        "slow.py",
        f"""
        import time
        from pathlib import Path

        def stuck():
            deadline = time.monotonic() + 30
            while not Path({str(release)!r}).exists() and time.monotonic() < deadline:
                time.sleep(0.02)  # well past its timeout, until the test releases it
            return "late"
        """,
    )
    path = network(tmp_path, llm, '  stuck: {python: {function: "slow:stuck", timeout: 200ms}}', turns=2)
    llm.push(Reply(tool_calls=[ToolCall("stuck", {})]), Reply(text="went on"))
    started = time.monotonic()
    try:
        result = run(path, tmp_path)
        took = time.monotonic() - started
        alive = [t for t in threading.enumerate() if t.name == "netrun-python-stuck" and t.is_alive()]
    finally:
        release.touch()
    assert result.status == "completed", result.error
    assert took < 10  # the run did not wait for the thread
    assert result.output == "went on"  # the next turn ran while the thread was still stuck
    assert alive  # it ran past its timeout, in its own thread
    assert (
        calls(result)["stuck"][1] == "slow:stuck did not return within 0.2 s (its thread runs on, as Python cannot stop a thread)"
    )
    for thread in alive:
        thread.join(10)
        assert not thread.is_alive()
