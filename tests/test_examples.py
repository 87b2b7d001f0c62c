"""Every example network validates strictly, and is set up for editors."""

from __future__ import annotations

import json

import pytest

from .conftest import REPO

EXAMPLES = sorted(p for p in (REPO / "networks").rglob("*.y*ml") if not p.name.endswith((".replies.yaml", ".test.yaml")))
TESTS = sorted((REPO / "networks").rglob("*.test.yaml"))


def test_there_are_examples() -> None:
    assert len([p for p in EXAMPLES if not p.name.endswith(".fragment.yaml")]) >= 4


@pytest.mark.parametrize("path", EXAMPLES + TESTS, ids=lambda p: p.name)
def test_example_starts_with_schema_modeline(path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    kind = "fragment" if path.name.endswith(".fragment.yaml") else "test" if path.name.endswith(".test.yaml") else "network"
    schema = f"{kind}.schema.json"
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert target == REPO / "schemas" / schema


def test_examples_validate_strictly(netrun_cli) -> None:
    result = netrun_cli("validate", "--strict", "--format", "json", "networks")
    report = json.loads(result.output)
    assert report["diagnostics"] == []
    assert result.exit_code == 0
    assert len(report["files"]) == len(EXAMPLES)


def test_the_readme_network_validates(netrun_cli, tmp_path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## A network file", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    path = tmp_path / "readme.yaml"
    path.write_text(block, encoding="utf-8")
    result = netrun_cli("validate", "--strict", str(path))
    assert result.exit_code == 0, result.output
