"""`netrun test --format junit` writes reports that Jenkins' junit-10.xsd accepts (the
schema CI servers read JUnit XML against): passing, failing and broken test files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from .conftest import REPO
from .test_netrun_test import CASES, NETWORK, write

XSD = xmlschema.XMLSchema10(REPO / "tests" / "junit-10.xsd")


def assert_valid(report: Path) -> None:
    errors = [f"{e.path}: {e.reason}" for e in XSD.iter_errors(str(report))]
    assert errors == [], report.read_text()


def test_the_examples_report_passes_the_junit_xsd(netrun_cli: Callable[..., Any], tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    assert netrun_cli("test", "networks", "--format", "junit", "-o", str(report)).exit_code == 0
    assert_valid(report)


@pytest.mark.parametrize("broken", [False, True], ids=["a failing case", "a broken test file"])
def test_a_failing_report_passes_the_junit_xsd(netrun_cli: Callable[..., Any], tmp_path: Path, broken: bool) -> None:
    write(tmp_path, CASES.replace("iterations: 3", "iterations: 9"))
    if broken:
        (tmp_path / "other.yaml").write_text(NETWORK.replace("name: triage", "name: other"))
        (tmp_path / "other.test.yaml").write_text("cases:\n  broken:\n    expect: {route: [nobody]}\n")
    report = tmp_path / "report.xml"
    assert netrun_cli("test", str(tmp_path), "--format", "junit", "-o", str(report)).exit_code == 1
    assert_valid(report)
    suites = XSD.to_dict(str(report))
    assert [s["@errors"] for s in suites["testsuite"]] == (["1", "0"] if broken else ["0"])
    assert all("@file" in s for s in suites["testsuite"])  # the file is the suite's
