"""Networks as Inngest functions: the options the real SDK registers, from the YAML."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import inngest
import pytest

from netrun.engines.inngest_function import function_options
from netrun.engines.triggers import input_template
from netrun.spec import NetworkSpec
from netrun.validate import validate_paths

from .conftest import REPO

URL = "http://127.0.0.1:1/api/inngest"


def registered(spec: NetworkSpec) -> object:
    """The function config as the SDK sends it to Inngest when it syncs."""
    client = inngest.Inngest(app_id="netrun", is_production=False)

    async def handler(ctx: inngest.Context) -> None:
        return None

    return client.create_function(**function_options(spec))(handler).get_config(URL).main


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (REPO / "networks").glob("*.yaml") if not p.name.endswith((".replies.yaml", ".test.yaml"))),
    ids=lambda p: p.name,
)
def test_every_example_registers(path: Path) -> None:
    spec = validate_paths([path]).files[0].spec
    assert spec is not None
    main = registered(spec)
    assert main.id == f"netrun-{spec.name}"
    assert main.triggers


def test_every_setting_reaches_the_function() -> None:
    spec = NetworkSpec.model_validate(
        {
            "name": "full",
            "model": "openai/x",
            "agents": {"a": {"system": "s"}},
            "trigger": [
                {"event": "app/go", "if": 'event.data.tier == "pro" and not event.data.trial'},
                {"cron": "TZ=UTC 0 9 * * 1"},
            ],
            "function": {
                "id": "full-fn",
                "retries": 3,
                "concurrency": [{"limit": 10}, {"limit": 2, "key": "event.data.account_id", "scope": "env"}],
                "throttle": {"limit": 20, "period": "1m", "key": "event.data.account_id", "burst": 5},
                "rate_limit": {"limit": 100, "period": "1h", "key": "event.data.user"},
                "debounce": {"period": "30s", "key": "event.data.user", "timeout": "5m"},
                "priority": {"run": "event.data.vip * 60"},
                "idempotency": "event.data.request_id",
                "cancel": [{"event": "app/stop", "if": "async.data.id == event.data.id", "timeout": "1h"}],
                "timeouts": {"start": "10m", "finish": "1h"},
                "singleton": {"mode": "skip", "key": "event.data.user"},
            },
        }
    )
    main = registered(spec)
    assert main.id == "netrun-full-fn"
    assert [(t.event, t.expression) for t in main.triggers[:1]] == [
        ("app/go", '(event.data.tier == "pro" && !(event.data.trial))')
    ]
    assert main.triggers[1].cron == "TZ=UTC 0 9 * * 1"
    assert main.steps["step"].retries.attempts == 3
    assert [(c.limit, c.key, c.scope) for c in main.concurrency] == [(10, None, "fn"), (2, "event.data.account_id", "env")]
    assert (main.throttle.limit, main.throttle.period, main.throttle.key, main.throttle.burst) == (
        20,
        timedelta(minutes=1),
        "event.data.account_id",
        5,
    )
    assert (main.rate_limit.limit, main.rate_limit.period, main.rate_limit.key) == (100, timedelta(hours=1), "event.data.user")
    assert (main.debounce.period, main.debounce.key, main.debounce.timeout) == (
        timedelta(seconds=30),
        "event.data.user",
        timedelta(minutes=5),
    )
    assert main.priority.run == "(event.data.vip * 60)"
    assert main.idempotency == "event.data.request_id"
    assert [(c.event, c.if_exp, c.timeout) for c in main.cancel][:1] == [
        ("app/stop", "async.data.id == event.data.id", timedelta(hours=1))
    ]
    assert main.cancel[1].event == "netrun/run.cancel"  # POST /runs/{id}/cancel's, on every function
    assert (main.timeouts.start, main.timeouts.finish) == (timedelta(minutes=10), timedelta(hours=1))
    assert (main.singleton.mode, main.singleton.key) == ("skip", "event.data.user")


def test_the_input_comes_from_the_trigger_that_fired() -> None:
    spec = NetworkSpec.model_validate(
        {
            "name": "n",
            "model": "openai/x",
            "agents": {"a": {"system": "s"}},
            "trigger": [{"event": "app/a", "input": "{{ event.data.title }}"}, {"cron": "0 9 * * *", "input": "daily"}],
        }
    )
    assert input_template(spec, "app/a") == "{{ event.data.title }}"
    assert input_template(spec, "inngest/scheduled.timer") == "daily"
    assert input_template(spec, "app/other") == "{{ event.data.input }}"
