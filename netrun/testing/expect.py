"""Checking a finished run against a case's expectations; each miss is a :class:`Failure`
with the expected and the actual value, and a diff of the two."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..diagnostics import YamlPath
from ..engines.local import RunRecord
from ..spec.testcase import Expectations, ExpectedCall, ExpectedOutput
from ..tools.naming import model_name

_MISSING = "<missing>"


@dataclass
class Failure:
    what: str
    """The expectation that failed (``route``, ``state``, ...)."""
    message: str
    path: YamlPath = ()
    """Where in the test file (for the location of the message)."""
    expected: Any = None
    actual: Any = None
    has_values: bool = field(default=False)
    pattern: bool = False
    """``expected`` is a text or pattern to find in ``actual``, not a value to equal it."""

    def diff(self) -> list[str]:
        """A unified diff of expected against actual, as JSON (empty when there is nothing to compare)."""
        if not self.has_values:
            return []
        if self.pattern:
            return [f"looked for: {self.expected!r}", "in:", *("  " + line for line in str(self.actual).splitlines() or [""])]
        if isinstance(self.expected, str) and isinstance(self.actual, str):
            left, right = self.expected.splitlines(), self.actual.splitlines()
            if len(left) <= 1 and len(right) <= 1:
                return [f"expected: {self.expected!r}", f"actual:   {self.actual!r}"]
        else:
            short = (
                json.dumps(self.expected, ensure_ascii=False, default=str),
                json.dumps(self.actual, ensure_ascii=False, default=str),
            )
            if max(map(len, short)) <= 100:
                return [f"expected: {short[0]}", f"actual:   {short[1]}"]
            left, right = _pretty(self.expected).splitlines(), _pretty(self.actual).splitlines()
        return list(difflib.unified_diff(left, right, "expected", "actual", lineterm="", n=3))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def compare(what: str, path: YamlPath, expected: Any, actual: Any, message: str) -> Failure:
    return Failure(what, message, path, expected, actual, has_values=True)


def check(expect: Expectations, record: RunRecord, at: YamlPath) -> list[Failure]:
    """Every expectation of ``expect`` that the run ``record`` does not meet."""
    failures: list[Failure] = []
    here = (*at, "expect")
    if record.status != expect.status:
        detail = f": {record.error}" if record.error else ""
        failures.append(Failure("status", f"the run ended {record.status}{detail}; expected {expect.status}", (*here, "status")))
        return failures
    if expect.error is not None and expect.error not in (record.error or ""):
        failures.append(
            Failure(
                "error",
                "the run's error does not contain the expected text",
                (*here, "error"),
                expect.error,
                record.error or "",
                has_values=True,
                pattern=True,
            )
        )
    result = record.result or {}
    if not result:
        unchecked = [f for f in _RESULT_FIELDS if getattr(expect, f) is not None]
        if unchecked:
            failures.append(
                Failure("status", f"cannot check {', '.join(unchecked)}: the run failed ({record.error})", (*here, unchecked[0]))
            )
        return failures
    if expect.route is not None and result["route"] != expect.route:
        failures.append(compare("route", (*here, "route"), expect.route, result["route"], "the route differs"))
    made = [t for r in result["results"] for t in r["tool_calls"]]
    calls = [{"name": t["name"], "args": t["args"], **({"error": t["error"]} if t.get("error") else {})} for t in made]
    if expect.tool_calls is not None:
        missing = _subsequence(expect.tool_calls, calls)
        if missing is not None:
            wanted = [_call(c) for c in expect.tool_calls]
            failures.append(
                compare(
                    "tool_calls",
                    (*here, "tool_calls", missing),
                    wanted,
                    calls,
                    f"expected call #{missing + 1} ({expect.tool_calls[missing].name}) was not made, in this order",
                )
            )
    if expect.tool_calls_exact is not None:
        wanted = [_call(c) for c in expect.tool_calls_exact]
        shown = [_shown(e, c) for e, c in zip(expect.tool_calls_exact, calls, strict=False)] + calls[len(wanted) :]
        if len(calls) != len(wanted) or not all(
            _matches(e, c, exact=True) for e, c in zip(expect.tool_calls_exact, calls, strict=False)
        ):
            failures.append(compare("tool_calls_exact", (*here, "tool_calls_exact"), wanted, shown, "the tool calls differ"))
    state = result["state"]
    if expect.state is not None:
        actual = {k: state.get(k, _MISSING) for k in expect.state}
        if actual != expect.state:
            failures.append(compare("state", (*here, "state"), expect.state, actual, "the state differs"))
    if expect.state_exact is not None and state != expect.state_exact:
        failures.append(compare("state_exact", (*here, "state_exact"), expect.state_exact, state, "the state differs"))
    if expect.output is not None:
        failures.extend(_output(expect.output, result["output"], (*here, "output")))
    if expect.stop_reason is not None and result["stop_reason"] != expect.stop_reason:
        failures.append(
            compare("stop_reason", (*here, "stop_reason"), expect.stop_reason, result["stop_reason"], "the stop reason differs")
        )
    if expect.iterations is not None and result["iterations"] != expect.iterations:
        failures.append(
            compare(
                "iterations", (*here, "iterations"), expect.iterations, result["iterations"], "the number of iterations differs"
            )
        )
    return failures


_RESULT_FIELDS = ("route", "tool_calls", "tool_calls_exact", "state", "state_exact", "output", "stop_reason", "iterations")
"""Expectations about the run's result: a failed run has none to check them against."""


