"""The README's "How it is built" promises: no module in netrun/ over 400 lines."""

from __future__ import annotations

from .conftest import REPO


def test_no_module_of_netrun_is_over_400_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in (REPO / "netrun").rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
