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
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
from jinja2 import Undefined
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from ..envrefs import REF, MissingEnvError
from ..runtime.render import RenderError, evaluate, render, render_value
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec.base import parse_duration
from ..spec.tools import HttpTool

BACKOFF_BASE = 0.5
"""Seconds before the first retry (doubled each time, plus up to as much again of jitter)."""
BACKOFF_MAX = 10.0
"""The longest backoff between two attempts."""
RETRY_AFTER_MAX = 30.0
"""A server's ``Retry-After`` is honoured up to this many seconds (a step must not sleep for hours)."""

_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_SINGLE_EXPR = re.compile(r"\{\{((?:(?!\{\{|\}\}).)*)\}\}", re.S)
_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def parameters_schema(spec_parameters: Any) -> dict[str, Any]:
    """Tool parameters (a full ``type: object`` schema, the shorthand ``name -> schema``
    mapping, or None) as the ``{"type": "object", "properties", "required"}`` providers want.

    Accepts spec models or plain dicts, so every tool kind can share it. In the shorthand,
    a parameter without a ``default`` is required.
    """
    if spec_parameters is None:
        return {"type": "object", "properties": {}, "required": []}
    if getattr(spec_parameters, "type", None) == "object" or (
        isinstance(spec_parameters, Mapping) and spec_parameters.get("type") == "object"
    ):
        schema = _dump(spec_parameters)
        schema.setdefault("properties", {})
        schema.setdefault("required", [])
        return schema
    props = {name: _dump(s) for name, s in spec_parameters.items()}
    required = [name for name, s in spec_parameters.items() if "default" not in _fields_set(s)]
    return {"type": "object", "properties": props, "required": required}


def _dump(schema: Any) -> dict[str, Any]:
    if hasattr(schema, "model_dump"):
        return schema.model_dump(mode="json", exclude_none=True)
    return json.loads(json.dumps(schema))  # a deep copy of a plain mapping


def _fields_set(schema: Any) -> set[str]:
    return set(schema.model_fields_set) if hasattr(schema, "model_fields_set") else set(schema)


def check_args(value: Any, schema: Mapping[str, Any], path: str = "args") -> list[str]:
    """What is wrong with ``value`` against ``schema`` (the subset in :mod:`netrun.spec.params`).

    Messages name the place and the expected type, never the value (it may be long or odd).
    """
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_is_type(value, t) for t in types):
            return [f"{path}: expected {' or '.join(types)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: must be one of {json.dumps(schema['enum'])}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {json.dumps(schema['const'])}")
    if "anyOf" in schema and all(check_args(value, s, path) for s in schema["anyOf"]):
        errors.append(f"{path}: matches none of the allowed schemas")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: length must be within {schema.get('minLength', 0)}..{schema.get('maxLength', '')}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: must match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, bad in (
            ("minimum", value.__lt__),
            ("maximum", value.__gt__),
            ("exclusiveMinimum", value.__le__),
            ("exclusiveMaximum", value.__ge__),
        ):
            if key in schema and bad(schema[key]):
                errors.append(f"{path}: {key} is {schema[key]}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: number of items must be within {schema.get('minItems', 0)}..{schema.get('maxItems', '')}")
        for i, item in enumerate(value):
            errors += check_args(item, schema.get("items") or {}, f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        errors += [f"{path}.{k}: required" for k in schema.get("required") or [] if k not in value]
        for key, item in value.items():
            if key in props:
                errors += check_args(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}.{key}: unexpected")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += check_args(item, schema["additionalProperties"], f"{path}.{key}")
    return errors


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[name])


