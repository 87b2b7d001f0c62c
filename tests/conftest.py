from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netrun.cli import main

REPO = Path(__file__).resolve().parents[1]
NETRUN = str(Path(sys.executable).parent / "netrun")
"""The installed console script, in the same environment as the tests."""


@pytest.fixture
def netrun_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``netrun ARGS`` in-process from the repository root, as a user would."""
    monkeypatch.chdir(REPO)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(main, list(args), catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"netrun {' '.join(args)} raised {result.exception!r}\n{result.output}") from result.exception
        return result

    return invoke


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a file under a temporary directory and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write
