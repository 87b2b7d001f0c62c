"""The stand-in Inngest executor against a plain inngest app served by real uvicorn."""

from __future__ import annotations

import datetime
import json
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import fastapi
import httpx
import inngest
import pytest
from pydantic.warnings import PydanticDeprecatedSince20

from tests.fakes.inngest_executor import StandInExecutor, SyncRefusedError, step_hash
from tests.fakes.server_thread import ServerThread

with warnings.catch_warnings():  # inngest 0.5's CommRequest still has a class-based pydantic Config
    warnings.simplefilter("ignore", PydanticDeprecatedSince20)
    import inngest.fast_api

SIGNING_KEY = "signkey-test-" + "5e" * 32


@dataclass
class App:
    executor: StandInExecutor
    url: str
    """The serve URL."""


def make_functions(client: inngest.Inngest, flaky: dict[str, int]) -> list[inngest.Function]:
    """A few functions covering each kind of step."""

    @client.create_function(fn_id="chain", trigger=inngest.TriggerEvent(event="test/chain"))
    def chain(ctx: inngest.ContextSync) -> int:  # sync, run in the SDK's thread pool
        one = ctx.step.run("one", lambda: 1)
        two = ctx.step.run("two", lambda: one + 1)
        return ctx.step.run("three", lambda: two + ctx.event.data["add"])

    def fails_once() -> str:
        flaky["calls"] += 1
        if flaky["calls"] == 1:
            raise ValueError("first time unlucky")
        return "ok"

    @client.create_function(fn_id="flaky", retries=2, trigger=inngest.TriggerEvent(event="test/flaky"))
    async def flaky_fn(ctx: inngest.Context) -> dict[str, object]:
        first = await ctx.step.run("flaky", fails_once)
        await ctx.step.sleep("nap", datetime.timedelta(hours=1))
        await ctx.step.send_event("tell", inngest.Event(name="test/told", data={"n": 1}))
        return {"first": first}

    @client.create_function(fn_id="double", trigger=inngest.TriggerEvent(event="test/double"))
    async def double(ctx: inngest.Context) -> int:
        return await ctx.step.run("double", lambda: ctx.event.data["n"] * 2)

    @client.create_function(fn_id="fan", trigger=inngest.TriggerEvent(event="test/fan"))
    async def fan(ctx: inngest.Context) -> list[object]:
        async def part(n: int) -> int:
            return n * 10

        parts = await ctx.group.parallel(tuple(lambda n=n: ctx.step.run(f"part-{n}", part, n) for n in (1, 2, 3)))
        doubled = await ctx.step.invoke("invoke", function=double, data={"n": sum(parts)})
        last = await ctx.step.run("last", lambda: -1)  # a lone step after parallel ones is planned, not run at once
        return [*parts, doubled, last]

    @client.create_function(fn_id="waiter", trigger=inngest.TriggerEvent(event="test/ticket"))
    async def waiter(ctx: inngest.Context) -> object:
        approval = await ctx.step.wait_for_event(
            "approval",
            event="test/approved",
            if_exp="event.data.ticketId == async.data.ticketId && (!has(async.data.tool) || async.data.tool == 'refund')",
            timeout=datetime.timedelta(hours=4),
        )
        return None if approval is None else approval.data["by"]

    @client.create_function(fn_id="parwait", trigger=inngest.TriggerEvent(event="test/parwait"))
    async def parwait(ctx: inngest.Context) -> list[object]:
        async def wait() -> object:
            got = await ctx.step.wait_for_event("go", event="test/go", timeout=datetime.timedelta(minutes=5))
            return got and got.data["n"]

        return list(await ctx.group.parallel((lambda: ctx.step.run("work", lambda: "done"), wait)))

    @client.create_function(fn_id="asker", trigger=inngest.TriggerEvent(event="test/ask"))
    async def asker(ctx: inngest.Context) -> object:
        return await ctx.step.invoke("ask", function=waiter, data={"ticketId": 1})

    def always_fails() -> None:
        raise KeyError("nope")

    @client.create_function(fn_id="stubborn", retries=1, trigger=inngest.TriggerEvent(event="test/stubborn"))
    async def stubborn(ctx: inngest.Context) -> str:
        try:
            await ctx.step.run("bad", always_fails)
        except inngest.StepError as err:
            return f"{err.name}: {err.message}"
        return "unreachable"

    async def report(ctx: inngest.Context) -> str:
        return ctx.event.data["error"]["message"]

    @client.create_function(fn_id="doomed", retries=1, on_failure=report, trigger=inngest.TriggerEvent(event="test/doomed"))
    async def doomed(ctx: inngest.Context) -> None:
        raise RuntimeError(f"attempt {ctx.attempt}")

    @client.create_function(fn_id="hopeless", trigger=inngest.TriggerEvent(event="test/hopeless"))
    async def hopeless(ctx: inngest.Context) -> None:
        raise inngest.NonRetriableError("give up")

    @client.create_function(
        fn_id="cancellable",
        trigger=inngest.TriggerEvent(event="test/long"),
        cancel=[inngest.Cancel(event="test/stop", if_exp="event.data.id == async.data.id")],
    )
    async def cancellable(ctx: inngest.Context) -> object:
        return await ctx.step.wait_for_event("never", event="test/never", timeout=datetime.timedelta(hours=1))

    @client.create_function(fn_id="once", idempotency="event.data.key", trigger=inngest.TriggerEvent(event="test/once"))
    async def once(ctx: inngest.Context) -> str:
        return "ran"

    @client.create_function(fn_id="announcer", trigger=inngest.TriggerEvent(event="test/announce"))
    async def announcer(ctx: inngest.Context) -> object:
        await ctx.step.send_event("early", inngest.Event(name="test/reply", data={"n": 1}))
        got = await ctx.step.wait_for_event("reply", event="test/reply", timeout=datetime.timedelta(minutes=5))
        return got and got.data["n"]

    return [chain, flaky_fn, double, fan, waiter, parwait, asker, stubborn, doomed, hopeless, cancellable, once, announcer]


