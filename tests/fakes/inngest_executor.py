"""A stand-in for the Inngest server, for tests: plays Inngest's part over real HTTP.

No Inngest server runs here, so tests drive an app served by ``inngest.fast_api.serve``
themselves, the way Inngest would::

    with StandInExecutor() as executor:     # also the Inngest API: /fn/register, /e/<key>, /v0/runs
        # client = inngest.Inngest(..., api_base_url=executor.url, event_api_base_url=executor.url)
        executor.sync("http://127.0.0.1:8000/api/inngest")   # PUT; the SDK registers its functions
        run = executor.run("my-app-my-fn", {"name": "app/go", "data": {}})
        assert run.status == "completed"

It follows the server's Go source (github.com/inngest/inngest, read Aug 2026), one queue of
items for all runs. ``drive`` (and ``run``, ``send``, ``deliver_received``, ``expire_waits``)
works the queue until it is empty: every run then has completed, failed, been cancelled or
is parked on a wait or an invoke. Sleeps end at once; retries happen without back-off
(``retry-after`` is recorded only); waits time out only by ``expire_waits``.

=====================================================  ==========================================================
Behaviour                                              Server source it follows
=====================================================  ==========================================================
Sync validated, refused as a whole (HTTP 400 ``{"error":  pkg/devserver/api.go (register), pkg/registration,
"At least one function is invalid: ..."}``; the SDK      pkg/inngest/function.go ``Validate``, trigger.go,
answers its PUT 200 with that body): name, <= 10         concurrency.go, pkg/expressions/validation.go,
triggers, no duplicates, event names <= 255, trigger     pkg/consts/consts.go; SDK: comm_lib/handler.py
expressions compile, <= 5 cancels, ``cancel.if`` under   ``_parse_out_of_band_response``
the restrictive policy, <= 2 concurrency limits with a
key unless fn-scoped, rate limit period <= 24 h, debounce
1 s - 7 d; retries above 20 are clamped to 20
Default retries 4 (5 attempts)                         pkg/consts/consts.go ``DefaultRetryCount``, pkg/inngest/function_step.go
Request: JCS-canonical body ``{event, events, steps,     pkg/execution/driver/driver.go ``MarshalV1``, request.go;
defers, ctx{fn_id, run_id, env, step_id, attempt,        pkg/execution/driver/httpdriver/httpdriver.go ``do``
max_attempts, stack{stack, current},                     (headers), util.go ``Sign``
disable_immediate_execution, use_api}, version,
use_api}``; headers X-Run-ID, x-inngest-req-version,
X-Inngest-Step-ID, X-Inngest-Signature; ``stepId`` query
Over 4 MB: no steps nor events, ``use_api`` (the SDK     driver.go ``MarshalV1`` (``MaxSDKRequestBodySize``);
reads /v0/runs/{id}/actions and /batch)                  SDK client_lib ``_get_steps`` / ``_get_batch``
Answers: 206 ops; 200 ends the run (no x-inngest-sdk:    httpdriver.go ``HandleHttpResponse``, util.go ``ShouldRetry``
error); non-2xx and transport errors retried (the same
item, attempt + 1) unless x-inngest-no-retry
StepRun/StepFailed memoized, then one discovery         pkg/execution/executor/executor.go ``handleGeneratorStep``,
(stepId=step, attempt 0)                                 ``handleStepFailed``, ``maybeEnqueueDiscoveryStep``
StepError re-queues the same item with attempt + 1     executor.go ``handleStepError`` (``ErrHandledStepError``),
(after a discovery call: a discovery call); its last     util.go ``IsStepRetryable``, ``executeDriverV1``
attempt (or noRetry) becomes StepFailed
Several ops in one answer: ``disable_immediate_          executor.go ``HandleGeneratorResponse``,
execution`` set; each StepPlanned its own queue item,    ``handleGeneratorGroup``, ``handleGeneratorStepPlanned``,
run CONCURRENTLY (same state snapshot); pending steps    state/v2/state_metadata.go ``ShouldCoalesceParallelism``;
saved, ONE discovery once none is pending, which         force_step_plan.go ``maybeResetForceStepPlan`` (request
resets ``disable_immediate_execution`` (request v2)       version >= 2; inngest-py answers x-inngest-req-version 2)
Queue items deduplicated by job id (a step planned      executor.go (``jobID`` of each enqueue, ``ErrQueueItemExists``)
twice runs once)
More than 1000 ops in an answer, or steps in a run:     executor.go ``HandleGeneratorResponse``
the run fails; a step output over 4 MB fails the run     (``DefaultMaxStepLimit``), ``MaxStepOutputSize``
WaitForEvent: ``event.*`` interpolated from the trigger  executor.go ``handleGeneratorWaitForEvent``,
event (missing: null); matches only events received      ``handlePausesAllNaively`` (``CreatedAfter``), ``handlePause``;
after the wait was created; missing ``async`` fields     pkg/expressions/residual.go ``Interpolate``, unknown.go;
are unknown (``==`` false, ``!=`` true, ``!`` false,      state/pause.go ``GetResumeData``
``< <=`` true, ``> >=`` false; ``== null`` true); memo
the event, or null on timeout; a policy violation only
warns
Invoke: the child gets ``inngest/function.invoked``     executor.go ``handleGeneratorInvokeFunction``,
with ``data._inngest {fn_id, correlation_id, expire,     pkg/event/invoke.go ``NewInvocationEvent``;
source_fn_id...}``; its ``inngest/function.finished``    ``HandleInvokeFinish``, pause.go ``GetResumeData``
resumes the parent (``{"data": result}`` or
``{"error": ...}``)
Every run ends with ``inngest/function.finished`` (data  pkg/execution/executor/finalize.go ``finalizeEvents``
function_id, run_id, event, events, result|error,
correlation_id, ``_inngest.status``), plus ``failed`` or
``cancelled``; none for runs of finished/failed events
Cancel entries are pauses created at the run's start,   executor.go ``createCancellationPauses``, ``handlePause``
matched by newer events (``event.*`` interpolated,      (``pause.Cancel``), ``Cancel``
``async`` the incoming event): the run ends cancelled
Events API: ``inngest/*`` names refused (400), ``data.   pkg/event/inbound.go ``NormalizeInbound``,
_inngest`` dropped; each event triggers functions and    pkg/api/api.go (event handler)
resumes waits as soon as the call that sent it ended
Idempotency = a rate limit of 1 per 24 h per key;        pkg/sdk/function.go (``Idempotency`` -> ``RateLimit``),
rate-limited events start no run                         function.go ``RateLimit.IsValid``
=====================================================  ==========================================================

With a ``signing_key`` it plays Inngest Cloud: it signs every request, checks the SDK's
response signatures and the bearer token on registration. ``parallel_order`` is the order
in which the answers of concurrent planned calls are handled ("planned" or "reversed"),
to test code under either completion order.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import celpy
import httpx
import jcs
from celpy.celparser import CELParser
from lark import Token, Tree

JSON = dict[str, Any]
DEFAULT_RETRIES = 4
"""Inngest's retries when a function sets none (consts.DefaultRetryCount): 5 attempts."""
MAX_RETRIES = 20
MAX_STEPS = 1000
MAX_STEP_OUTPUT = 4 * 1024 * 1024
MAX_REQUEST = 4 * 1024 * 1024
MAX_TRIGGERS = 10
MAX_CANCELS = 5
MAX_CONCURRENCY = 2
MAX_EVENT_NAME = 255
DAY = 24 * 3600.0
REQUEST_VERSION = 2
FINISHED, FAILED, CANCELLED, INVOKED = (
    "inngest/function.finished",
    "inngest/function.failed",
    "inngest/function.cancelled",
    "inngest/function.invoked",
)


