"""Every example network validates strictly, and is set up for editors."""

from __future__ import annotations

import json

import pytest

from .conftest import REPO

EXAMPLES = sorted(p for p in (REPO / "networks").rglob("*.y*ml") if not p.name.endswith(".replies.yaml"))


def test_there_are_examples() -> None:
    assert len([p for p in EXAMPLES if not p.name.endswith(".fragment.yaml")]) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_starts_with_schema_modeline(path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    schema = "fragment.schema.json" if path.name.endswith(".fragment.yaml") else "network.schema.json"
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert target == REPO / "schemas" / schema


def test_examples_validate_strictly(netrun_cli) -> None:
    result = netrun_cli("validate", "--strict", "--format", "json", "networks")
    report = json.loads(result.output)
    assert report["diagnostics"] == []
    assert result.exit_code == 0
    assert len(report["files"]) == len(EXAMPLES)
