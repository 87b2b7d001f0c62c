"""`netrun serve` under attack at its doors: the production Inngest endpoint (signatures,
their age, replays, the URL it registers), Inngest being unreachable, and the API's own
description behind the token. Real uvicorn servers; the stand-in executor signs as Inngest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jcs
import pytest

from netrun.serve.app import create_app
from netrun.serve.inngest_guard import sign
from netrun.serve.settings import ServeSettings, SettingsError

from .fakes.inngest_executor import StandInExecutor
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served
from .fakes.server_thread import free_port
from .test_serve_inngest import ENV, SIGNING_KEY, STEPS

EVENT_KEY = "evt-key-0123456789abcdef"
PUBLIC = "https://netrun.example.com"


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM([]) as server:
        yield server


@pytest.fixture
def signed() -> Iterator[StandInExecutor]:
    with StandInExecutor(signing_key=SIGNING_KEY) as executor:
        yield executor


@pytest.fixture
def production(tmp_path: Path, llm: FakeLLM, signed: StandInExecutor) -> Iterator[Callable[..., Served]]:
    """A production-mode server (signing key, event key) talking to the signing stand-in."""
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    servers: list[Served] = []

    def start(**env: str) -> Served:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("INNGEST_", "NETRUN_"))}
        environ |= {
            **ENV,
            "INNGEST_API_BASE_URL": signed.url,
            "INNGEST_EVENT_API_BASE_URL": signed.url,
            "INNGEST_SIGNING_KEY": SIGNING_KEY,
            "INNGEST_EVENT_KEY": EVENT_KEY,
            **env,
        }
        server = Served(
            lambda port: create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=port))
        ).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def registered_url(executor: StandInExecutor) -> str:
    return str(executor.functions["netrun-steps"]["steps"]["step"]["runtime"]["url"])


def call_body(run_id: str) -> dict[str, Any]:
    """The body of Inngest's first call of a run (no step memoized yet)."""
    return {
        "event": {"name": "netrun/steps.run", "data": {"input": "x"}},
        "events": [{"name": "netrun/steps.run", "data": {"input": "x"}}],
        "steps": {},
        "use_api": False,
        "ctx": {"run_id": run_id, "attempt": 0, "disable_immediate_execution": False, "stack": {"stack": []}},
    }


def post_call(server: Served, body: dict[str, Any], signature: str | None) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json", "x-inngest-server-kind": "cloud"}
    if signature is not None:
        headers["x-inngest-signature"] = signature
    return httpx.post(f"{server.url}/api/inngest?fnId=netrun-steps&stepId=step", content=raw, headers=headers)


def test_an_unsigned_sync_registers_nothing_and_no_request_chooses_the_registered_url(
    production: Callable[..., Served], signed: StandInExecutor
) -> None:
    server = production(NETRUN_PUBLIC_URL=PUBLIC)
    # netrun's own start-up sync is signed (the stand-in checks the bearer; the SDK now
    # refuses unsigned syncs) and registers the configured URL, not the address it PUT to.
    _until(lambda: "netrun-steps" in signed.functions)
    assert registered_url(signed).startswith(f"{PUBLIC}/api/inngest?fnId=")
    signed.functions, signed.apps = {}, {}
    forged = httpx.put(f"{server.url}/api/inngest", headers={"Host": "attacker.example:6666"})
    assert forged.status_code == 401 and "unsigned" in forged.json()["detail"]
    assert signed.functions == {} and signed.apps == {}  # no registration was made
    # A signed sync with a forged Host still registers the configured URL.
    res = httpx.put(
        f"{server.url}/api/inngest", headers={"Host": "attacker.example:6666", "x-inngest-signature": sign(b"", SIGNING_KEY)}
    )
    assert res.status_code == 200, res.text
    assert registered_url(signed).startswith(f"{PUBLIC}/api/inngest?fnId=")


