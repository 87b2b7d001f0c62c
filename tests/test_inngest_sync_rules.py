"""`netrun validate` refuses what the Inngest server refuses at sync (issue 12, items 1 and 5).

Each rule follows the Go source named in netrun/check/inngest_rules.py (github.com/inngest/
inngest: pkg/inngest/function.go, trigger.go, concurrency.go, pkg/sdk/function.go,
pkg/expressions/validation.go, pkg/consts/consts.go). For each: a file that breaks it gets the
located error (code, YAML path, line), and the boundary value passes. The run limits (1,000
steps, 4 MB a step output) are warnings with the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from netrun.diagnostics import Diagnostic
from netrun.expressions.cel import to_cel
from netrun.expressions.cel_policy import functions, restrictive_violations
from netrun.validate import validate_paths

BASE = "name: n\nmodel: openai/gpt-4o-mini\nagents:\n  a: {description: d, system: hi}\n"

Write = Callable[[str, str], Path]


def diagnostics(write: Write, text: str) -> list[Diagnostic]:
    return validate_paths([write("n.yaml", text)]).diagnostics


def only(write: Write, text: str, code: str) -> list[Diagnostic]:
    """The diagnostics of ``code``; every other problem of the file is a test mistake."""
    found = diagnostics(write, text)
    others = [d for d in found if d.code != code]
    assert not others, [f"{d.pos.line}:{d.pos.col} {d.code} {d.message}" for d in others]
    return [d for d in found if d.code == code]


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the nth line holding ``needle``."""
    rows = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return rows[nth - 1]


def clean(write: Write, text: str) -> None:
    found = diagnostics(write, text)
    assert found == [], [f"{d.pos.line}:{d.pos.col} {d.code} {d.message}" for d in found]


# -- triggers (trigger.go MultipleTriggers.Validate) ---------------------------------------


def triggers(n: int) -> str:
    return BASE + "trigger:\n" + "".join(f"  - {{event: app/e{i}}}\n" for i in range(n))


def test_ten_triggers_pass_and_eleven_are_refused(write: Write) -> None:
    clean(write, triggers(10))
    text = triggers(11)
    [d] = only(write, text, "too-many-triggers")
    assert d.where == "trigger[10]" and d.pos.line == line_of(text, "app/e10") and d.severity == "error"
    assert "at most 10 triggers" in d.message and "has 11" in d.message


def test_the_same_event_twice_is_a_duplicate_trigger_whatever_its_input(write: Write) -> None:
    text = BASE + "trigger:\n  - {event: app/a}\n  - {event: app/a, input: 'other {{ event.data.x }}'}\n"
    [d] = only(write, text, "duplicate-trigger")
    assert d.where == "trigger[1]" and d.pos.line == 7 and "trigger[0]" in d.message


def test_the_same_event_with_another_if_is_another_trigger(write: Write) -> None:
    clean(write, BASE + "trigger:\n  - {event: app/a, if: event.data.x == 1}\n  - {event: app/a, if: event.data.x == 2}\n")


def test_ifs_that_translate_to_the_same_cel_are_duplicates(write: Write) -> None:
    text = BASE + "trigger:\n  - {event: app/a, if: 'event.data.x==1'}\n  - {event: app/a, if: 'event.data.x  ==  1'}\n"
    [d] = only(write, text, "duplicate-trigger")
    assert d.where == "trigger[1]" and d.pos.line == 7


def test_the_same_cron_twice_is_a_duplicate_trigger(write: Write) -> None:
    text = BASE + "trigger:\n  - {cron: '0 9 * * *'}\n  - {cron: '0 10 * * *'}\n  - {cron: '0 9 * * *', input: again}\n"
    [d] = only(write, text, "duplicate-trigger")
    assert d.where == "trigger[2]" and d.pos.line == 8 and "cron '0 9 * * *'" in d.message


def test_an_event_name_of_255_bytes_passes_and_256_is_refused(write: Write) -> None:
    name = "app/" + "x" * 251
    clean(write, BASE + f"trigger: {{event: {name}}}\n")
    text = BASE + f"trigger:\n  event: {name}x\n"
    [d] = only(write, text, "event-name-too-long")
    assert d.where == "trigger.event" and d.pos.line == 6 and "256 bytes" in d.message


def test_an_event_name_is_measured_in_bytes_as_go_does(write: Write) -> None:
    text = BASE + "trigger:\n  event: app/" + "é" * 126 + "\n"  # 130 characters, 256 bytes
    [d] = only(write, text, "event-name-too-long")
    assert d.pos.line == 6


