"""Jinja expressions that Inngest evaluates, translated to CEL."""

from __future__ import annotations

import pytest

from netrun.expressions.cel import CelError, to_cel


@pytest.mark.parametrize(
    ("jinja", "cel"),
    [
        ("event.data.user_id", "event.data.user_id"),
        ('event.data.tier == "pro" and not event.data.trial', '(event.data.tier == "pro" && !(event.data.trial))'),
        ("event.data.amount > 100 or event.data['vip']", '(event.data.amount > 100 || event.data["vip"])'),
        ('event.data.plan in ["pro", "team"]', 'event.data.plan in ["pro", "team"]'),
        ('event.data.plan not in ("free",)', '!(event.data.plan in ["free"])'),
        ("async.data.ticketId == event.data.ticketId", "async.data.ticketId == event.data.ticketId"),
        ("event.data.score * 2 - 1 >= 10", "((event.data.score * 2) - 1) >= 10"),
        ("event.data.note is defined", "has(event.data.note)"),
        ("event.data.note is not defined", "!has(event.data.note)"),
        ("true and none == event.data.x", "(true && null == event.data.x)"),
        ("1 < event.data.n < 5", "(1 < event.data.n && event.data.n < 5)"),
    ],
)
def test_translates(jinja: str, cel: str) -> None:
    assert to_cel(jinja) == cel


def test_constants_become_literals() -> None:
    constants = {"args": {"order": "A1", "n": 3}, "run": {"id": "r-9"}, "state": {"tags": ["x"]}}
    assert (
        to_cel("async.data.order == args.order and async.data.run == run.id", constants)
        == '(async.data.order == "A1" && async.data.run == "r-9")'
    )
    assert (
        to_cel("args['n'] + 1 == async.data.n and state.tags == async.data.tags", constants)
        == '((3 + 1) == async.data.n && ["x"] == async.data.tags)'
    )


@pytest.mark.parametrize(
    ("jinja", "message"),
    [
        ("event.data.name | lower", "the filter '| lower' cannot be evaluated by Inngest (it evaluates CEL, not Jinja)"),
        ("event.data.name.upper()", "a function or method call cannot be evaluated by Inngest (it evaluates CEL, not Jinja)"),
        ("1 if event.data.x else 2", "'x if y else z' has no CEL form here; write the condition with 'and'/'or'"),
        ("event.data.a ~ event.data.b", "'~' (string concatenation) has no CEL form here; use '+'"),
        ("event.data.n is even", "the test 'is even' has no CEL equivalent (only 'is defined' on a field)"),
    ],
)
def test_says_what_does_not_translate(jinja: str, message: str) -> None:
    with pytest.raises(CelError, match=r"^" + __import__("re").escape(message) + r"$"):
        to_cel(jinja)
