""" "Did you mean" suggestions and readable lists of allowed values."""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(bad: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``bad``, if one is close enough to be a likely typo."""
    options = list(candidates)
    lowered = {c.lower(): c for c in options}
    if bad.lower() in lowered:  # a case slip is the likeliest typo of all
        return lowered[bad.lower()]
    import difflib  # only when there is something to suggest

    match = difflib.get_close_matches(bad, options, n=1, cutoff=0.6)
    return match[0] if match else None


def one_of(values: Iterable[object], limit: int = 12) -> str:
    """``a, b, c`` (sorted, truncated with a count when long)."""
    items = sorted({str(v) for v in values})
    if not items:
        return "(none)"
    if len(items) > limit:
        return ", ".join(items[:limit]) + f", ... ({len(items) - limit} more)"
    return ", ".join(items)


def hint(bad: str, candidates: Iterable[str], noun: str) -> str:
    """``; did you mean 'x'? defined <noun>: a, b``: the tail of an unknown-name message."""
    options = list(candidates)
    near = did_you_mean(bad, options)
    guess = f"did you mean '{near}'? " if near else ""
    listing = f"defined {noun}: {one_of(options)}" if options else f"no {noun} are defined"
    return f"; {guess}{listing}"
