"""A stand-in for the Inngest executor, for tests: plays Inngest's part over real HTTP.

No Inngest server runs here, so tests drive an app served by ``inngest.fast_api.serve``
themselves, the way Inngest would (wire details from the inngest 0.5.x SDK source)::

    with StandInExecutor() as executor:     # also the Inngest API: /fn/register, /e/<key>
        # client = inngest.Inngest(..., api_base_url=executor.url, event_api_base_url=executor.url)
        executor.sync("http://127.0.0.1:8000/api/inngest")   # PUT; the SDK registers its functions
        run = executor.run("my-app-my-fn", {"name": "app/go", "data": {}})
        assert run.status == "completed"

``drive`` calls the SDK until the run completes, fails, or parks on ``step.wait_for_event``;
``send`` delivers an event (resuming parked waits whose ``if`` holds, starting triggered
runs). Sleeps end at once; ``step.invoke`` drives the child run at once (a child that waits
answers its parent when it ends); retries happen without back-off; a failed run sends
``inngest/function.failed`` (which starts ``on_failure`` handlers). Events the app sends are only recorded (``events``);
``deliver_received`` delivers them. With a ``signing_key`` it plays Inngest Cloud: it signs
every request, checks the SDK's response signatures and the bearer token on registration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import celpy
import httpx
import jcs

JSON = dict[str, Any]
DEFAULT_RETRIES = 3
"""Inngest's retries when a function sets none (the SDK then leaves ``retries`` out of its config)."""


@dataclass(frozen=True)
class Call:
    """One request the executor made to the SDK."""

    fn_id: str
    step_id: str
    """The ``stepId`` query parameter: ``"step"`` (run on from the start) or a step hash."""
    status: int
    """The SDK's HTTP status (the inner one for a streamed answer); 0 when the request failed."""
    run_id: str
    attempt: int = 0
    retry_after: str | None = None
    """The SDK's ``retry-after`` header (a ``RetryAfterError``: when to try again, ISO 8601 UTC).
    Recorded only: this executor retries at once."""


@dataclass
class Run:
    """A function run as the executor tracks it."""

    id: str
    fn_id: str
    event: JSON
    memos: dict[str, Any] = field(default_factory=dict)
    """Step hash -> memo sent back to the SDK: ``{"data": x}``, ``{"error": {...}}``, an event, or None."""
    stack: list[str] = field(default_factory=list)
    """Step hashes in the order they were memoized."""
    status: str = "running"
    """"running", "waiting", "completed" or "failed"."""
    output: Any = None
    error: Any = None
    """The SDK's error body (``{code, name, message, stack}``) when the run failed."""
    waits: dict[str, JSON] = field(default_factory=dict)
    """Step hash -> the open ``WaitForEvent`` or ``InvokeFunction`` op."""
    attempts: dict[str, int] = field(default_factory=dict)
    """Step hash -> times the step ran; ``"step"`` -> function-level errors (HTTP 500)."""
    parent: tuple[str, str] | None = None
    """(run id, step hash) of the ``step.invoke`` this run answers."""
    queue: list[tuple[str, int]] = field(default_factory=lambda: [("step", 0)], repr=False)
    discover: bool = field(default=False, repr=False)
    parallel: bool = field(default=False, repr=False)

    @property
    def waiting(self) -> JSON | None:
        """The open ``WaitForEvent`` op, if any."""
        return next((op for op in self.waits.values() if op["op"] == "WaitForEvent"), None)


def step_hash(step_id: str, index: int = 0) -> str:
    """The hash the SDK gives a step id: sha1 of ``id``, of ``id:N`` for its N-th repeat."""
    return hashlib.sha1((f"{step_id}:{index}" if index else step_id).encode()).hexdigest()


_CEL = celpy.Environment()


@lru_cache(maxsize=256)
def _cel_program(expr: str) -> celpy.Runner:
    return _CEL.program(_CEL.compile(expr))


def cel_true(expr: str, names: JSON) -> bool:
    """Whether a CEL expression holds, as Inngest reads it: errors (a missing field...) are false."""
    try:
        result = _cel_program(expr).evaluate({k: celpy.json_to_cel(v) for k, v in names.items()})
    except celpy.CELEvalError:
        return False
    return isinstance(result, celpy.celtypes.BoolType) and bool(result)