def hello_fn(client: inngest.Inngest) -> inngest.Function:
    @client.create_function(fn_id="hello", trigger=inngest.TriggerEvent(event="test/hello"))
    async def hello(ctx: inngest.Context) -> str:
        return await ctx.step.run("greet", lambda: f"hello {ctx.event.data['who']}")

    return hello


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, App]]:
    """One uvicorn server: a dev-mode app, a streaming dev-mode app (same executor) and a cloud-mode app (its own)."""
    dev, cloud = StandInExecutor(), StandInExecutor(signing_key=SIGNING_KEY)
    api = fastapi.FastAPI()
    flaky = {"calls": 0}
    dev_client = inngest.Inngest(app_id="selftest", is_production=False, api_base_url=dev.url, event_api_base_url=dev.url)
    inngest.fast_api.serve(api, dev_client, make_functions(dev_client, flaky), serve_path="/api/inngest")
    cloud_client = inngest.Inngest(
        app_id="cloudtest",
        is_production=True,
        signing_key=SIGNING_KEY,
        event_key="key",
        api_base_url=cloud.url,
        event_api_base_url=cloud.url,
    )

    inngest.fast_api.serve(api, cloud_client, [hello_fn(cloud_client)], serve_path="/cloud/inngest")
    # A second app on the dev executor, answering in the SDK's streaming form (HTTP 201, keep-alive bytes, then JSON).
    stream_client = inngest.Inngest(app_id="streamtest", is_production=False, api_base_url=dev.url, event_api_base_url=dev.url)
    inngest.fast_api.serve(
        api, stream_client, [hello_fn(stream_client)], serve_path="/stream/inngest", streaming=inngest.Streaming.FORCE
    )

    # An app Inngest refuses: six cancels (at most 5), so none of its functions is synced.
    bad_client = inngest.Inngest(app_id="badtest", is_production=False, api_base_url=dev.url, event_api_base_url=dev.url)

    @bad_client.create_function(
        fn_id="greedy",
        trigger=inngest.TriggerEvent(event="test/greedy"),
        cancel=[inngest.Cancel(event=f"test/stop{n}") for n in range(6)],
    )
    async def greedy(ctx: inngest.Context) -> None:
        return None

    inngest.fast_api.serve(api, bad_client, [greedy, hello_fn(bad_client)], serve_path="/bad/inngest")

    server = ServerThread(lambda port: api, name="inngest-apps", lifespan="off")
    base = f"http://127.0.0.1:{server.port}"
    try:
        yield {
            "dev": App(dev, f"{base}/api/inngest"),
            "cloud": App(cloud, f"{base}/cloud/inngest"),
            "stream": App(dev, f"{base}/stream/inngest"),
            "bad": App(dev, f"{base}/bad/inngest"),
        }
    finally:
        server.stop()
        dev.close()
        cloud.close()