def _map_strings(value: Any, fn: Callable[[str], Any]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    return value


class _Env:
    """The ``${ENV}`` references of one call: placeholders in, values out, values redacted."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.nonce = secrets.token_hex(16)
        self.values: dict[str, str] = {}  # placeholder -> value
        self.refs: dict[str, str] = {}  # placeholder -> reference text (for error messages)
        self.secrets: set[str] = set()  # values from the environment (defaults are in the file: not secret)

    def protect(self, text: str) -> str:
        """Replace references by placeholders; ``$${`` (escaped) becomes a literal ``${``."""
        out, pos = [], 0
        for m in REF.finditer(text):
            before = text[: m.start()]
            if (len(before) - len(before.rstrip("$"))) % 2:  # `$${NAME}`: an escaped, literal `${`
                continue
            name, default = m.group("name"), m.group("default")
            value = self.environ.get(name)
            if value is None and default is None:
                raise MissingEnvError(f"environment variable {name} is not set")
            if value:
                self.secrets.add(value)
            placeholder = f"NETRUNENV{self.nonce}N{len(self.values)}X"
            self.values[placeholder], self.refs[placeholder] = value if value is not None else default, m.group()
            out += [text[pos : m.start()].replace("$${", "${"), placeholder]
            pos = m.end()
        out.append(text[pos:].replace("$${", "${"))
        return "".join(out)

    def reveal(self, text: str) -> str:
        """Placeholders -> values; only ever applied to rendered spec strings."""
        if self.nonce in text:
            for placeholder, value in self.values.items():
                text = text.replace(placeholder, value)
        return text

    def redact(self, text: str) -> str:
        """Placeholders -> reference text, secret values (plain or URL-encoded) -> ``***``."""
        for placeholder, ref in self.refs.items():
            text = text.replace(placeholder, ref)
        text = re.sub(rf"NETRUNENV{self.nonce[:4]}[0-9a-fNX]*", "${…}", text)  # cut short (template errors quote 60 chars)
        for secret in sorted(self.secrets, key=len, reverse=True):
            for form in {secret, quote(secret), quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, "***")
        return text

    def redact_outcome(self, outcome: ToolOutcome) -> ToolOutcome:
        def clean(value: Any) -> Any:
            if isinstance(value, dict):
                return {self.redact(k): clean(v) for k, v in value.items()}
            return [clean(v) for v in value] if isinstance(value, list) else _map_strings(value, self.redact)

        error = None if outcome.error is None else self.redact(outcome.error)
        return ToolOutcome(result=clean(outcome.result), error=error, state_patch=outcome.state_patch)


class _AttemptFailedError(Exception):
    """A failed attempt worth repeating (429, 5xx, transport error); what to report if it was the last."""

    def __init__(self, message: str, result: Any = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message, self.result, self.retry_after = message, result, retry_after


def retry_after_seconds(value: str | None, cap: float = RETRY_AFTER_MAX) -> float | None:
    """A ``Retry-After`` header (delay seconds or an HTTP date) in seconds, within ``0..cap``."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - datetime.now(UTC).timestamp()
    return min(max(seconds, 0.0), cap)


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
        errors = check_args(args, self.parameters)
        if errors:
            return ToolOutcome.failure(f"invalid arguments for {self.name}: " + "; ".join(errors))
        args = {**{k: s["default"] for k, s in self.parameters["properties"].items() if "default" in s}, **args}
        env = _Env(ctx.environ)
        try:
            request = self._render(ctx.variables(args), env)
        except MissingEnvError as exc:
            return ToolOutcome.failure(str(exc))  # names the variable only
        except RenderError as exc:
            return env.redact_outcome(ToolOutcome.failure(str(exc)))
        request["headers"] = {k: v for k, v in request["headers"].items() if k.lower() != "idempotency-key"}
        request["headers"]["Idempotency-Key"] = ctx.idempotency_key  # durability rule 5: same key on every attempt
        return env.redact_outcome(await self._send(request))

    def _render(self, variables: dict[str, Any], env: _Env) -> dict[str, Any]:
        """url, query and headers render as text; body strings that are a single ``{{ expr }}``
        keep the expression's JSON type (``{{ args.limit }}`` sends 5, not "5")."""
        raw = {"url": self.http.url, "query": dict(self.http.query), "headers": dict(self.http.headers)}
        out = _map_strings(render_value(_map_strings(raw, env.protect), variables), env.reveal)
        body = _map_strings(self.http.body, env.protect)
        out["body"] = _map_strings(_map_strings(body, lambda s: _render_typed(s, variables)), env.reveal)
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
                    self.http.method, request["url"], params=request["query"], headers=request["headers"], **extra
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


def _render_typed(source: str, variables: dict[str, Any]) -> Any:
    match = _SINGLE_EXPR.fullmatch(source.strip())
    if match:
        value = evaluate(match.group(1), variables)
        if not isinstance(value, Undefined):  # undefined: render() raises the usual error below
            try:
                return json.loads(json.dumps(value))
            except (TypeError, ValueError):
                pass
    return render(source, variables)


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