class SyncRefusedError(RuntimeError):
    """Inngest refused the app's sync (the SDK answered the PUT 200 with the error body)."""


@dataclass(frozen=True)
class Call:
    """One request the executor made to the SDK."""

    fn_id: str
    step_id: str
    """The ``stepId`` query parameter: ``"step"`` (a discovery call) or a step hash."""
    status: int
    """The SDK's HTTP status (the inner one for a streamed answer); 0 when the request failed."""
    run_id: str
    attempt: int = 0
    retry_after: str | None = None
    """The SDK's ``retry-after`` header (a ``RetryAfterError``). Recorded only: retried at once."""
    disable_immediate_execution: bool = False
    body: JSON | None = field(default=None, repr=False, compare=False)
    """The request body as sent."""
    headers: dict[str, str] | None = field(default=None, repr=False, compare=False)


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
    """"running", "waiting", "completed", "failed" or "cancelled"."""
    output: Any = None
    error: Any = None
    """The SDK's error body (``{code, name, message, stack}``) when the run failed."""
    waits: dict[str, JSON] = field(default_factory=dict)
    """Step hash -> the open ``WaitForEvent`` or ``InvokeFunction`` op (``opts.if`` interpolated)."""
    attempts: dict[str, int] = field(default_factory=dict)
    """Step hash -> times the step ran; ``"step"`` -> function-level errors (non-2xx)."""
    parent: tuple[str, str] | None = None
    """(run id, step hash) of the ``step.invoke`` this run answers."""
    force_plan: bool = False
    """``disable_immediate_execution``: set by an answer of several ops, reset by the discovery after them."""
    pending: set[str] = field(default_factory=set)
    """Ops of the last parallel group not finished yet: the discovery waits for them."""
    version: int = -1
    """The request version (-1 until the SDK answered)."""
    created: int = 0
    """The event sequence number when the run started (cancel pauses match newer events)."""
    jobs: set[str] = field(default_factory=set, repr=False)
    wait_seq: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def waiting(self) -> JSON | None:
        """The open ``WaitForEvent`` op, if any."""
        return next((op for op in self.waits.values() if op["op"] == "WaitForEvent"), None)


@dataclass
class _Item:
    run_id: str
    step_id: str
    attempt: int = 0
    outgoing: str = ""
    """The step that led here (the stack index ``ctx.stack.current`` points after it)."""
    group: int | None = None
    """Planned items of one answer share a group: they run concurrently."""


def step_hash(step_id: str, index: int = 0) -> str:
    """The hash the SDK gives a step id: sha1 of ``id``, of ``id:N`` for its N-th repeat."""
    return hashlib.sha1((f"{step_id}:{index}" if index else step_id).encode()).hexdigest()


# -- expressions: CEL as Inngest evaluates it (pkg/expressions) ---------------------------------


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
"""A field that is not there: not an error (pkg/expressions/unknown.go)."""


class ExpressionError(Exception):
    pass


_PARSER = CELParser()
_CEL = celpy.Environment()
_MACROS = {"has", "all", "exists", "exists_one", "map", "filter"}
_CONVERSIONS = {"int", "uint", "double"}


@lru_cache(maxsize=512)
def _parse(expr: str) -> Tree:
    try:
        return _PARSER.parse(expr)
    except Exception as exc:  # lark's and celpy's errors
        raise ExpressionError(f"compile error: {exc}") from None


def compile_error(expr: str) -> str | None:
    """Why the expression does not compile, or None."""
    try:
        _CEL.compile(expr)
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def policy_violations(expr: str) -> list[str]:
    """Violations of ``DefaultRestrictiveValidationPolicy`` (no macros, only logic operators,
    indexing and int/uint/double), as pkg/expressions/validation.go ``validateAST`` lists them."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if not isinstance(node, Tree):
            return
        kind = node.data
        if kind == "ident_arg":
            name = str(node.children[0])
            if name in _MACROS:
                found.append(f"macros are disallowed (uses '{name}')")
            elif name not in _CONVERSIONS:
                found.append(f"function calls are disallowed (uses '{name}')")
        elif kind == "member_dot_arg":
            name = str(node.children[1])
            found.append(
                f"macros are disallowed (uses '{name}')" if name in _MACROS else f"function calls are disallowed (uses '{name}')"
            )
        elif kind in (
            "addition_add",
            "addition_sub",
            "multiplication_mul",
            "multiplication_div",
            "multiplication_mod",
            "unary_neg",
        ):
            found.append(f"function calls are disallowed (uses '{kind}')")
        for child in node.children:
            walk(child)

    walk(_parse(expr))
    return found


def _literal(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if text[-1:] in ("u", "U") and text[:-1].isdigit():
        return int(text[:-1])
    if text[:1] in "\"'" or text[:2].lower() in ("r'", 'r"', "b'", 'b"'):
        if text[:3] in ('"""', "'''"):
            return text[3:-3]
        if text[:1].lower() == "r":
            return text[2:-1]
        value = ast.literal_eval(text)
        return value.decode() if isinstance(value, bytes) else value
    if text.lower().startswith(("0x", "-0x")):
        return int(text, 16)
    number = float(text)
    return int(text) if re.fullmatch(r"-?\d+", text) else number