def test_inngest_serve_origin_wins_and_a_public_url_may_carry_a_path(
    production: Callable[..., Served], signed: StandInExecutor
) -> None:
    production(INNGEST_SERVE_ORIGIN="https://edge.example.com:8443", NETRUN_PUBLIC_URL=f"{PUBLIC}/netrun/")
    _until(lambda: "netrun-steps" in signed.functions)
    assert registered_url(signed).startswith("https://edge.example.com:8443/netrun/api/inngest?fnId=")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"INNGEST_SERVE_ORIGIN": "https://edge.example.com/api"}, "INNGEST_SERVE_ORIGIN is an origin"),
        ({"INNGEST_SERVE_ORIGIN": "edge.example.com"}, "INNGEST_SERVE_ORIGIN must be an http"),
        ({"NETRUN_PUBLIC_URL": "https://user:pw@netrun.example.com"}, "no user or password"),
        ({"NETRUN_PUBLIC_URL": "https://netrun.example.com/?x=1"}, "NETRUN_PUBLIC_URL must be a plain URL"),
        ({"NETRUN_PUBLIC_URL": "https://netrun.example.com:port/"}, "NETRUN_PUBLIC_URL must be an http"),
    ],
)
def test_the_registered_url_settings_are_checked_at_start_up(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    environ = {"INNGEST_SIGNING_KEY": SIGNING_KEY, "INNGEST_EVENT_KEY": EVENT_KEY, **env}
    with pytest.raises(SettingsError) as caught:
        ServeSettings.from_env(environ, (tmp_path,))
    assert needle in str(caught.value)
    assert "pw" not in str(caught.value)


def test_stale_undated_future_and_replayed_signed_calls_run_nothing(
    production: Callable[..., Served], signed: StandInExecutor, llm: FakeLLM
) -> None:
    server = production()
    journal = server.app.state.netrun.journal
    key = SIGNING_KEY.removeprefix("signkey-test-").encode()

    def signature(body: dict[str, Any], at: float | None) -> str:
        canonical = jcs.canonicalize(body)
        if at is None:  # no t=: the SDK then checks the HMAC of the body alone
            return f"s={hmac.new(key, canonical, hashlib.sha256).hexdigest()}"
        return sign(canonical, SIGNING_KEY, now=at)

    now = time.time()
    for run_id, at in (("stale", now - 30 * 86400), ("undated", None), ("future", now + 3600), ("edge", now - 400)):
        res = post_call(server, call_body(run_id), signature(call_body(run_id), at))
        assert res.status_code == 401, (run_id, res.status_code, res.text)
        assert journal.run(run_id) is None  # the run's first step never ran
    # A fresh one is accepted, once: the same request again is a replay.
    fresh = signature(call_body("fresh"), now)
    assert post_call(server, call_body("fresh"), fresh).status_code in (200, 206)
    assert journal.run("fresh") is not None
    journal.set_status("fresh", "failed", error="marked by the test")
    replayed = post_call(server, call_body("fresh"), fresh)
    assert replayed.status_code == 401 and "replayed" in replayed.json()["detail"]
    assert journal.run("fresh").status == "failed"  # not run again (it would be set running)
    # A valid timestamp with a wrong HMAC is still the SDK's to refuse.
    assert post_call(server, call_body("bad"), sign(b"{}", SIGNING_KEY)).status_code == 401
    assert journal.run("bad") is None
    assert httpx.get(f"{server.url}/api/inngest").status_code == 401
    assert llm.count == 0


def test_the_signing_executor_still_drives_runs(production: Callable[..., Served], signed: StandInExecutor, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="s", tool_calls=[ToolCall("step", {"note": "x"})]) for _ in range(3)])
    production()
    _until(lambda: "netrun-steps" in signed.functions)
    run = signed.run("netrun-steps", {"name": "netrun/steps.run", "data": {"input": "x"}})
    assert run.status == "completed", run.error
    assert llm.count == 3