@pytest.fixture(scope="module")
def dev(served: dict[str, App]) -> StandInExecutor:
    served["dev"].executor.sync(served["dev"].url)
    return served["dev"].executor


def test_sync_registers_the_configs(served: dict[str, App]) -> None:
    app = served["dev"]
    functions = app.executor.sync(app.url)
    assert set(functions) == {
        f"selftest-{f}"
        for f in (
            "chain",
            "flaky",
            "double",
            "fan",
            "waiter",
            "parwait",
            "asker",
            "stubborn",
            "doomed",
            "doomed-failure",
            "hopeless",
            "cancellable",
            "once",
            "announcer",
        )
    }
    assert functions["selftest-chain"]["triggers"] == [{"event": "test/chain"}]
    assert functions["selftest-flaky"]["steps"]["step"]["retries"] == {"attempts": 2}
    assert "retries" not in functions["selftest-chain"]["steps"]["step"]
    assert functions["selftest-chain"]["steps"]["step"]["runtime"]["url"] == f"{app.url}?fnId=selftest-chain&stepId=step"


def test_sequential_run_takes_steps_plus_one_calls(dev: StandInExecutor) -> None:
    seen: list[int] = []
    run = dev.run("selftest-chain", {"name": "test/chain", "data": {"add": 40}}, between=lambda: seen.append(1))
    assert (run.status, run.output) == ("completed", 42)
    calls = [c for c in dev.requests if c.run_id == run.id]
    assert [(c.step_id, c.status) for c in calls] == [("step", 206)] * 3 + [("step", 200)]
    assert len(seen) == len(calls) - 1
    assert run.stack == [step_hash("one"), step_hash("two"), step_hash("three")]
    assert run.memos[step_hash("two")] == {"data": 2}


def test_step_retry_sleep_and_sent_event(dev: StandInExecutor) -> None:
    run = dev.run("selftest-flaky", {"name": "test/flaky"})
    assert (run.status, run.output) == ("completed", {"first": "ok"})
    calls = [(c.step_id, c.attempt) for c in dev.requests if c.run_id == run.id]
    # flaky fails (StepError): the same discovery item is re-queued at attempt 1, which runs
    # it again; then the sleep, the send step and the end.
    assert calls == [("step", 0), ("step", 1), ("step", 0), ("step", 0), ("step", 0)]
    assert run.attempts[step_hash("flaky")] == 2
    assert run.memos[step_hash("nap")] is None
    assert [e["name"] for e in dev.events][-1] == "test/told"
    assert run.memos[step_hash("tell")] == {"data": [dev.events[-1]["id"]]}


def test_parallel_steps_and_invoke(dev: StandInExecutor) -> None:
    run = dev.run("selftest-fan", {"name": "test/fan"})
    assert (run.status, run.output) == ("completed", [10, 20, 30, 120, -1])
    child = next(r for r in dev.runs.values() if r.parent == (run.id, step_hash("invoke")))
    assert (child.fn_id, child.event["name"], child.output) == ("selftest-double", "inngest/function.invoked", 120)
    assert child.event["data"]["n"] == 60
    assert child.event["data"]["_inngest"]["correlation_id"] == f"{run.id}.{step_hash('invoke')}"
    [finished] = [e for e in dev.delivered if e["name"] == "inngest/function.finished" and e["data"]["run_id"] == child.id]
    assert (finished["data"]["result"], finished["data"]["correlation_id"]) == (120, f"{run.id}.{step_hash('invoke')}")
    steps = [c.step_id for c in dev.requests if c.run_id == run.id]
    parts = [step_hash(f"part-{n}") for n in (1, 2, 3)]
    # One discovery after the three concurrent planned calls; it resets disable_immediate_execution,
    # so the lone step after the invoke runs at once (no planned call).
    assert steps == ["step", *parts, "step", "step", "step"]
    flags = [c.disable_immediate_execution for c in dev.requests if c.run_id == run.id]
    assert flags == [False, True, True, True, False, False, False]


def test_wait_in_a_parallel_group(dev: StandInExecutor) -> None:
    run = dev.run("selftest-parwait", {"name": "test/parwait"})
    assert run.status == "waiting" and run.memos[step_hash("work")] == {"data": "done"}
    assert dev.send({"name": "test/go", "data": {"n": 3}}) == [run.id]
    assert (run.status, run.output) == ("completed", ["done", 3])