def _truthy(v: Any) -> bool:
    if v is UNKNOWN or v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, (str, list, dict)):
        return len(v) > 0
    return True


def _same_kind(a: Any, b: Any) -> bool:
    num = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, num) and isinstance(b, num):
        return True
    return type(a) is type(b)


def _compare(op: str, a: Any, b: Any) -> Any:
    if a is UNKNOWN or b is UNKNOWN:  # unknown.go handleUnknownCall
        if op == "==":
            return a is None or b is None
        if op == "!=":
            return not (a is None or b is None)
        first_unknown = a is UNKNOWN
        return first_unknown if op in ("<", "<=") else not first_unknown
    if op in ("==", "!="):
        if (a is None) != (b is None):  # null against a value
            return op == "!="
        if a is not None and not _same_kind(a, b):
            raise ExpressionError(f"no such overload: {type(a).__name__} {op} {type(b).__name__}")
        return (a == b) == (op == "==")
    if a is None or b is None:  # a zero value in place of null
        zero = 0 if isinstance(a if b is None else b, (int, float)) else ""
        a, b = (zero if a is None else a), (zero if b is None else b)
    if not _same_kind(a, b):
        raise ExpressionError(f"no such overload: {type(a).__name__} {op} {type(b).__name__}")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


_RELATIONS = {
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
}


class _Eval:
    def __init__(self, names: JSON, missing: dict[str, Any]) -> None:
        self.names = names
        self.missing = missing
        """What a missing field under each root name is: null for interpolated ``event``."""

    def __call__(self, node: Any) -> Any:
        if isinstance(node, Token):
            return _literal(str(node)) if node.type != "IDENT" else self.ident(str(node))
        kind, kids = node.data, node.children
        if kind in ("expr",):
            if len(kids) == 3:
                return self(kids[1]) if _truthy(self(kids[0])) else self(kids[2])
            return self(kids[0])
        if kind in ("conditionalor", "conditionaland"):
            if len(kids) == 1:
                return self(kids[0])
            left = self(kids[0])
            if kind == "conditionalor":
                return True if _truthy(left) else _truthy(self(kids[1]))
            return False if not _truthy(left) else _truthy(self(kids[1]))
        if kind in ("relation", "addition", "multiplication") and len(kids) == 2:
            return self.binary(kids[0].data, kids[0].children[0], kids[1])
        if kind == "unary" and len(kids) == 2:
            value = self(kids[1])
            if kids[0].data == "unary_not":
                return False if value is UNKNOWN else not _truthy(value)
            return False if value is UNKNOWN else -value
        if kind in ("relation", "addition", "multiplication", "unary", "member", "primary", "paren_expr", "literal", "ident"):
            if kind == "ident":
                return self.ident(str(kids[0]))
            if kind == "literal":
                return _literal(str(kids[0]))
            return self(kids[0])
        if kind == "member_dot":
            return self.select(self(kids[0]), str(kids[1]), kids[0])
        if kind == "member_index":
            base, key = self(kids[0]), self(kids[1])
            if isinstance(base, dict):
                return base.get(key, self._missing_of(kids[0]))
            if isinstance(base, list) and isinstance(key, int) and not isinstance(key, bool):
                return base[key] if -len(base) <= key < len(base) else UNKNOWN
            return UNKNOWN if base in (UNKNOWN, None) else self._raise("no such key")
        if kind == "list_lit":
            return [self(e) for e in kids[0].children] if kids else []
        if kind == "map_lit":
            items = kids[0].children if kids else []
            return {self(items[i]): self(items[i + 1]) for i in range(0, len(items), 2)}
        if kind == "ident_arg":
            name, args = str(kids[0]), (kids[1].children if len(kids) > 1 else [])
            if name == "has":
                return self.has(args[0])
            values = [self(a) for a in args]
            if any(v is UNKNOWN for v in values):
                return 0 if name == "size" else False
            if name == "size":
                return len(values[0])
            if name in ("int", "uint"):
                return int(values[0])
            if name == "double":
                return float(values[0])
            if name == "string":
                return str(values[0])
            raise ExpressionError(f"unknown function {name}")
        if kind == "member_dot_arg":
            target, name = self(kids[0]), str(kids[1])
            args = [self(a) for a in (kids[2].children if len(kids) > 2 else [])]
            if target is UNKNOWN or any(a is UNKNOWN for a in args):
                return 0 if name == "size" else False
            methods: dict[str, Callable[[], Any]] = {
                "startsWith": lambda: target.startswith(args[0]),
                "endsWith": lambda: target.endswith(args[0]),
                "contains": lambda: args[0] in target,
                "matches": lambda: re.search(args[0], target) is not None,
                "size": lambda: len(target),
                "lowerAscii": lambda: target.lower(),
                "upperAscii": lambda: target.upper(),
            }
            if name not in methods or not isinstance(target, (str, list, dict)):
                raise ExpressionError(f"no such overload: {name}")
            return methods[name]()
        raise ExpressionError(f"unsupported expression part: {kind}")

    def binary(self, op: str, left: Any, right: Any) -> Any:
        if op in _RELATIONS:
            return _compare(_RELATIONS[op], self(left), self(right))
        a, b = self(left), self(right)
        if op == "relation_in":
            if a is UNKNOWN or b is UNKNOWN:
                return False
            return a in b if isinstance(b, (list, dict)) else False
        if op == "addition_add":
            if a is UNKNOWN or b is UNKNOWN:
                return b if a is UNKNOWN else a
            return a + b if _same_kind(a, b) else f"{a}{b}"
        if a is UNKNOWN or b is UNKNOWN:
            return False
        if op == "addition_sub":
            return a - b
        if op == "multiplication_mul":
            return a * b
        if op == "multiplication_div":
            return a // b if isinstance(a, int) and isinstance(b, int) else a / b
        if op == "multiplication_mod":
            return a % b
        raise ExpressionError(f"unsupported operator {op}")

    @staticmethod
    def _raise(message: str) -> Any:
        raise ExpressionError(message)

    def _root(self, node: Any) -> str | None:
        while isinstance(node, Tree):
            if node.data == "ident":
                return str(node.children[0])
            node = node.children[0] if node.children else None
        return str(node) if isinstance(node, Token) and node.type == "IDENT" else None

    def _missing_of(self, node: Any) -> Any:
        return self.missing.get(self._root(node) or "", UNKNOWN)

    def ident(self, name: str) -> Any:
        return self.names[name] if name in self.names else self.missing.get(name, UNKNOWN)

    def select(self, base: Any, name: str, node: Any) -> Any:
        if isinstance(base, dict):
            return base[name] if name in base else self._missing_of(node)
        return self._missing_of(node) if base is None else UNKNOWN

    def has(self, arg: Any) -> bool:
        node = arg
        while isinstance(node, Tree) and node.data != "member_dot" and len(node.children) == 1:
            node = node.children[0]
        if not (isinstance(node, Tree) and node.data == "member_dot"):
            raise ExpressionError("invalid argument to has() macro")
        base = self(node.children[0])
        if base is UNKNOWN or not isinstance(base, dict):
            raise ExpressionError("no such key")
        return str(node.children[1]) in base