def cron(length: int) -> str:
    minutes, hours = ",".join(map(str, range(60))), ",".join(map(str, range(24)))
    text = f"{minutes} {hours} 1,1,1"  # 235 characters before the last two fields
    pad = length - len(text) - len(" * *")
    text += ",10" + ",1" * ((pad - 3) // 2) if pad % 2 else ",1" * (pad // 2)
    return text + " * *"


def test_a_cron_of_255_characters_passes_and_256_is_refused(write: Write) -> None:
    assert (len(cron(255)), len(cron(256))) == (255, 256)
    clean(write, BASE + f"trigger: {{cron: '{cron(255)}'}}\n")
    text = BASE + f"trigger:\n  cron: '{cron(256)}'\n"
    [d] = only(write, text, "cron-too-long")
    assert d.where == "trigger.cron" and d.pos.line == 6


# -- cancel (function.go Validate) ------------------------------------------------------------


def cancels(n: int, cond: str | None = None) -> str:
    rows = "".join(f"    - {{event: app/stop{i}}}\n" for i in range(n))
    if cond is not None:
        rows = f'    - event: app/stop\n      if: "{cond}"\n'
    return BASE + "function:\n  cancel:\n" + rows


def test_four_cancels_pass_and_five_are_refused(write: Write) -> None:
    """Inngest takes 5 and netrun adds one to every function (POST /runs/{id}/cancel)."""
    clean(write, cancels(4))
    text = cancels(5)
    [d] = only(write, text, "too-many-cancels")
    assert d.where == "function.cancel[4]" and d.pos.line == line_of(text, "app/stop4") and "at most 4 here" in d.message


@pytest.mark.parametrize(
    ("cond", "needle", "what"),
    [
        ("async.data.user is defined", "defined", "'has'"),
        ("async.data.user is not defined", "defined", "'has'"),
        ("event.data.version + 1 == async.data.version", "+", "arithmetic '+'"),
        ("async.data.version == -event.data.version", "-", "negation"),
        ("async.data.n * 2 > 3", "*", "arithmetic '*'"),
    ],
)
def test_a_cancel_if_outside_the_restrictive_policy_is_refused(write: Write, cond: str, needle: str, what: str) -> None:
    text = cancels(0, cond)
    [d] = only(write, text, "cancel-if-policy")
    row = text.splitlines()[d.pos.line - 1]
    assert d.where == "function.cancel[0].if" and d.pos.line == line_of(text, "if:") and d.severity == "error"
    assert row[d.pos.col - 1 :].startswith(needle), (row, d.pos.col)
    assert what in d.message and f"`{to_cel(cond)}`" in d.message and "==, !=" in d.message


@pytest.mark.parametrize(
    "cond",
    [
        "async.data.id == event.data.id and not async.data.test",
        "async.data.kind not in ['a', 'b'] or async.data['n'] >= 2.5",
        "async.data.level < 3 and async.data.flag != true and async.data.v == none",
        # A negative number is a CEL literal (netrun writes `-1`, never the negation `-(1)`).
        "async.data.version == -1 or async.data.ratio > -0.5",
    ],
)
def test_a_cancel_if_inside_the_policy_passes(write: Write, cond: str) -> None:
    clean(write, cancels(0, cond))


def test_trigger_if_and_keys_only_compile_so_has_and_arithmetic_pass_there(write: Write) -> None:
    # trigger.go and concurrency.go compile these without a policy: only cancel.if is restricted.
    clean(
        write,
        BASE + "trigger: {event: app/a, if: event.data.user is defined and event.data.n + 1 > 2}\n"
        "function:\n  concurrency: [{limit: 2, key: event.data.a + event.data.b}]\n  priority: {run: -event.data.p}\n",
    )


# -- concurrency (concurrency.go StepConcurrency.Validate) ---------------------------------------


@pytest.mark.parametrize("scope", ["env", "account"])
def test_a_shared_concurrency_limit_needs_a_key(write: Write, scope: str) -> None:
    text = BASE + f"function:\n  concurrency:\n    - {{limit: 5}}\n    - {{limit: 2, scope: {scope}}}\n"
    [d] = only(write, text, "concurrency-key-required")
    assert d.where == "function.concurrency[1].scope" and d.pos.line == 8 and f"scope '{scope}'" in d.message
    clean(write, text.replace(f"scope: {scope}", f"scope: {scope}, key: event.data.account"))


def test_a_function_scoped_concurrency_limit_needs_no_key(write: Write) -> None:
    clean(write, BASE + "function:\n  concurrency: [{limit: 2, scope: fn}]\n")


# -- idempotency is a rate limit (pkg/sdk/function.go) ----------------------------------------------


def test_idempotency_replaces_a_rate_limit_with_a_warning(write: Write) -> None:
    text = BASE + "function:\n  idempotency: event.data.id\n  rate_limit: {limit: 5, period: 1h}\n"
    [d] = only(write, text, "idempotency-replaces-rate-limit")
    assert d.severity == "warning" and d.where == "function.rate_limit" and d.pos.line == 7
    clean(write, BASE + "function:\n  idempotency: event.data.id\n")
    clean(write, BASE + "function:\n  rate_limit: {limit: 5, period: 1h}\n")


# -- periods and retries (function.go RateLimit.IsValid and Validate; pkg/sdk/function.go) --------


@pytest.mark.parametrize(
    ("section", "ok", "bad"),
    [
        ("rate_limit: {limit: 1, period: %s}", ["1s", "24h"], ["24h1s", "2d"]),
        ("debounce: {period: %s}", ["1s", "7d"], ["7d1s", "500ms"]),
    ],
)
def test_flow_control_periods_are_bounded_as_inngest_bounds_them(
    write: Write, section: str, ok: list[str], bad: list[str]
) -> None:
    for value in ok:
        clean(write, BASE + "function:\n  " + section % value + "\n")
    for value in bad:
        text = BASE + "function:\n  " + section % value + "\n"
        [d] = only(write, text, "out-of-range")
        assert d.where == f"function.{section.split(':')[0]}.period" and d.pos.line == 6


def test_retries_are_at_most_twenty(write: Write) -> None:
    clean(write, BASE + "function: {retries: 20}\n")
    [d] = only(write, BASE + "function:\n  retries: 21\n", "out-of-range")
    assert d.where == "function.retries" and d.pos.line == 6 and d.phase == "spec"


# -- the restrictive policy, on the CEL as the server parses it ------------------------------------


def test_the_policy_reads_cel_as_cel_go_does() -> None:
    assert functions("-1 == async.x") == ["_==_"]  # a negative literal, not a negation
    assert functions("-(1) == async.x") == ["-_", "_==_"]
    assert functions("has(async.x) && a[1] in [1, 2]") == ["has", "_[_]", "@in", "_&&_"]
    assert [v.function for v in restrictive_violations("x.all(y, y > 1) || size(x) > 0")] == ["all", "size"]
    assert restrictive_violations('int(async.n) == 1 ? true : {"a": 1}.a == 1') == []
    with pytest.raises(ValueError):
        functions("a ==")


# -- item 5: Inngest's run limits, as warnings ------------------------------------------------------


def test_a_run_of_more_than_1000_steps_gets_a_warning_with_the_sum(write: Write) -> None:
    # LLM routing: 1 (netrun.definition) + max_iter x (1 routing call + 1 inference).
    clean(write, BASE + "max_iter: 499\n")
    text = BASE + "max_iter: 500\n"
    [d] = only(write, text, "too-many-steps")
    assert d.severity == "warning" and d.where == "max_iter" and d.pos.line == 5
    assert "up to 1,001 Inngest steps" in d.message
    assert "1 (netrun.definition) + 500 turns × 2 steps of agent 'a' (1 routing call + 1 inference) = 1,001" in d.message


def test_rule_routing_takes_no_steps_and_limits_iterations_is_located(write: Write) -> None:
    rules = "router: {otherwise: a}\n"
    clean(write, BASE + rules + "limits: {iterations: 999}\n")
    text = BASE + rules + "limits:\n  iterations: 1000\n"
    [d] = only(write, text, "too-many-steps")
    assert d.where == "limits.iterations" and d.pos.line == 7 and "= 1,001" in d.message


def test_tool_calls_approvals_and_threads_are_counted(write: Write) -> None:
    tools = (
        "tools:\n  ask: {state: {x: 1}, approval: required}\n  b: {state: {x: 2}}\nstate: {x: integer}\n"
        "history: {window: {tokens: 1000}}\nrouter: {otherwise: a}\n"
    )
    agent = "  a: {description: d, system: hi, tools: [ask, b], limits: {tool_calls: 3}}\n"
    # 1 + 2 (thread) + turns x (1 inference + 3 tool calls + 3 approvals + 1 thread append) = 3 + 8 x turns
    text = BASE.replace("  a: {description: d, system: hi}\n", agent) + tools + "max_iter: %d\n"
    clean(write, text % 124)  # 995
    [d] = only(write, text % 125, "too-many-steps")  # 1,003
    assert "= 1,003" in d.message and "125 turns × 8 steps" in d.message and "3 approvals" in d.message


def test_without_a_tool_calls_limit_each_offered_tool_counts_once(write: Write) -> None:
    agent = "  a: {description: d, system: hi, tools: [t0, t1, t2, t3]}\n"
    tools = (
        "tools:\n"
        + "".join(f"  t{i}: {{state: {{x: {i}}}}}\n" for i in range(4))
        + "state: {x: integer}\nrouter: {otherwise: a}\n"
    )
    text = BASE.replace("  a: {description: d, system: hi}\n", agent) + tools + "max_iter: %d\n"
    clean(write, text % 199)  # 1 + 199 x 5 = 996
    [d] = only(write, text % 200, "too-many-steps")
    assert "one call of each of its 4 tools" in d.message and "= 1,001" in d.message


def test_an_agents_calls_limit_bounds_its_share_of_the_turns(write: Write) -> None:
    agents = (
        "agents:\n  a: {description: d, system: hi, tools: [t0, t1, t2], limits: {calls: 100}}\n"
        "  b: {description: d, system: hi}\n"
        "tools:\n" + "".join(f"  t{i}: {{state: {{x: {i}}}}}\n" for i in range(3)) + "state: {x: integer}\n"
    )
    text = "name: n\nmodel: openai/gpt-4o-mini\n" + agents + "max_iter: %d\n"
    # 1 + 100 x 5 (a: routing, inference, 3 tools) + (max_iter - 100) x 2 (b)
    clean(write, text % 349)  # 1 + 500 + 498 = 999
    [d] = only(write, text % 351, "too-many-steps")  # 1 + 500 + 502 = 1,003
    assert "100 turns × 5 steps of agent 'a'" in d.message and "251 turns × 2 steps of agent 'b'" in d.message


def test_a_tool_result_cap_above_4_mb_gets_a_warning(write: Write) -> None:
    agent = "  a: {description: d, system: hi, tools: [get]}\n"
    text = (
        BASE.replace("  a: {description: d, system: hi}\n", agent)
        + "tools:\n  get:\n    http: {url: 'https://api.example.com/x', max_bytes: %d}\n"
    )
    clean(write, text % 4_000_000)
    [d] = only(write, text % 4_000_001, "step-output-too-large")
    assert d.severity == "warning" and d.where == "tools.get.http.max_bytes" and d.pos.line == 7
    assert "4,000,001 bytes" in d.message and "4,194,304" in d.message


def test_an_mcp_servers_cap_above_4_mb_gets_a_warning(write: Write) -> None:
    agent = "  a: {description: d, system: hi, mcp_servers: [m]}\n"
    text = (
        BASE.replace("  a: {description: d, system: hi}\n", agent)
        + "mcp_servers:\n  m:\n    transport: stdio\n    command: node\n    max_bytes: %d\n"
    )
    clean(write, text % 4_000_000)
    [d] = only(write, text % 5_000_000, "step-output-too-large")
    assert d.where == "mcp_servers.m.max_bytes" and d.pos.line == 9


def test_a_history_without_a_token_window_gets_a_warning(write: Write) -> None:
    text = BASE + "history:\n  store: sqlite\n"
    [d] = only(write, text, "step-output-too-large")
    assert d.where == "history" and d.pos.line == 5 and "whole thread" in d.message
    text = BASE + "history:\n  window: {messages: 20}\n"
    [d] = only(write, text, "step-output-too-large")
    assert d.where == "history.window" and d.pos.line == 6 and "not their size" in d.message
    clean(write, BASE + "history:\n  window: {tokens: 1000000}\n")
    text = BASE + "history:\n  window: {tokens: 1000001}\n"
    [d] = only(write, text, "step-output-too-large")
    assert d.where == "history.window.tokens" and d.pos.line == 6 and "4,000,004 characters" in d.message


def test_an_agents_own_window_is_the_one_judged(write: Write) -> None:
    text = BASE.replace("system: hi}", "system: hi, history: {messages: 5}}") + "history: {window: {tokens: 100}}\n"
    [d] = only(write, text, "step-output-too-large")
    assert d.where == "agents.a.history" and d.pos.line == 4


def test_strict_turns_the_limit_warnings_into_a_failure(netrun_cli, write: Write) -> None:
    path = write("n.yaml", BASE + "max_iter: 600\n")
    assert netrun_cli("validate", str(path)).exit_code == 0
    strict = netrun_cli("validate", "--strict", str(path))
    assert strict.exit_code == 1 and "too-many-steps" not in strict.output  # the human format shows the message
    assert "more than the 1,000 Inngest allows" in strict.output
