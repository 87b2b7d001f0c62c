"""The ``http`` tool kind: one templated HTTP request per call, retried safely.

Why it is built this way:

* Secrets. ``${ENV}`` references are resolved at call time from ``ctx.environ``, but text
  that templates insert (model ``args``, state, event) must never be env-resolved, and a
  secret must never pass through the template engine (a value containing ``{{`` would be
  executed, and template errors quote their source). So each reference in the *raw spec
  string* is swapped for a placeholder carrying 128 random bits made fresh for each call,
  the template is rendered, and only then are placeholders swapped for values. Inserted
  text cannot contain a placeholder it never saw: an arg ``"${HOME}"`` is sent literally.
* Every value taken from the environment is redacted (also URL-encoded) from the whole
  outcome, result and error: servers echo URLs and httpx error strings contain them.
* Durability rule 5: every attempt carries ``Idempotency-Key: ctx.idempotency_key``, the
  same across retries and replays of one step, so the far side can de-duplicate.
* Retries use tenacity's ``AsyncRetrying``: stop and backoff policies are declarative and
  tested upstream; the only custom piece is a wait that prefers ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from .. import observe
from ..envrefs import MissingEnvError
from ..runtime.args import call_args, parameters_schema
from ..runtime.outbound import CallEnv, check_routing_headers, render_url
from ..runtime.render import RenderError, each_string, render_typed, render_value
from ..runtime.retry_after import retry_after_seconds
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec import NetworkSpec
from ..spec.base import parse_duration
from ..spec.tools import HttpTool
from ..urltemplate import UrlError

BACKOFF_BASE = 0.5
"""Seconds before the first retry (doubled each time, plus up to as much again of jitter)."""
BACKOFF_MAX = 10.0
"""The longest backoff between two attempts."""
RETRY_AFTER_MAX = 30.0
"""A server's ``Retry-After`` is honoured up to this many seconds (a step must not sleep for hours)."""

_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class _AttemptFailedError(Exception):
    """A failed attempt worth repeating (429, 5xx, transport error); what to report if it was the last."""

    def __init__(self, message: str, result: Any = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message, self.result, self.retry_after = message, result, retry_after


class HttpToolImpl:
    """An ``http`` tool: renders the request from the spec, sends it, returns status and body."""

    def __init__(
        self,
        name: str,
        spec: HttpTool,
        *,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
        retry_after_max: float = RETRY_AFTER_MAX,
    ) -> None:
        self.name = name
        self.spec = spec
        self.http = spec.http
        self.parameters = parameters_schema(spec.parameters)
        self.description = spec.description or f"HTTP {spec.http.method} {spec.http.url}"
        self.timeout = parse_duration(spec.http.timeout).total_seconds()
        self.retry_after_max = retry_after_max
        self._backoff = wait_exponential(multiplier=backoff_base, max=backoff_max) + wait_random(0, backoff_base)

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        args, problem = call_args(self.name, args, self.parameters)
        if problem is not None:
            return ToolOutcome.failure(problem)
        env = CallEnv(ctx.environ)
        try:
            request = self._render(ctx.variables(args), env)
        except MissingEnvError as exc:
            return ToolOutcome.failure(str(exc))  # names the variable only
        except RenderError as exc:
            return env.redact_outcome(ToolOutcome.failure(str(exc)))
        except UrlError as exc:
            return env.redact_outcome(ToolOutcome.failure(f"request not sent: {exc}"))
        request["headers"] = {k: v for k, v in request["headers"].items() if k.lower() != "idempotency-key"}
        request["headers"]["Idempotency-Key"] = ctx.idempotency_key  # durability rule 5: same key on every attempt
        if observe.observed():  # the execute_tool span's traceparent: the far side joins the run's trace
            observe.inject(request["headers"])
        return env.redact_outcome(await self._send(request))

    def _render(self, variables: dict[str, Any], env: CallEnv) -> dict[str, Any]:
        """query and headers render as text, the URL by :mod:`netrun.urltemplate` (values
        encoded where they land, the origin kept), the body by the typed rule
        (:meth:`~netrun.runtime.render.Renderer.render_typed`)."""
        check_routing_headers(self.http.headers)
        raw = {"query": dict(self.http.query), "headers": dict(self.http.headers)}
        out: dict[str, Any] = each_string(render_value(each_string(raw, env.protect), variables), env.reveal)
        built, out["target"] = render_url(self.http.url, variables, env, list(out["query"].items()), self.http.allowed_origins)
        out["url"] = built.url
        out["body"] = each_string(render_typed(each_string(self.http.body, env.protect), variables), env.reveal)
        return out

    async def _send(self, request: dict[str, Any]) -> ToolOutcome:
        attempts = self.http.retries + 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts), wait=self._wait, retry=retry_if_exception_type(_AttemptFailedError), reraise=True
        )
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                async for attempt in retrying:
                    with attempt:
                        return await self._attempt(client, request)
        except _AttemptFailedError as exc:
            return ToolOutcome(result=exc.result, error=f"{exc.message} (gave up after {attempts} attempts)")
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _AttemptFailedError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))

    async def _attempt(self, client: httpx.AsyncClient, request: dict[str, Any]) -> ToolOutcome:
        where = f"{self.http.method} {request['url']}"
        extra = {} if self.http.body is None else {"json": request["body"]}
        try:
            async with asyncio.timeout(self.timeout):  # the whole attempt, not each read
                async with client.stream(
                    self.http.method, request["target"] or request["url"], headers=request["headers"], **extra
                ) as response:
                    raw = await self._read(response)
        except TimeoutError:
            raise _AttemptFailedError(f"{where} timed out after {self.timeout:g}s") from None
        except _RETRYABLE as exc:
            raise _AttemptFailedError(f"{where} failed: {type(exc).__name__}: {exc}") from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # bad URL, scheme, header text: not worth a retry
            return ToolOutcome.failure(f"{where} failed: {type(exc).__name__}: {exc}")
        status, reason = response.status_code, response.reason_phrase
        retryable = status == 429 or status >= 500
        if raw is None and not retryable:
            return ToolOutcome.failure(f"response larger than {self.http.max_bytes} bytes")
        result = {"status": status, "body": None if raw is None else _decode(response, raw)}
        if retryable:
            wait = retry_after_seconds(response.headers.get("retry-after"), self.retry_after_max)
            raise _AttemptFailedError(f"HTTP {status} {reason} from {where}", result, wait)
        if status >= 300:  # redirects are not followed: secret headers must not travel to another host
            return ToolOutcome(result=result, error=f"HTTP {status} {reason} from {where}")
        return ToolOutcome(result=result)

    async def _read(self, response: httpx.Response) -> bytes | None:
        """The body, or None once it is larger than ``max_bytes`` (reading stops there)."""
        limit = self.http.max_bytes
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return None
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():  # decoded bytes: a compressed bomb is caught too
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)


def _decode(response: httpx.Response, raw: bytes) -> Any:
    """JSON when the content type says so or the body reads as a JSON object or array; else text."""
    if not raw:
        return None
    try:
        text = raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    if "json" in response.headers.get("content-type", "").lower() or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def build(name: str, spec: HttpTool, network: NetworkSpec) -> HttpToolImpl:
    return HttpToolImpl(name, spec)
