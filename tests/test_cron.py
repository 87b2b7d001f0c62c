"""Cron schedules as Inngest reads them."""

from __future__ import annotations

import pytest

from netrun.check.cron import cron_problem


@pytest.mark.parametrize(
    "expr",
    [
        "0 9 * * MON",
        "*/15 * * * *",
        "TZ=Europe/Paris 0 9 * * 1-5",
        "CRON_TZ=UTC 30 2 1,15 * *",
        "@daily",
        "0 9 * JAN-MAR SUN",
        "0 9 ? * MON",
        "0 0 * * 7",
        "0-30/10 8-18 * * mon-fri",
    ],
)
def test_valid_schedules(expr: str) -> None:
    assert cron_problem(expr) is None


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("0 25 * * *", "'25' is out of range (allowed: 0-23) in the hour field of '0 25 * * *'"),
        (
            "0 9 * * FUNDAY",
            "'FUNDAY' is not a number or a name (allowed: 0-7 or SUN-SAT) in the day of week field of '0 9 * * FUNDAY'",
        ),
        ("5-1 * * * *", "the range '5-1' runs backwards in the minute field of '5-1 * * * *'"),
        ("*/0 * * * *", "a step of 0 never matches in the minute field of '*/0 * * * *'"),
        ("? * * * *", "'?' (no specific value) is not allowed in the minute field of '? * * * *'"),
        ("0 9 * *", "a cron schedule has 5 fields (minute hour day-of-month month day-of-week), got 4 in '0 9 * *'"),
        ("1,,2 * * * *", "'' is not a value, a range (1-5), a step (*/15) or '*' in the minute field of '1,,2 * * * *'"),
        ("TZ=Mars/Base 0 9 * * *", "unknown time zone 'Mars/Base' (use an IANA name such as Europe/Paris or UTC)"),
        (
            "@fortnightly",
            "unknown schedule '@fortnightly'; allowed: @annually, @daily, @hourly, @midnight, @monthly, @weekly, @yearly, or 5 fields",
        ),
    ],
)
def test_invalid_schedules_say_which_field(expr: str, problem: str) -> None:
    assert cron_problem(expr) == problem