def test_invoked_run_that_waits_answers_later(dev: StandInExecutor) -> None:
    ticks: list[int] = []
    run = dev.run("selftest-asker", {"name": "test/ask"}, between=lambda: ticks.append(1))
    assert len(ticks) == 1  # before the child's call
    assert run.status == "waiting" and run.waiting is None and run.waits[step_hash("ask")]["op"] == "InvokeFunction"
    [child] = [r for r in dev.runs.values() if r.parent == (run.id, step_hash("ask"))]
    assert dev.send({"name": "test/approved", "data": {"ticketId": 1, "by": "bo"}}) == [child.id]
    assert (child.output, run.status, run.output) == ("bo", "completed", "bo")


def test_wait_resumes_on_a_matching_event(dev: StandInExecutor) -> None:
    run = dev.run("selftest-waiter", {"name": "test/ticket", "data": {"ticketId": 7}})
    assert run.status == "waiting"
    assert run.waiting is not None and run.waiting["name"] == "test/approved" and run.waiting["opts"]["timeout"] == "4h"
    assert dev.send({"name": "test/approved", "data": {"ticketId": 8, "by": "x"}}) == []
    assert dev.send({"name": "test/approved", "data": {"ticketId": 7, "by": "x", "tool": "other"}}) == []
    assert run.status == "waiting"
    assert dev.send({"name": "test/approved", "data": {"ticketId": 7, "by": "ann"}}) == [run.id]
    assert (run.status, run.output) == ("completed", "ann")


def test_expired_wait_returns_none(dev: StandInExecutor) -> None:
    run = dev.run("selftest-waiter", {"name": "test/ticket", "data": {"ticketId": 9}})
    assert dev.expire_waits(run.id).output is None and run.status == "completed"


def test_send_starts_triggered_runs(dev: StandInExecutor) -> None:
    [run_id] = dev.send({"name": "test/chain", "data": {"add": 0}})
    assert dev.runs[run_id].output == 2


def test_step_failed_after_retries_is_raised_in_the_function(dev: StandInExecutor) -> None:
    run = dev.run("selftest-stubborn", {"name": "test/stubborn"})
    assert (run.status, run.output) == ("completed", "KeyError: 'nope'")
    assert [(c.step_id, c.attempt) for c in dev.requests if c.run_id == run.id] == [
        ("step", 0),
        ("step", 1),
        ("step", 0),
    ]
    assert run.memos[step_hash("bad")]["error"]["name"] == "KeyError"


def test_failures(dev: StandInExecutor) -> None:
    run = dev.run("selftest-doomed", {"name": "test/doomed"})
    assert run.status == "failed" and run.error["message"] == "attempt 1"
    assert [c.attempt for c in dev.requests if c.run_id == run.id] == [0, 1]
    [handler] = [
        r for r in dev.runs.values() if r.event["name"] == "inngest/function.failed" and r.event["data"]["run_id"] == run.id
    ]
    assert (handler.fn_id, handler.output) == ("selftest-doomed-failure", "attempt 1")
    run = dev.run("selftest-hopeless", {"name": "test/hopeless"})
    assert run.status == "failed" and run.error["name"] == "NonRetriableError"
    assert len([c for c in dev.requests if c.run_id == run.id]) == 1


def test_streamed_answers(served: dict[str, App]) -> None:
    app = served["stream"]
    assert set(app.executor.sync(app.url)) == {"streamtest-hello"}
    run = app.executor.run("streamtest-hello", {"name": "test/hello", "data": {"who": "stream"}})
    assert (run.status, run.output) == ("completed", "hello stream")


def test_cloud_mode_signs_requests(served: dict[str, App]) -> None:
    app = served["cloud"]
    assert set(app.executor.sync(app.url)) == {"cloudtest-hello"}
    run = app.executor.run("cloudtest-hello", {"name": "test/hello", "data": {"who": "world"}})
    assert (run.status, run.output) == ("completed", "hello world")
    body = {
        "event": run.event,
        "events": [run.event],
        "steps": {},
        "use_api": False,
        "ctx": {"run_id": "r", "attempt": 0, "disable_immediate_execution": False, "stack": {"stack": []}},
    }
    url = f"{app.url}?fnId=cloudtest-hello&stepId=step"
    assert httpx.post(url, content=json.dumps(body)).status_code == 401
    forged = {"x-inngest-signature": f"t={int(time.time())}&s={'0' * 64}"}
    assert httpx.post(url, content=json.dumps(body), headers=forged).status_code == 401
    assert httpx.get(app.url).status_code == 401