def evaluate(expr: str, names: JSON, *, interpolated: tuple[str, ...] = ()) -> Any:
    """Evaluate ``expr`` as Inngest does; names in ``interpolated`` (``event``) read missing
    fields as null (``Interpolate`` replaces them so), others as unknown. Raises
    :class:`ExpressionError` where Inngest's evaluation errors."""
    return _Eval(names, {n: None for n in interpolated})(_parse(expr))


def cel_true(expr: str, names: JSON, *, interpolated: tuple[str, ...] = ()) -> bool:
    """Whether the expression holds; an error is no match (Inngest logs it and moves on)."""
    try:
        return evaluate(expr, names, interpolated=interpolated) is True
    except (ExpressionError, TypeError, ValueError, ZeroDivisionError, re.error):
        return False


# -- helpers ----------------------------------------------------------------------------------


def _event(event: JSON, *, received: float | None = None) -> JSON:
    return {
        **event,
        "data": event.get("data") if isinstance(event.get("data"), dict) else {},
        "id": event.get("id") or str(uuid.uuid4()),
        "ts": int(event.get("ts") or (received or time.time()) * 1000),
        "user": event.get("user") if isinstance(event.get("user"), dict) else {},
    }


def _error(err: Any) -> JSON:
    err = err if isinstance(err, dict) else {"message": str(err)}
    return {"name": err.get("name") or "Error", "message": err.get("message") or "", "stack": err.get("stack")}


def _duration(text: Any) -> float | None:
    """Seconds of a duration like ``"24h"``, ``"1m30s"``, ``"7d"``; None when unreadable."""
    if isinstance(text, (int, float)):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", str(text or ""))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return sum(float(n) * unit[u] for n, u in parts)


def _triggered(trigger: JSON, event: JSON) -> bool:
    name = trigger.get("event")
    if name is None:  # a cron trigger
        return False
    if name != event["name"] and not (name.endswith("*") and event["name"].startswith(name[:-1])):
        return False
    return not trigger.get("expression") or cel_true(trigger["expression"], {"event": event})