def test_rest_starts_and_events_answer_502_when_inngest_is_unreachable(
    tmp_path: Path, llm: FakeLLM, signed: StandInExecutor, production: Callable[..., Served]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    server = production(INNGEST_EVENT_API_BASE_URL=closed)
    start = httpx.post(f"{server.url}/networks/steps/runs", json={"input": "x"}, timeout=30)
    assert start.status_code == 502, start.text
    assert "Inngest did not accept the event netrun/steps.run" in start.json()["detail"]
    sent = httpx.post(f"{server.url}/events", json={"name": "app/anything", "data": {}}, timeout=30)
    assert sent.status_code == 502, sent.text
    assert "Inngest did not accept the event app/anything" in sent.json()["detail"]
    for res in (start, sent):
        assert EVENT_KEY not in res.text


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_the_api_description_requires_the_token_when_one_is_set(tmp_path: Path, llm: FakeLLM, path: str) -> None:
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("INNGEST_", "NETRUN_"))} | ENV

    def make(token: str | None) -> Served:
        env = environ | ({"NETRUN_API_TOKEN": token} if token else {})
        return Served(
            lambda port: create_app(ServeSettings.from_env(env, (tmp_path,), data_dir=tmp_path / "data", port=port))
        ).start()

    with_token = make("t0ken-value")
    try:
        assert httpx.get(with_token.url + path).status_code == 401
        assert httpx.get(with_token.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        allowed = httpx.get(with_token.url + path, headers={"Authorization": "Bearer t0ken-value"})
        assert allowed.status_code == 200
        if path == "/openapi.json":
            assert "/networks/{name}/runs" in allowed.json()["paths"]
    finally:
        with_token.stop()
    without = make(None)
    try:
        assert httpx.get(without.url + path).status_code == 200  # no token: the API is open, so is its description
    finally:
        without.stop()


def test_an_outside_event_cannot_carry_netruns_own_run_metadata(tmp_path: Path, llm: FakeLLM) -> None:
    """``data._netrun`` names the run a function call records: an event that set it could
    overwrite another run's record (Inngest mode) or start runs at a chosen depth."""
    (tmp_path / "steps.yaml").write_text(STEPS.format(base=llm.base_url, prompt="Step"))
    with StandInExecutor() as executor:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("INNGEST_", "NETRUN_"))}
        environ |= {**ENV, "INNGEST_DEV": "1", "INNGEST_API_BASE_URL": executor.url, "INNGEST_EVENT_API_BASE_URL": executor.url}
        server = Served(
            lambda port: create_app(ServeSettings.from_env(environ, (tmp_path,), data_dir=tmp_path / "data", port=port))
        ).start()
        try:
            started = httpx.post(f"{server.url}/networks/steps/runs", json={"input": "x"})
            victim = started.json()["run_id"]
            sent = len(executor.events)
            forged = httpx.post(
                f"{server.url}/events",
                json={"name": "netrun/steps.run", "data": {"_netrun": {"run_id": victim, "network": "steps"}}},
            )
            assert forged.status_code == 422, forged.text
            assert "data._netrun is reserved" in forged.json()["detail"]
            assert len(executor.events) == sent  # nothing was sent to Inngest
        finally:
            server.stop()


def _post_raw(server: Served, body: dict[str, Any], signature: str, query: str) -> httpx.Response:
    headers = {"content-type": "application/json", "x-inngest-server-kind": "cloud", "x-inngest-signature": signature}
    return httpx.post(f"{server.url}/api/inngest?{query}", content=json.dumps(body).encode(), headers=headers)