def test_unreachable_app_is_retried_then_fails() -> None:
    with StandInExecutor() as executor:
        closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/inngest?fnId=gone-fn&stepId=step"
        executor.functions["gone-fn"] = {"id": "gone-fn", "triggers": [], "steps": {"step": {"runtime": {"url": url}}}}
        run = executor.run("gone-fn", {"name": "test/gone"})
        closed.close()
    assert run.status == "failed" and run.error["name"] == "ConnectError"
    # No retries configured: Inngest's default of 4, so 5 attempts.
    assert [(c.status, c.attempt) for c in executor.requests] == [(0, a) for a in range(5)]


def test_a_refused_sync_registers_nothing(served: dict[str, App]) -> None:
    app = served["bad"]
    # inngest-py answers the PUT 200 even so, with Inngest's error as the body.
    res = httpx.put(app.url)
    assert res.status_code == 200 and "At least one function is invalid" in res.json()["error"]
    with pytest.raises(SyncRefusedError, match="max number of cancellation events: 5"):
        app.executor.sync(app.url)
    assert not [f for f in app.executor.functions if f.startswith("badtest-")]


def test_every_run_ends_with_function_finished(dev: StandInExecutor) -> None:
    run = dev.run("selftest-chain", {"name": "test/chain", "data": {"add": 1}})
    [finished] = [e for e in dev.delivered if e["name"] == "inngest/function.finished" and e["data"]["run_id"] == run.id]
    assert (finished["data"]["function_id"], finished["data"]["result"]) == ("selftest-chain", 3)
    assert finished["data"]["_inngest"] == {"status": "Completed"}
    failed = dev.run("selftest-hopeless", {"name": "test/hopeless"})
    ends = [e["name"] for e in dev.delivered if e["data"].get("run_id") == failed.id and e["name"].startswith("inngest/")]
    assert ends == ["inngest/function.finished", "inngest/function.failed"]


def test_cancel_ends_a_run_with_function_cancelled(dev: StandInExecutor) -> None:
    run = dev.run("selftest-cancellable", {"name": "test/long", "data": {"id": 1}})
    assert run.status == "waiting"
    assert dev.send({"name": "test/stop", "data": {"id": 2}}) == []
    assert dev.send({"name": "test/stop", "data": {"id": 1}}) == [run.id]
    assert run.status == "cancelled"
    assert [e["name"] for e in dev.delivered if e["data"].get("run_id") == run.id][-1] == "inngest/function.cancelled"


def test_idempotency_is_one_run_per_key_a_day(dev: StandInExecutor) -> None:
    [first] = dev.send({"name": "test/once", "data": {"key": "a"}})
    assert dev.send({"name": "test/once", "data": {"key": "a"}}) == []
    assert len(dev.send({"name": "test/once", "data": {"key": "b"}})) == 1
    assert dev.runs[first].output == "ran"


def test_app_events_are_delivered_at_once_and_waits_see_only_newer_ones(dev: StandInExecutor) -> None:
    run = dev.run("selftest-announcer", {"name": "test/announce"})
    # The reply was sent (and delivered) before the wait existed: it does not answer it.
    assert run.status == "waiting"
    assert dev.deliver_received() == []
    assert dev.send({"name": "test/reply", "data": {"n": 2}}) == [run.id]
    assert (run.status, run.output) == ("completed", 2)


def test_the_event_api_refuses_inngest_names_and_drops_inngest_data(dev: StandInExecutor) -> None:
    res = httpx.post(f"{dev.url}/e/key", json={"name": "inngest/function.finished", "data": {}})
    assert res.status_code == 400 and "reserved" in res.json()["error"]
    res = httpx.post(f"{dev.url}/e/key", json={"name": "test/chain", "data": {"add": 5, "_inngest": {"fn_id": "x"}}})
    assert res.status_code == 200
    assert dev.events[-1]["data"] == {"add": 5}
    [run_id] = dev.deliver_received()
    assert dev.runs[run_id].output == 7


def test_the_request_body_and_headers(dev: StandInExecutor) -> None:
    run = dev.run("selftest-chain", {"name": "test/chain", "data": {"add": 0}})
    first, second = [c for c in dev.requests if c.run_id == run.id][:2]
    assert first.body is not None and second.body is not None and second.headers is not None
    assert (first.body["version"], second.body["version"]) == (-1, 2)
    assert second.body["ctx"]["stack"] == {"stack": [step_hash("one")], "current": 1}
    assert second.body["ctx"]["step_id"] == "step" and second.body["ctx"]["fn_id"]
    assert second.headers["x-run-id"] == run.id and second.headers["x-inngest-req-version"] == "2"