def _event(event: JSON) -> JSON:
    return {
        **event,
        "data": event.get("data") or {},
        "id": event.get("id") or str(uuid.uuid4()),
        "ts": int(event.get("ts") or time.time() * 1000),
    }


def _error(err: Any) -> JSON:
    err = err if isinstance(err, dict) else {"message": str(err)}
    return {"name": err.get("name") or "Error", "message": err.get("message") or "", "stack": err.get("stack")}


def _triggered(trigger: JSON, event: JSON) -> bool:
    name = trigger.get("event")
    if name is None:  # a cron trigger
        return False
    if name != event["name"] and not (name.endswith("*") and event["name"].startswith(name[:-1])):
        return False
    return not trigger.get("expression") or cel_true(trigger["expression"], {"event": event})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    executor: StandInExecutor

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, reply = self.server.executor._receive(self.command, self.path, headers, body)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _answer  # noqa: N815 - the names http.server calls

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StandInExecutor:
    """Inngest's executor and API for one test: see the module docstring."""

    def __init__(self, signing_key: str | None = None) -> None:
        self.signing_key = signing_key
        self._key = re.sub(r"^signkey-\w+-", "", signing_key or "").encode()
        self._bearer = f"Bearer {hashlib.sha256(bytes.fromhex(self._key.decode())).hexdigest()}" if signing_key else None
        self.functions: dict[str, JSON] = {}
        self.apps: dict[str, dict[str, JSON]] = {}
        """App id -> its function configs, from its last sync (``functions`` joins them)."""
        self._synced: dict[str, JSON] | None = None
        self.requests: list[Call] = []
        self.events: list[JSON] = []
        self.runs: dict[str, Run] = {}
        self._delivered = 0
        self._driving: set[str] = set()
        self._between: Callable[[], None] | None = None
        self._first_call = False
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=30)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.executor = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="stand-in-inngest", daemon=True).start()

    def __enter__(self) -> StandInExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    # The Inngest API, called by the SDK (on the server's threads).

    def _receive(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        path = urlsplit(path).path
        if method == "POST" and path == "/fn/register":
            if self._bearer and headers.get("authorization") != self._bearer:
                return 401, {"error": "bad signing key"}
            payload = json.loads(body)
            with self._lock:
                self._synced = self.apps[payload["appname"]] = {fn["id"]: fn for fn in payload["functions"]}
                self.functions = {k: v for fns in self.apps.values() for k, v in fns.items()}
            return 200, {"ok": True, "modified": True}
        if method == "POST" and path.startswith("/e/"):
            payload = json.loads(body)
            events = [_event(e) for e in (payload if isinstance(payload, list) else [payload])]
            with self._lock:
                self.events.extend(events)
            return 200, {"ids": [e["id"] for e in events], "status": 200}
        return 404, {"error": f"no such endpoint: {method} {path}"}

    # Talking to the SDK.

    def _headers(self, body: bytes) -> dict[str, str]:
        headers = {"content-type": "application/json", "x-inngest-server-kind": "cloud" if self.signing_key else "dev"}
        if self.signing_key:
            t = str(int(time.time()))
            canonical = jcs.canonicalize(json.loads(body)) if body else b""
            headers["x-inngest-signature"] = f"t={t}&s={hmac.new(self._key, canonical + t.encode(), hashlib.sha256).hexdigest()}"
        return headers

    def _post(self, url: str, body: JSON) -> tuple[int, dict[str, str], Any]:
        raw = json.dumps(body).encode()
        res = self._http.post(url, content=raw, headers=self._headers(raw))
        headers = {k.lower(): v for k, v in res.headers.items()}
        if res.status_code == 201:  # INNGEST_STREAMING=force: keep-alive spaces, then {status, headers, body}
            wrapped = json.loads(res.text)
            return wrapped["status"], {k.lower(): v for k, v in wrapped["headers"].items()}, json.loads(wrapped["body"])
        if self.signing_key and res.status_code in (200, 206, 500):
            sig = dict(parse_qsl(headers.get("x-inngest-signature", "")))
            expected = hmac.new(self._key, res.content + sig.get("t", "").encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(sig.get("s", ""), expected):
                raise RuntimeError(f"bad response signature from {url}: {headers.get('x-inngest-signature')!r}")
        return res.status_code, headers, res.json() if res.content else None

    def sync(self, serve_url: str) -> dict[str, JSON]:
        """PUT the serve URL, as Inngest's sync does; return the function configs the app registered."""
        self._synced = None
        res = self._http.put(serve_url, headers=self._headers(b""))
        # The SDK answers 200 even when registration failed (the API's error is the body): check it came.
        if res.status_code != 200 or self._synced is None:
            raise RuntimeError(f"sync of {serve_url} failed: HTTP {res.status_code} {res.text}")
        return dict(self._synced)

    def start(self, fn_id: str, event: JSON) -> str:
        """Create a run of ``fn_id`` for ``event`` (nothing is called yet); return its id."""
        if fn_id not in self.functions:
            raise KeyError(f"function {fn_id!r} is not registered (have {sorted(self.functions)})")
        run = Run(id=str(uuid.uuid4()), fn_id=fn_id, event=_event(event))
        self.runs[run.id] = run
        return run.id

    def run(self, fn_id: str, event: JSON, **kw: Any) -> Run:
        return self.drive(self.start(fn_id, event), **kw)

    def drive(self, run_id: str, *, max_calls: int = 1000, between: Callable[[], None] | None = None) -> Run:
        """Call the SDK until the run completes, fails or waits.

        ``between`` runs before every call but the first, including the calls for the runs
        this one invokes, and for a parent run it resumes by ending.
        """
        run, calls, outer = self.runs[run_id], 0, self._between
        if between is not None:
            self._between, self._first_call = between, True
        self._driving.add(run.id)
        try:
            while run.status in ("running", "waiting"):
                if run.queue:
                    step_id, attempt = run.queue.pop(0)
                elif run.discover:
                    run.discover, step_id, attempt = False, "step", 0
                else:
                    break
                if calls >= max_calls:
                    raise RuntimeError(f"run {run.id} of {run.fn_id} still going after {max_calls} calls")
                if self._between is not None and not self._first_call:
                    self._between()
                calls, self._first_call = calls + 1, False
                run.status = "running"
                self._call(run, step_id, attempt)
        finally:
            self._driving.discard(run.id)
            self._between = outer
        if run.status == "running" and run.waits:
            run.status = "waiting"
        return run

    def _call(self, run: Run, step_id: str, attempt: int) -> None:
        fn = self.functions[run.fn_id]
        max_attempts = (fn["steps"]["step"].get("retries") or {}).get("attempts", DEFAULT_RETRIES) + 1
        ctx = {
            "run_id": run.id,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "disable_immediate_execution": run.parallel,
            "stack": {"stack": list(run.stack)},
        }
        body = {"event": run.event, "events": [run.event], "steps": dict(run.memos), "use_api": False, "ctx": ctx}
        url = urlsplit(fn["steps"]["step"]["runtime"]["url"])
        query = urlencode({**dict(parse_qsl(url.query)), "stepId": step_id})
        try:
            status, headers, reply = self._post(urlunsplit(url._replace(query=query)), body)
        except httpx.TransportError as err:  # the app is down or died mid-call: retried like Inngest does
            status, headers, reply = 0, {}, {"name": type(err).__name__, "message": str(err)}
        self.requests.append(Call(run.fn_id, step_id, status, run.id, attempt, headers.get("retry-after")))
        no_retry = headers.get("x-inngest-no-retry") == "true"
        if status == 200:
            self._finish(run, "completed", output=reply)
        elif status == 206:
            for op in reply:
                self._op(run, op, max_attempts, no_retry)
        elif status in (0, 500):
            run.attempts["step"] = run.attempts.get("step", 0) + 1
            if no_retry or attempt + 1 >= max_attempts:
                self._finish(run, "failed", error=reply)
            else:
                run.queue.insert(0, (step_id, attempt + 1))
        else:
            raise RuntimeError(f"HTTP {status} from the SDK calling {run.fn_id} (step {step_id}): {reply}")

    def _op(self, run: Run, op: JSON, max_attempts: int, no_retry: bool) -> None:
        h, kind = op["id"], op["op"]
        if h in run.memos or h in run.waits:  # reported again by a later discovery call
            return
        if kind in ("StepRun", "StepError", "StepFailed"):
            run.attempts[h] = run.attempts.get(h, 0) + 1
        if kind == "StepRun":
            self._memo(run, h, {"data": op.get("data")})
        elif kind == "StepPlanned":
            run.parallel = True  # as Inngest does once steps run in parallel
            if (h, 0) not in run.queue:
                run.queue.append((h, 0))
        elif kind == "StepError" and not no_retry and run.attempts[h] < max_attempts:
            run.queue.insert(0, (h, run.attempts[h]))
        elif kind in ("StepError", "StepFailed"):
            self._memo(run, h, {"error": _error(op.get("error"))})
        elif kind == "Sleep":
            self._memo(run, h, None)
        elif kind == "WaitForEvent":
            run.waits[h] = op
        elif kind == "InvokeFunction":
            run.waits[h] = op
            self._invoke(run, op)
        elif kind == "AIGateway":
            self._memo(run, h, self._ai(op["opts"]))
        else:
            raise RuntimeError(f"unknown op {kind!r} from {run.fn_id}: {op}")

    def _memo(self, run: Run, h: str, memo: Any) -> None:
        run.memos[h] = memo
        run.stack.append(h)
        run.waits.pop(h, None)
        run.discover = True

    def _invoke(self, run: Run, op: JSON) -> None:
        opts = op.get("opts") or {}
        target = opts.get("function_id", "")
        if target not in self.functions:
            self._memo(run, op["id"], {"error": _error({"name": "FunctionNotFoundError", "message": f"no function {target}"})})
            return
        child_id = self.start(target, {"name": "inngest/function.invoked", "data": (opts.get("payload") or {}).get("data")})
        self.runs[child_id].parent = (run.id, op["id"])
        self.drive(child_id)  # answers the parent in _finish, now or when it ends later

    def _ai(self, opts: JSON) -> JSON:
        headers = dict(opts.get("headers") or {})
        if opts.get("format") == "anthropic":
            headers["x-api-key"] = opts["auth_key"]
        else:
            headers["authorization"] = f"Bearer {opts['auth_key']}"
        res = self._http.post(opts["url"], json=opts["body"], headers=headers)
        if res.is_success:
            return {"data": res.json()}
        return {"error": _error({"name": "AIGatewayError", "message": f"HTTP {res.status_code}: {res.text}"})}

    def _finish(self, run: Run, status: str, *, output: Any = None, error: Any = None) -> None:
        run.status, run.output, run.error = status, output, error
        run.queue.clear()
        if run.parent is not None:
            parent = self.runs[run.parent[0]]
            self._memo(parent, run.parent[1], {"data": output} if status == "completed" else {"error": _error(error)})
            if parent.id not in self._driving:
                self.drive(parent.id)
        if status == "failed" and run.event["name"] != "inngest/function.failed":  # starts on_failure handlers
            data = {"function_id": run.fn_id, "run_id": run.id, "error": error, "event": run.event}
            self.send({"name": "inngest/function.failed", "data": data})

    # Events.

    def send(self, event: JSON, *, between: Callable[[], None] | None = None) -> list[str]:
        """Deliver an event: resume the waits it satisfies, start the runs it triggers; return their run ids.

        ``between`` is passed to ``drive`` for each of those runs.
        """
        event, touched = _event(event), []
        for run in list(self.runs.values()):
            if run.id in self._driving:
                continue
            hits = [
                h
                for h, op in run.waits.items()
                if op["op"] == "WaitForEvent"
                and op["name"] == event["name"]
                and cel_true((op.get("opts") or {}).get("if") or "true", {"event": run.event, "async": event})
            ]
            for h in hits:
                self._memo(run, h, event)
            if hits:
                touched.append(run.id)
                self.drive(run.id, between=between)
        for fn_id, fn in list(self.functions.items()):
            if any(_triggered(t, event) for t in fn.get("triggers", [])):
                touched.append(self.run(fn_id, event, between=between).id)
        return touched

    def deliver_received(self, *, between: Callable[[], None] | None = None) -> list[str]:
        """``send`` the events the app sent to /e/<key> since the last call; return the run ids touched."""
        with self._lock:
            pending, self._delivered = self.events[self._delivered :], len(self.events)
        return [run_id for event in pending for run_id in self.send(event, between=between)]

    def expire_waits(self, run_id: str, *, between: Callable[[], None] | None = None) -> Run:
        """Time out the run's open ``wait_for_event`` steps (they return None) and drive it on."""
        run = self.runs[run_id]
        for h in [h for h, op in run.waits.items() if op["op"] == "WaitForEvent"]:
            self._memo(run, h, None)
        return self.drive(run_id, between=between)
