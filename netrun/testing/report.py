"""How ``netrun test`` reports: pytest-style text, JUnit XML, GitHub annotations."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

from ..diagnostics import format_path
from ..report import escape_annotation, plain
from .run import CaseResult

Style = Callable[..., str]


def _where(result: CaseResult, path: tuple[str | int, ...]) -> str:
    pos = result.file.doc.pos(path)
    return f"{pos.file}:{pos.line}:{pos.col}"


def failure_lines(result: CaseResult) -> list[str]:
    out = []
    for f in result.failures:
        out.append(f"{_where(result, f.path)}: {format_path(f.path[2:]) or f.what}: {f.message}")
        out.extend("    " + line for line in f.diff())
    return out


Broken = Sequence[tuple[str, str]]
"""Test files that could not run: (file, what is wrong); they count as errors."""

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Text XML 1.0 can hold (a control character in a case name or an output would not be)."""
    return _NOT_XML.sub("\ufffd", text)


def human(results: list[CaseResult], seconds: float, style: Style = plain, broken: Broken = ()) -> str:
    out = []
    for r in results:
        verdict = style("PASSED", fg="green") if r.passed else style("FAILED", fg="red", bold=True)
        out.append(f"{r.id} {verdict} ({r.seconds:.2f}s)")
    failed = [r for r in results if not r.passed]
    if failed:
        out.append(style(" FAILURES ".center(80, "="), fg="red"))
        for r in failed:
            title = f" {r.id} "
            out.append(style(title.center(max(80, len(title) + 10), "_"), fg="red", bold=True))
            for line in failure_lines(r):
                colour = (
                    "red"
                    if line.lstrip().startswith("+") and not line.lstrip().startswith("+++")
                    else ("green" if line.lstrip().startswith("-") and not line.lstrip().startswith("---") else None)
                )
                out.append(style(line, fg=colour) if colour else line)
    passed = len(results) - len(failed)
    parts = (
        ([f"{len(failed)} failed"] if failed else [])
        + [f"{passed} passed"]
        + ([f"{len(broken)} test file(s) with errors"] if broken else [])
    )
    bad = bool(failed or broken)
    out.append(style(f" {', '.join(parts)} in {seconds:.2f}s ".center(80, "="), fg="red" if bad else "green", bold=True))
    return "\n".join(out)


def junit(results: list[CaseResult], seconds: float, broken: Broken = ()) -> str:
    suites = ET.Element(
        "testsuites",
        name="netrun",
        tests=str(len(results) + len(broken)),
        failures=str(sum(not r.passed for r in results)),
        errors=str(len(broken)),
        time=f"{seconds:.3f}",
    )
    for file, problem in broken:
        suite = ET.SubElement(
            suites, "testsuite", name=_xml(file), tests="1", failures="0", errors="1", file=_xml(file), time="0"
        )
        case = ET.SubElement(suite, "testcase", classname=_xml(file), name="(the test file)", time="0")
        error = ET.SubElement(
            case, "error", message=_xml(problem.splitlines()[0] if problem else "invalid"), type="InvalidTestFile"
        )
        error.text = _xml(problem)
    by_file: dict[str, list[CaseResult]] = {}
    for r in results:
        by_file.setdefault(r.id.split("::", 1)[0], []).append(r)
    for file, cases in by_file.items():
        # The attributes of Jenkins' junit-10.xsd, which CI servers read: a suite must say its
        # errors, and the file is the suite's (a case has no `file` there).
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=_xml(file),
            tests=str(len(cases)),
            failures=str(sum(not r.passed for r in cases)),
            errors="0",
            file=_xml(file),
            time=f"{sum(r.seconds for r in cases):.3f}",
        )
        for r in cases:
            case = ET.SubElement(suite, "testcase", classname=_xml(file), name=_xml(r.name), time=f"{r.seconds:.3f}")
            if not r.passed:
                failure = ET.SubElement(
                    case, "failure", message=_xml("; ".join(f.message for f in r.failures)), type="AssertionError"
                )
                failure.text = _xml("\n".join(failure_lines(r)))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode")


def github(results: list[CaseResult], seconds: float) -> str:
    """One ``::error`` annotation per failed expectation, at its line in the test file."""
    out = []
    for r in results:
        for f in r.failures:
            pos = r.file.doc.pos(f.path)
            body = "\n".join([f.message, *f.diff()])
            out.append(
                f"::error file={escape_annotation(pos.file, True)},line={pos.line},col={pos.col},title={escape_annotation('netrun test: ' + r.name, True)}::{escape_annotation(body)}"
            )
    failed = sum(not r.passed for r in results)
    out.append(f"{failed} failed, {len(results) - failed} passed in {seconds:.2f}s")
    return "\n".join(out)