def _call(call: ExpectedCall) -> dict[str, Any]:
    return {
        "name": model_name(call.name),
        **({"args": call.args} if call.args is not None else {}),
        **({"error": call.error} if call.error is not None else {}),
    }


def _shown(expected: ExpectedCall, actual: dict[str, Any]) -> dict[str, Any]:
    """The actual call with only the fields the expected one names (a readable diff)."""
    return {"name": actual["name"], **{k: actual.get(k) for k in ("args", "error") if getattr(expected, k) is not None}}


def _matches(expected: ExpectedCall, actual: dict[str, Any], exact: bool = False) -> bool:
    if model_name(expected.name) != actual["name"]:
        return False
    error = actual.get("error")
    if expected.error is None or expected.error is False:
        if error:  # a call expected to succeed
            return False
    elif expected.error is True:
        if not error:
            return False
    elif expected.error not in (error or ""):
        return False
    if expected.args is None:
        return True
    if exact:
        return bool(actual["args"] == expected.args)
    args = actual["args"] if isinstance(actual["args"], dict) else {}
    return all(args.get(k, _MISSING) == v for k, v in expected.args.items())


def _subsequence(expected: list[ExpectedCall], calls: list[dict[str, Any]]) -> int | None:
    """The index of the first expected call not found (in order) among ``calls``, or None."""
    i = 0
    for n, wanted in enumerate(expected):
        while i < len(calls) and not _matches(wanted, calls[i]):
            i += 1
        if i == len(calls):
            return n
        i += 1
    return None


def _output(expect: str | ExpectedOutput, output: str, path: YamlPath) -> list[Failure]:
    spec = ExpectedOutput(contains=expect) if isinstance(expect, str) else expect
    failures = []
    if spec.equals is not None and output != spec.equals:
        failures.append(compare("output", (*path, "equals"), spec.equals, output, "the output differs"))
    texts = [spec.contains] if isinstance(spec.contains, str) else (spec.contains or [])
    for i, text in enumerate(texts):
        if text not in output:
            where = (
                (*path, "contains", i)
                if isinstance(spec.contains, list)
                else (*path,)
                if isinstance(expect, str)
                else (*path, "contains")
            )
            failures.append(
                Failure("output", f"the output does not contain {text!r}", where, text, output, has_values=True, pattern=True)
            )
    if spec.regex is not None:
        try:
            found = re.search(spec.regex, output)
        except re.error as exc:
            failures.append(Failure("output", f"the regex {spec.regex!r} is not valid: {exc}", (*path, "regex")))
        else:
            if found is None:
                failures.append(
                    Failure(
                        "output",
                        f"the output does not match /{spec.regex}/",
                        (*path, "regex"),
                        spec.regex,
                        output,
                        has_values=True,
                        pattern=True,
                    )
                )
    return failures