def function_problems(fn: JSON) -> list[str]:
    """Why Inngest refuses this function config at sync (pkg/inngest/function.go ``Validate``)."""
    problems: list[str] = []
    if not fn.get("name"):
        problems.append("A function name is required")
    triggers = fn.get("triggers") or []
    if len(triggers) > MAX_TRIGGERS:
        problems.append(f"This function exceeds the max number of triggers: {MAX_TRIGGERS}")
    seen: set[str] = set()
    for t in triggers:
        key = json.dumps(t, sort_keys=True)
        if key in seen:
            problems.append(f"duplicate trigger {t.get('event') or t.get('cron')}")
        seen.add(key)
        if "event" in t:
            if not t["event"]:
                problems.append("An event trigger must specify an event name")
            if len(t["event"]) > MAX_EVENT_NAME:
                problems.append(f"event name is too long. maximum length is {MAX_EVENT_NAME} characters")
            if t.get("expression") and (why := compile_error(t["expression"])):
                problems.append(f"invalid trigger expression on '{t['event']}': {why}")
        elif "cron" not in t:
            problems.append("A trigger must supply an event name or a cron schedule")
    limits = fn.get("concurrency") or []
    limits = limits if isinstance(limits, list) else [limits]
    if len(limits) > MAX_CONCURRENCY:
        problems.append(f"There are more concurrency limits specified than the allowed max of: {MAX_CONCURRENCY}")
    for c in limits:
        if isinstance(c, dict) and (c.get("scope") or "fn") != "fn" and not c.get("key"):
            problems.append(f"A concurrency key must be specified for {c.get('scope')} scoped limits")
        if isinstance(c, dict) and c.get("key") and (why := compile_error(c["key"])):
            problems.append(f"Invalid concurrency key '{c['key']}': {why}")
    cancels = fn.get("cancel") or []
    for c in cancels:
        if c.get("if"):
            why = compile_error(c["if"])
            violations = [why] if why else policy_violations(c["if"])
            if violations:
                problems.append(f"Cancellation expression is invalid: {'; '.join(violations)}")
    if len(cancels) > MAX_CANCELS:
        problems.append(f"This function exceeds the max number of cancellation events: {MAX_CANCELS}")
    debounce = fn.get("debounce")
    if debounce:
        period = _duration(debounce.get("period"))
        if period is None:
            problems.append(f"The debounce period of '{debounce.get('period')}' is invalid")
        elif not 1 <= period <= 7 * DAY:
            problems.append(f"The debounce period of '{debounce.get('period')}' is outside 1s to 168h")
    rate = fn.get("rateLimit")
    if rate:
        period = _duration(rate.get("period"))
        if (rate.get("limit") or 0) <= 0:
            problems.append("limit must be greater than 0")
        if period is None:
            problems.append("period must be specified")
        elif period > DAY:
            problems.append("period must be less than 24h0m0s")
    for step in (fn.get("steps") or {}).values():
        url = ((step.get("runtime") or {}).get("url")) or ""
        if urlsplit(url).scheme not in ("http", "https", "ws", "wss"):
            problems.append(f"Non-supported step schema: {urlsplit(url).scheme}")
    return problems


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

    def __init__(self, signing_key: str | None = None, *, parallel_order: str = "planned") -> None:
        if parallel_order not in ("planned", "reversed"):
            raise ValueError("parallel_order is 'planned' or 'reversed'")
        self.signing_key = signing_key
        self.parallel_order = parallel_order
        self._key = re.sub(r"^signkey-\w+-", "", signing_key or "").encode()
        self._bearer = f"Bearer {hashlib.sha256(bytes.fromhex(self._key.decode())).hexdigest()}" if signing_key else None
        self.functions: dict[str, JSON] = {}
        self.apps: dict[str, dict[str, JSON]] = {}
        """App id -> its function configs, from its last accepted sync (``functions`` joins them)."""
        self.refused: list[str] = []
        """The error of each refused sync."""
        self.newer_rules: list[Callable[[JSON], list[str]]] = []
        """Sync rules of a newer server than netrun knows (each gives a function's problems):
        how a test makes Inngest refuse what ``netrun validate`` passes."""
        self._synced: dict[str, JSON] | None = None
        self.requests: list[Call] = []
        self.events: list[JSON] = []
        """Events the app sent to the event API (accepted ones)."""
        self.delivered: list[JSON] = []
        """Every event delivered (the app's, the tests', Inngest's own ``inngest/function.*``)."""
        self.runs: dict[str, Run] = {}
        self._inbox: list[tuple[int, JSON, bool]] = []
        """Events received, not delivered yet: sequence number, event, whether the app sent it."""
        self._touched: list[str] = []
        self._seq = 0
        self._rate: dict[tuple[str, str], list[float]] = {}
        self._queue: list[_Item] = []
        self._groups = 0
        self._pumping = False
        self._between: Callable[[], None] | None = None
        self._first_call = False
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=30)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stand-in-step")
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
        self._pool.shutdown(wait=False)
        self._http.close()

    # The Inngest API, called by the SDK (on the server's threads).

    def _receive(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        path = urlsplit(path).path
        if (path.startswith("/v0/") or path == "/fn/register") and self._bearer and headers.get("authorization") != self._bearer:
            return 401, {"error": "bad signing key"}
        if method == "POST" and path == "/fn/register":
            payload = json.loads(body)
            problems = {
                fn.get("id"): function_problems(fn) + [p for rule in self.newer_rules for p in rule(fn)]
                for fn in payload.get("functions") or []
            }
            problems = {k: v for k, v in problems.items() if v}
            if problems:  # one invalid function refuses the whole app (pkg/devserver/api.go)
                text = "; ".join(f"{k}: {', '.join(v)}" for k, v in problems.items())
                with self._lock:
                    self.refused.append(f"At least one function is invalid: {text}")
                return 400, {"error": f"At least one function is invalid: {text}", "status": 400}
            with self._lock:
                self._synced = self.apps[payload["appname"]] = {fn["id"]: self._clamped(fn) for fn in payload["functions"]}
                self.functions = {k: v for fns in self.apps.values() for k, v in fns.items()}
            return 200, {"ok": True, "modified": True}
        if method == "POST" and path.startswith("/e/"):
            payload = json.loads(body)
            ids, now = [], time.time()
            for raw in payload if isinstance(payload, list) else [payload]:
                if not isinstance(raw, dict) or not raw.get("name"):
                    return 400, {"ids": ids, "status": 400, "error": "event name is required"}
                if str(raw["name"]).lower().startswith("inngest/"):  # pkg/event/inbound.go
                    return 400, {"ids": ids, "status": 400, "error": f"event name is reserved for internal use: {raw['name']}"}
                data = dict(raw.get("data") or {})
                data.pop("_inngest", None)
                event = _event({**raw, "data": data}, received=now)
                with self._lock:
                    self._seq += 1
                    self.events.append(event)
                    self._inbox.append((self._seq, event, True))
                ids.append(event["id"])
            return 200, {"ids": ids, "status": 200}
        match = re.fullmatch(r"/v0/runs/([^/]+)/(actions|batch)", path)
        if method == "GET" and match and match.group(1) in self.runs:
            run = self.runs[match.group(1)]
            return 200, ({h: run.memos[h] for h in run.stack} if match.group(2) == "actions" else [run.event])
        return 404, {"error": f"no such endpoint: {method} {path}"}

    @staticmethod
    def _clamped(fn: JSON) -> JSON:
        for step in (fn.get("steps") or {}).values():
            retries = step.get("retries")
            if isinstance(retries, dict) and isinstance(retries.get("attempts"), int) and retries["attempts"] > MAX_RETRIES:
                step["retries"] = {**retries, "attempts": MAX_RETRIES}
        return fn

    # Talking to the SDK.

    def _headers(self, body: bytes) -> dict[str, str]:
        headers = {"content-type": "application/json", "x-inngest-server-kind": "cloud" if self.signing_key else "dev"}
        if self.signing_key:
            t = str(int(time.time()))
            headers["x-inngest-signature"] = f"t={t}&s={hmac.new(self._key, body + t.encode(), hashlib.sha256).hexdigest()}"
        return headers

    def _post(self, url: str, raw: bytes, extra: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        res = self._http.post(url, content=raw, headers={**self._headers(raw), **extra})
        headers = {k.lower(): v for k, v in res.headers.items()}
        if res.status_code == 201:  # INNGEST_STREAMING=force: keep-alive spaces, then {status, headers, body}
            wrapped = json.loads(res.text)
            return wrapped["status"], {k.lower(): v for k, v in wrapped["headers"].items()}, json.loads(wrapped["body"])
        if self.signing_key and res.status_code in (200, 206, 500):
            sig = dict(parse_qsl(headers.get("x-inngest-signature", "")))
            expected = hmac.new(self._key, res.content + sig.get("t", "").encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(sig.get("s", ""), expected):
                raise RuntimeError(f"bad response signature from {url}: {headers.get('x-inngest-signature')!r}")
        try:
            reply = res.json() if res.content else None
        except ValueError:
            reply = {"name": "Error", "message": res.text}
        return res.status_code, headers, reply

    def sync(self, serve_url: str) -> dict[str, JSON]:
        """PUT the serve URL, as Inngest's sync does; return the function configs the app registered.

        Raises :class:`SyncRefusedError` when Inngest refused the app (the SDK still answers 200)."""
        self._synced = None
        res = self._http.put(serve_url, headers=self._headers(b""))
        if res.status_code != 200 or self._synced is None:
            error = None
            with contextlib.suppress(ValueError, AttributeError):
                error = res.json().get("error")
            raise SyncRefusedError(f"sync of {serve_url} failed: HTTP {res.status_code} {error or res.text}")
        return dict(self._synced)

    def start(self, fn_id: str, event: JSON) -> str:
        """Create a run of ``fn_id`` for ``event`` and queue its first call; return its id."""
        if fn_id not in self.functions:
            raise KeyError(f"function {fn_id!r} is not registered (have {sorted(self.functions)})")
        run = Run(id=str(uuid.uuid4()), fn_id=fn_id, event=_event(event), created=self._seq)
        self.runs[run.id] = run
        self._queue.append(_Item(run.id, "step"))
        return run.id

    def run(self, fn_id: str, event: JSON, **kw: Any) -> Run:
        return self.drive(self.start(fn_id, event), **kw)

    def drive(self, run_id: str, *, max_calls: int = 1000, between: Callable[[], None] | None = None) -> Run:
        """Work the queue (this run's items and any other's) until it is empty; return the run.

        ``between`` runs before every round of calls but the first (one call, or one group of
        concurrent planned calls), including the calls for the other runs worked meanwhile.
        """
        self._pump(max_calls, between)
        return self.runs[run_id]

    def _pump(self, max_calls: int = 1000, between: Callable[[], None] | None = None) -> None:
        outer = self._between
        if between is not None:
            self._between, self._first_call = between, True
        try:
            if self._pumping:
                return
            self._pumping = True
            calls = 0
            try:
                self._deliver_inbox()
                while self._queue:
                    batch = self._next_batch()
                    if calls >= max_calls:
                        raise RuntimeError(f"runs still going after {max_calls} calls: {sorted({i.run_id for i in self._queue})}")
                    if self._between is not None and not self._first_call:
                        self._between()
                    calls, self._first_call = calls + len(batch), False
                    self._dispatch(batch)
                    self._deliver_inbox()
            finally:
                self._pumping = False
        finally:
            self._between = outer
        for run in self.runs.values():
            if run.status == "running" and run.waits and not any(i.run_id == run.id for i in self._queue):
                run.status = "waiting"

    def _next_batch(self) -> list[_Item]:
        first = self._queue.pop(0)
        if first.group is None:
            return [first]
        batch = [first] + [i for i in self._queue if i.group == first.group and i.run_id == first.run_id]
        self._queue = [i for i in self._queue if i not in batch]
        return batch

    def _request(self, run: Run, item: _Item) -> tuple[str, bytes, dict[str, str], JSON]:
        fn = self.functions[run.fn_id]
        retries = (fn["steps"]["step"].get("retries") or {}).get("attempts", DEFAULT_RETRIES)
        current = run.stack.index(item.outgoing) + 1 if item.outgoing in run.stack else 0
        ctx = {
            "fn_id": str(uuid.uuid5(uuid.NAMESPACE_URL, run.fn_id)),
            "run_id": run.id,
            "env": "",
            "step_id": "step",
            "attempt": item.attempt,
            "max_attempts": min(retries, MAX_RETRIES) + 1,
            "stack": {"stack": list(run.stack), "current": current},
            "disable_immediate_execution": run.force_plan,
            "use_api": False,
        }
        body: JSON = {
            "event": run.event,
            "events": [run.event],
            "steps": {h: run.memos[h] for h in run.stack},
            "defers": {},
            "ctx": ctx,
            "version": run.version,
            "use_api": False,
        }
        raw = jcs.canonicalize(body)
        if len(raw) > MAX_REQUEST:  # the SDK fetches them from /v0/runs/{id}/actions and /batch
            body = {**body, "events": [], "steps": {}, "use_api": True, "ctx": {**ctx, "use_api": True}}
            raw = jcs.canonicalize(body)
        url = urlsplit(fn["steps"]["step"]["runtime"]["url"])
        query = urlencode({**dict(parse_qsl(url.query)), "stepId": item.step_id})
        headers = {
            "x-run-id": run.id,
            "x-inngest-req-version": str(run.version),
            "x-inngest-step-id": item.step_id if item.step_id != "step" else "step",
        }
        return urlunsplit(url._replace(query=query)), raw, headers, body

    def _dispatch(self, batch: list[_Item]) -> None:
        prepared = []
        for item in batch:
            run = self.runs[item.run_id]
            if run.status not in ("running", "waiting"):
                continue
            run.status = "running"
            prepared.append((item, run, *self._request(run, item)))  # all from one snapshot of the run

        def call(url: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
            try:
                return self._post(url, raw, headers)
            except httpx.TransportError as err:  # the app is down or died mid-call: retried like Inngest does
                return 0, {}, {"name": type(err).__name__, "message": str(err)}

        # Several planned items are separate queue items: they run concurrently.
        answers = [call(*prepared[0][2:5])] if len(prepared) == 1 else list(self._pool.map(lambda p: call(*p[2:5]), prepared))
        pairs = list(zip(prepared, answers, strict=True))
        if self.parallel_order == "reversed":
            pairs.reverse()
        for (item, run, _url, _raw, headers, body), answer in pairs:
            self._handle(run, item, answer, body, headers)

    def _handle(self, run: Run, item: _Item, answer: tuple[int, dict[str, str], Any], body: JSON, sent: dict[str, str]) -> None:
        status, headers, reply = answer
        self.requests.append(
            Call(
                run.fn_id,
                item.step_id,
                status,
                run.id,
                item.attempt,
                headers.get("retry-after"),
                body["ctx"]["disable_immediate_execution"],
                body,
                sent,
            )
        )
        if run.status not in ("running", "waiting"):  # ended meanwhile (cancelled, another item failed it)
            return
        if headers.get("x-inngest-req-version", "").lstrip("-").isdigit():
            run.version = int(headers["x-inngest-req-version"])
        max_attempts = body["ctx"]["max_attempts"]
        no_retry = headers.get("x-inngest-no-retry") == "true"
        if status in (200, 206) and "x-inngest-sdk" not in headers:
            status, reply = 500, {"name": "ErrNotSDK", "message": "response did not come from an Inngest SDK"}
        if status == 200:
            self._finish(run, "completed", output=reply)
        elif status == 206:
            ops = [op for op in reply or [] if op and op.get("op") != "None"]
            if len(ops) > MAX_STEPS:
                self._finish(
                    run,
                    "failed",
                    error=_error(
                        {
                            "name": "InngestErrFunctionOverflowed",
                            "message": f"The function run exceeded the step limit of {MAX_STEPS} steps.",
                        }
                    ),
                )
                return
            if len(ops) > 1:
                run.force_plan = True
                if any(op["op"] == "StepPlanned" for op in ops) and run.version >= 2:
                    run.pending |= {op["id"] for op in ops}
            self._groups += 1
            group = self._groups if len(ops) > 1 else None
            for op in sorted(ops, key=lambda op: op["op"] != "WaitForEvent"):  # the priority group first
                if run.status not in ("running", "waiting"):
                    break
                self._op(run, item, op, group, max_attempts, no_retry)
        else:  # a function error, a non-SDK answer or no answer: the queue retries the same item
            run.attempts["step"] = run.attempts.get("step", 0) + 1
            if no_retry or item.attempt + 1 >= max_attempts:
                self._finish(run, "failed", error=reply if isinstance(reply, dict) else _error(reply))
            else:
                self._queue.insert(0, _Item(run.id, item.step_id, item.attempt + 1, item.outgoing, item.group))

    def _enqueue(self, run: Run, job: str, item: _Item) -> None:
        if job not in run.jobs:  # queue.ErrQueueItemExists
            run.jobs.add(job)
            self._queue.append(item)

    def _discover(self, run: Run, h: str, job: str) -> None:
        """A step ended: one discovery once no step of the parallel group is pending."""
        run.pending.discard(h)
        if run.pending:
            return
        if run.version >= 2:
            run.force_plan = False  # force_step_plan.go
        self._enqueue(run, job, _Item(run.id, "step", 0, h))

    def _op(self, run: Run, item: _Item, op: JSON, group: int | None, max_attempts: int, no_retry: bool) -> None:
        h, kind = op["id"], op["op"]
        if kind in ("StepRun", "Step", "StepError", "StepFailed"):
            run.attempts[h] = run.attempts.get(h, 0) + 1
        if kind in ("StepRun", "Step"):
            data = op.get("data")
            if len(json.dumps(data)) > MAX_STEP_OUTPUT:
                self._finish(
                    run,
                    "failed",
                    error=_error({"name": "OutputTooLarge", "message": f"step output over {MAX_STEP_OUTPUT} bytes"}),
                )
                return
            if self._memo(run, h, {"data": data}):
                self._discover(run, h, h)
        elif kind == "StepPlanned":
            self._enqueue(run, f"{h}-plan", _Item(run.id, h, 0, item.outgoing, group))
        elif kind == "StepError":
            err = op.get("error") if isinstance(op.get("error"), dict) else {}
            if not (no_retry or err.get("noRetry")) and item.attempt + 1 < max_attempts:
                self._queue.insert(0, _Item(run.id, item.step_id, item.attempt + 1, item.outgoing, item.group))
            elif self._memo(run, h, {"error": _error(op.get("error"))}):
                self._discover(run, h, f"{h}-failure")
        elif kind == "StepFailed":
            if self._memo(run, h, {"error": _error(op.get("error"))}):
                self._discover(run, h, f"{h}-failure")
        elif kind == "Sleep":
            if self._memo(run, h, None):
                self._discover(run, h, h)
        elif kind == "WaitForEvent":
            opts = dict(op.get("opts") or {})
            if opts.get("if") and "event." in opts["if"]:
                opts["interpolated"] = True  # ``event`` is the trigger event; its missing fields are null
            run.waits[h] = {**op, "opts": opts}
            run.wait_seq[h] = self._seq
        elif kind == "InvokeFunction":
            run.waits[h] = op
            run.wait_seq[h] = self._seq
            self._invoke(run, op)
        elif kind == "AIGateway":
            if self._memo(run, h, self._ai(op["opts"])):
                self._discover(run, h, h)
        else:
            raise RuntimeError(f"unknown op {kind!r} from {run.fn_id}: {op}")

    def _memo(self, run: Run, h: str, memo: Any) -> bool:
        if h in run.memos:  # already saved (ErrDuplicateResponse): keep the first
            return True
        if len(run.stack) >= MAX_STEPS:
            self._finish(
                run,
                "failed",
                error=_error(
                    {
                        "name": "InngestErrFunctionOverflowed",
                        "message": f"The function run exceeded the step limit of {MAX_STEPS} steps.",
                    }
                ),
            )
            return False
        run.memos[h] = memo
        run.stack.append(h)
        run.waits.pop(h, None)
        run.wait_seq.pop(h, None)
        return True

    def _resume(self, run: Run, h: str, memo: Any) -> None:
        if self._memo(run, h, memo):
            if run.status == "waiting":
                run.status = "running"
            self._discover(run, h, f"{h}-resume")

    def _invoke(self, run: Run, op: JSON) -> None:
        opts = op.get("opts") or {}
        target = opts.get("function_id", "")
        correlation = f"{run.id}.{op['id']}"
        payload = opts.get("payload") or {}
        data = dict(payload.get("data") or {})
        data["_inngest"] = {
            "fn_id": target,
            "correlation_id": correlation,
            "expire": int((time.time() + DAY * 365) * 1000),
            "source_fn_id": run.fn_id,
            "source_app_id": run.fn_id.split("-")[0],
            "source_fn_v": 0,
        }
        if target not in self.functions:
            self._resume(run, op["id"], {"error": _error({"name": "FunctionNotFoundError", "message": f"no function {target}"})})
            return
        child = self.start(target, {**payload, "name": INVOKED, "data": data})
        self.runs[child].parent = (run.id, op["id"])

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
        """End the run and send its ``inngest/function.*`` events (finalize.go ``finalizeEvents``)."""
        run.status, run.output, run.error = status, output, error
        run.pending.clear()
        self._queue = [i for i in self._queue if i.run_id != run.id]
        if run.event["name"] in (FINISHED, FAILED):  # no finish events about finish handlers
            return
        meta = run.event["data"].get("_inngest") if isinstance(run.event["data"].get("_inngest"), dict) else {}
        data: JSON = {"function_id": run.fn_id, "run_id": run.id, "event": run.event, "events": [run.event]}
        if status == "completed" and output is not None:
            data["result"] = output
        elif status != "completed":
            data["error"] = error if isinstance(error, dict) else _error(error or status)
        if meta.get("correlation_id"):
            data["correlation_id"] = meta["correlation_id"]
        data["_inngest"] = {"status": {"completed": "Completed", "failed": "Failed", "cancelled": "Cancelled"}[status]}
        self._internal({"name": FINISHED, "data": data})
        if status in ("failed", "cancelled"):
            self._internal({"name": FAILED if status == "failed" else CANCELLED, "data": data, "id": run.id})

    def _internal(self, event: JSON) -> None:
        with self._lock:
            self._seq += 1
            self._inbox.append((self._seq, _event(event), False))
        if not self._pumping:
            self._deliver_inbox()

    # Events.

    def _deliver_inbox(self) -> None:
        while True:
            with self._lock:
                if not self._inbox:
                    return
                seq, event, from_app = self._inbox.pop(0)
            touched = self._deliver(seq, event)
            if from_app:
                self._touched.extend(touched)

    def _deliver(self, seq: int, event: JSON) -> list[str]:
        """Resume the waits and cancel the runs the event matches, start the runs it triggers."""
        self.delivered.append(event)
        touched: list[str] = []
        correlation = event["data"].get("correlation_id") if event["name"] == FINISHED else None
        for run in list(self.runs.values()):
            if run.status not in ("running", "waiting"):
                continue
            for h, op in list(run.waits.items()):
                if op["op"] == "InvokeFunction":
                    if correlation == f"{run.id}.{h}":  # HandleInvokeFinish
                        data = event["data"]
                        memo = (
                            {"error": data["error"]}
                            if "error" in data
                            else {"data": data["result"]}
                            if "result" in data
                            else event
                        )
                        self._resume(run, h, memo)
                        touched.append(run.id)
                    continue
                opts = op.get("opts") or {}
                if op["name"] != event["name"] or seq <= run.wait_seq.get(h, 0):  # only events newer than the wait
                    continue
                names = {"event": run.event, "async": event}
                if opts.get("if") and not cel_true(
                    opts["if"], names, interpolated=("event",) if opts.get("interpolated") else ()
                ):
                    continue
                self._resume(run, h, event)
                touched.append(run.id)
            fn = self.functions.get(run.fn_id) or {}
            for cancel in fn.get("cancel") or []:
                if (
                    run.status in ("running", "waiting")
                    and cancel.get("event") == event["name"]
                    and seq > run.created
                    and (
                        not cancel.get("if")
                        or cel_true(cancel["if"], {"event": run.event, "async": event}, interpolated=("event",))
                    )
                ):
                    self._finish(run, "cancelled", error={"name": "FunctionCancelled", "message": "function cancelled"})
                    touched.append(run.id)
        for fn_id, fn in list(self.functions.items()):
            if event["name"] == INVOKED:
                hit = (event["data"].get("_inngest") or {}).get("fn_id") == fn_id
            else:
                hit = any(_triggered(t, event) for t in fn.get("triggers", []))
            if hit and self._admitted(fn, event):
                touched.append(self.start(fn_id, event))
        return list(dict.fromkeys(touched))

    def _admitted(self, fn: JSON, event: JSON) -> bool:
        """Rate limits (``idempotency`` is one of 1 per 24 h per key): False drops the event's run."""
        limit = fn.get("rateLimit")
        if fn.get("idempotency"):
            limit = {"limit": 1, "period": "24h", "key": fn["idempotency"]}
        if not limit:
            return True
        try:
            key = json.dumps(evaluate(limit["key"], {"event": event}), default=str) if limit.get("key") else ""
        except ExpressionError:
            key = ""
        now, period = time.time(), _duration(limit.get("period")) or DAY
        starts = [t for t in self._rate.get((fn["id"], key), []) if t > now - period]
        if len(starts) >= int(limit.get("limit") or 1):
            return False
        self._rate[(fn["id"], key)] = [*starts, now]
        return True

    def send(self, event: JSON, *, between: Callable[[], None] | None = None) -> list[str]:
        """Deliver an event as Inngest (no event API checks: tests may send ``inngest/*``):
        resume the waits it satisfies, cancel the runs it cancels, start the runs it
        triggers, work the queue; return the ids of those runs."""
        self._pump(between=between)  # what was received before goes first
        with self._lock:
            self._seq += 1
            seq = self._seq
        touched = self._deliver(seq, _event(event))
        self._pump(between=between)
        return touched

    def deliver_received(self, *, between: Callable[[], None] | None = None) -> list[str]:
        """Deliver the events the app sent that are not delivered yet (events are delivered
        as soon as the call that sent them ends), work the queue; return the ids of the runs
        the app's events touched since the last call."""
        self._pump(between=between)
        touched, self._touched = list(dict.fromkeys(self._touched)), []
        return touched

    def expire_waits(self, run_id: str, *, between: Callable[[], None] | None = None) -> Run:
        """Time out the run's open ``wait_for_event`` steps (they return None) and work the queue."""
        run = self.runs[run_id]
        for h in [h for h, op in run.waits.items() if op["op"] == "WaitForEvent"]:
            self._resume(run, h, None)
        return self.drive(run_id, between=between)
