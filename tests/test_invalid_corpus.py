"""The invalid-file corpus: every network in ``tests/invalid`` fails validation with
exactly the messages, and at exactly the positions, written in its ``.expected`` sidecar.

``tests/invalid/NAME.yaml`` (or ``.yml``) is one small broken network, one problem class
per file; ``NAME.expected`` holds the lines ``netrun validate -q tests/invalid/NAME.yaml``
prints from the repository root, without the final summary line. Files named
``*.fragment.yaml`` are only there to be included by the networks.

To add a case: write the network, run ``netrun validate -q tests/invalid/NAME.yaml``, read
every message as a user would (does it name the bad value, say what is allowed, point at
the token?), and only then save the output minus its last line as ``NAME.expected``.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netrun.cli import main

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "invalid"
FRAGMENT_SUFFIXES = (".fragment.yaml", ".fragment.yml")
SUMMARY = re.compile(r"^(?P<errors>\d+) errors?(?:, (?P<warnings>\d+) warnings?)? in 1 of 1 file$")

SECRETS = {
    "literal_api_key.yaml": "sk-proj-abc123SECRETkey456",
}
"""Files holding a literal secret, and the secret: no output may ever show it."""


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.endswith(FRAGMENT_SUFFIXES))


@pytest.fixture
def validate(monkeypatch: pytest.MonkeyPatch):
    """Run ``netrun validate [ARGS] tests/invalid/NAME`` in-process from the repository root."""
    monkeypatch.chdir(REPO)
    runner = CliRunner()

    def run(name: str, *args: str) -> Result:
        result = runner.invoke(main, ["validate", *args, f"tests/invalid/{name}"])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"netrun validate crashed on {name}:\n{result.output}"
        )
        return result

    return run


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_invalid_file_reports_exactly_the_expected_problems(validate, path: Path) -> None:
    result = validate(path.name, "-q")
    lines = result.output.splitlines()
    assert result.exit_code == 1, f"{path.name}: exit code {result.exit_code}, expected 1\n{result.output}"

    assert lines, f"{path.name}: no output"
    summary = SUMMARY.match(lines[-1])
    assert summary, f"{path.name}: the last line is not a summary: {lines[-1]!r}"
    got = lines[:-1]
    assert int(summary["errors"]) == sum(": error: " in line for line in got) >= 1
    assert int(summary["warnings"] or 0) == sum(": warning: " in line for line in got)

    sidecar = path.with_suffix(".expected")
    if os.environ.get("NETRUN_UPDATE_EXPECTED") == "1":  # after a deliberate message change: review the diff!
        sidecar.write_text("\n".join(got) + "\n", encoding="utf-8")
    expected = sidecar.read_text(encoding="utf-8").splitlines()
    if got != expected:
        diff = "\n".join(difflib.unified_diff(expected, got, f"{path.stem}.expected", "netrun validate -q output", lineterm=""))
        pytest.fail(f"{path.name}: output differs from {path.stem}.expected\n{diff}", pytrace=False)


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_a_literal_secret_is_never_printed(validate, name: str) -> None:
    secret = SECRETS[name]
    assert secret in (CORPUS / name).read_text(encoding="utf-8")  # the case still holds its secret
    for args in (["-q"], [], ["--format", "json"], ["--format", "github"]):
        result = validate(name, *args)
        assert result.exit_code == 1
        assert secret not in result.output, f"netrun validate {' '.join(args)} {name} printed the key"
    source = validate(name).output.splitlines()
    assert "     4 |   api_key: ***" in source  # the source line is shown, masked


def test_a_secret_under_a_misspelt_key_is_not_printed(validate) -> None:
    result = validate("unknown_field_with_secret.yaml")
    assert "sk-proj-MISSPELTkey789" not in result.output


def test_the_corpus_is_large_and_every_file_has_a_sidecar() -> None:
    files = corpus_files()
    assert len(files) >= 40, f"only {len(files)} invalid files in {CORPUS}"
    missing = [p.name for p in files if not p.with_suffix(".expected").is_file()]
    assert not missing, f"no .expected sidecar for: {', '.join(missing)}"
    stems = {p.stem for p in files}
    orphans = [p.name for p in CORPUS.glob("*.expected") if p.stem not in stems]
    assert not orphans, f".expected files without a network: {', '.join(orphans)}"
    for sidecar in CORPUS.glob("*.expected"):
        text = sidecar.read_text(encoding="utf-8")
        assert text.strip() and text.endswith("\n"), f"{sidecar.name} is empty or lacks a final newline"