def test_a_replay_in_another_spelling_of_the_same_signature_or_call_runs_nothing(production: Callable[..., Served]) -> None:
    """The SDK reads ``x-inngest-signature`` with ``parse_qs`` and the query with
    ``dict(query_params)``: a leading zero in ``t``, a percent-encoded ``s``, other
    parameters, ``stepId=step`` left out or another ``fnId`` verify the same. Each spelling
    of a call seen once is the same call: a replay."""
    server = production()
    journal = server.app.state.netrun.journal
    body = call_body("respelled")
    now = int(time.time())
    original = sign(jcs.canonicalize(body), SIGNING_KEY, now=now)
    t, s = original.split("&")
    assert _post_raw(server, body, original, "fnId=netrun-steps&stepId=step").status_code in (200, 206)
    journal.set_status("respelled", "failed", error="marked by the test")
    mac = s.removeprefix("s=")
    variants = [
        (f"t=0{now}&{s}", "fnId=netrun-steps&stepId=step"),
        (f"t=00{now}&{s}", "fnId=netrun-steps&stepId=step"),
        (f"{s}&{t}", "fnId=netrun-steps&stepId=step"),
        (f"{original}&x=1", "fnId=netrun-steps&stepId=step"),
        (f"{original}&s=junk", "fnId=netrun-steps&stepId=step"),
        (f"{t}&s=%{ord(mac[0]):02x}{mac[1:]}", "fnId=netrun-steps&stepId=step"),
        (f"{t}&&{s}", "fnId=netrun-steps&stepId=step"),
        (original, "fnId=netrun-steps"),
        (original, "stepId=step&fnId=netrun-steps"),
        (original, "fnId=netrun-steps&stepId=step&x=1"),
        (original, "fnId=other&fnId=netrun-steps&stepId=step"),
        (original, "fnId=netrun%2Dsteps&stepId=step"),
    ]
    for header, query in variants:
        res = _post_raw(server, body, header, query)
        assert res.status_code == 401, (header, query, res.status_code, res.text)
        assert journal.run("respelled").status == "failed", (header, query)  # the first step did not run again


def test_parallel_steps_with_one_body_still_reach_the_sdk(production: Callable[..., Served]) -> None:
    """Inngest sends the same signed body to each ``stepId`` of a parallel group."""
    server = production()
    body = call_body("parallel")
    signature = sign(jcs.canonicalize(body), SIGNING_KEY)
    for step in ("step", "a" * 40, "b" * 40):
        res = _post_raw(server, body, signature, f"fnId=netrun-steps&stepId={step}")
        assert res.status_code != 401, (step, res.text)  # the SDK's to answer (a step it does not know: an error)
    again = _post_raw(server, body, signature, "fnId=netrun-steps&stepId=" + "b" * 40)
    assert again.status_code == 401 and "replayed" in again.json()["detail"]


def test_the_replay_memory_is_bounded_and_a_flood_never_lets_a_replay_through() -> None:
    """Forged calls (a fresh ``t``, any ``s``) take no room; past the bound, the oldest real
    calls are forgotten and everything dated no later than them is refused."""
    from netrun.serve.inngest_guard import SignatureGuard

    guard = SignatureGuard(SIGNING_KEY, max_seen=8)
    now = time.time()

    def call(i: int, at: float) -> tuple[bytes, dict[str, str]]:
        raw = jcs.canonicalize(call_body(f"r{i}"))
        return raw, {"x-inngest-signature": sign(raw, SIGNING_KEY, now=at)}

    query = {"fnId": "netrun-steps", "stepId": "step"}
    real, real_headers = call(0, now - 50)
    assert guard.refuse("POST", query, real_headers, real, now=now) is None
    for i in range(50):  # forged: refused, and remembered by nobody
        forged = {"x-inngest-signature": f"t={int(now)}&s={i:064x}"}
        assert "does not match" in (guard.refuse("POST", query, forged, real, now=now) or "")
    assert "replayed" in (guard.refuse("POST", query, real_headers, real, now=now) or "")
    for i in range(1, 30):  # real calls past the bound push the first ones out...
        raw, headers = call(i, now - 40 + i)  # whole seconds apart: the signature holds seconds
        assert guard.refuse("POST", query, headers, raw, now=now) is None
    assert len(guard._seen) <= 8
    assert guard.refuse("POST", query, real_headers, real, now=now) is not None  # ...yet the first is still refused
