"""Cron schedules as Inngest reads them: five fields, an optional ``TZ=`` prefix, or a
descriptor such as ``@daily``.

Written here rather than imported: croniter, the usual library, takes about 50 ms to import
(it runs ``platform.architecture()``, which starts a subprocess), a seventh of the
cold-start budget of ``netrun validate``, to check five short fields.
"""

from __future__ import annotations

import re

_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_ITEM = re.compile(r"^(?P<base>\*|\?|(?P<lo>[A-Za-z0-9]+)(?:-(?P<hi>[A-Za-z0-9]+))?)(?:/(?P<step>\d+))?$")


def cron_problem(text: str) -> str | None:
    """Why ``text`` is not a valid cron schedule, or None if it is."""
    expr = text.strip()
    if expr.startswith(("TZ=", "CRON_TZ=")):
        tz, _, expr = expr.partition(" ")
        zone = tz.split("=", 1)[1]
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown time zone '{zone}' (use an IANA name such as Europe/Paris or UTC)"
        expr = expr.strip()
    if expr.startswith("@"):
        if expr in _DESCRIPTORS:
            return None
        return f"unknown schedule '{expr}'; allowed: {', '.join(sorted(_DESCRIPTORS))}, or 5 fields"
    fields = expr.split()
    if len(fields) != 5:
        return f"a cron schedule has 5 fields (minute hour day-of-month month day-of-week), got {len(fields)} in '{text}'"
    for (name, low, high, names), field in zip(_FIELDS, fields, strict=True):
        for item in field.split(","):
            problem = _item_problem(item, name, low, high, names)
            if problem:
                return f"{problem} in the {name} field of '{text}'"
    return None


def _value(token: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if token.isdigit():
        return int(token)
    upper = token.upper()
    return names.index(upper) + low if upper in names else None


def _item_problem(item: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    m = _ITEM.match(item)
    if not m:
        return f"'{item}' is not a value, a range (1-5), a step (*/15) or '*'"
    if m.group("base") == "?" and name not in ("day of month", "day of week"):
        return "'?' (no specific value) is not allowed"
    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    bounds = []
    for token in (m.group("lo"), m.group("hi")):
        if token is None:
            continue
        value = _value(token, low, high, names)
        if value is None and not token.isdigit():
            return f"'{token}' is not a number{' or a name' if names else ''} (allowed: {allowed})"
        if value is None or not low <= value <= high:
            return f"'{token}' is out of range (allowed: {allowed})"
        bounds.append(value)
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        return f"the range '{m.group('base')}' runs backwards"
    if m.group("step") is not None and int(m.group("step")) == 0:
        return "a step of 0 never matches"
    return None
