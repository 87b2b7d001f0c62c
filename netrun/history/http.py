"""Threads kept by the user's own service: create, get and append calls, declared in YAML.

``${ENV}`` references in URLs and headers are resolved at call time and never appear in an
error; the text templates insert (a thread id, a user key) is never env-resolved. URLs are
built as an http tool's are (:func:`netrun.runtime.outbound.render_url`): a value is percent-encoded
for the component it lands in, cannot make a ``.``/``..`` segment, and cannot change the origin
the url is written with; such a call raises :class:`PermanentHistoryError` and is not sent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import httpx

from ..envrefs import MissingEnvError
from ..runtime.outbound import CallEnv, check_routing_headers, render_url
from ..runtime.render import Renderer, RenderError
from ..spec import scopes
from ..spec.base import parse_duration
from ..spec.history import HttpEndpoint, HttpHistory
from ..urltemplate import UrlError
from .base import HistoryError, Message, PermanentHistoryError

_MESSAGES = re.compile(r"^\s*\{\{\s*messages\s*\}\}\s*$")


class HttpHistoryStore:
    def __init__(self, spec: HttpHistory, environ: Mapping[str, str]) -> None:
        self.spec = spec
        self.environ = environ
        self.renderer = Renderer()
        self.client = httpx.AsyncClient(timeout=parse_duration(spec.timeout).total_seconds(), follow_redirects=False)

    async def create(self, thread_id: str, user: str | None) -> None:
        if self.spec.create is not None:
            await self._call("create", self.spec.create, scopes.variables(scopes.HISTORY, {"thread_id": thread_id, "user": user}))

    async def get(self, thread_id: str) -> list[Message]:
        answer = await self._call("get", self.spec.get, scopes.variables(scopes.HISTORY, {"thread_id": thread_id, "user": None}))
        messages = answer.get("messages") if isinstance(answer, dict) else answer
        # An assistant message that only calls tools may come back without its null content.
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and "role" in m and ("content" in m or "tool_calls" in m) for m in messages
        ):
            raise PermanentHistoryError("the history service's get answered no list of messages with 'role' and 'content'")
        return messages

    async def append(self, thread_id: str, messages: list[Message]) -> None:
        key = hashlib.sha256("/".join([thread_id, *(m["id"] for m in messages)]).encode()).hexdigest()[:32]
        variables = scopes.variables(scopes.HISTORY_APPEND, {"thread_id": thread_id, "user": None, "messages": messages})
        await self._call("append", self.spec.append, variables, key)

    async def _call(self, what: str, endpoint: HttpEndpoint, variables: dict[str, Any], idempotency: str | None = None) -> Any:
        env = CallEnv(self.environ)
        try:
            # the URL is built as an http tool's is: thread ids and users are data, never URL syntax
            check_routing_headers(endpoint.headers)
            built, target = render_url(endpoint.url, variables, env)
            headers = {k: env.reveal(self.renderer.render(env.protect(v), variables)) for k, v in endpoint.headers.items()}
            body = self._body(endpoint.body, variables)
        except (RenderError, MissingEnvError) as exc:
            raise PermanentHistoryError(f"history {what}: {env.redact(str(exc))}") from None
        except UrlError as exc:
            raise PermanentHistoryError(f"history {what}: request not sent: {env.redact(str(exc))}") from None
        if target is None:
            raise PermanentHistoryError(f"history {what}: request not sent: {env.redact(repr(built.url))} is not a valid URL")
        if idempotency:
            headers.setdefault("Idempotency-Key", idempotency)
        try:
            response = await self.client.request(
                endpoint.method, target, headers=headers, json=body if endpoint.body is not None else None
            )
        except httpx.HTTPError as exc:
            raise HistoryError(env.redact(f"history {what}: {type(exc).__name__}: {exc}")) from None
        if response.status_code >= 400:
            error = HistoryError if response.status_code >= 500 or response.status_code == 429 else PermanentHistoryError
            raise error(f"history {what}: HTTP {response.status_code}: {env.redact(response.text)[:200]}")  # redacted, then cut
        try:
            return response.json() if response.content else None
        except ValueError:
            raise PermanentHistoryError(f"history {what}: the answer is not JSON") from None

    def _body(self, value: Any, variables: dict[str, Any]) -> Any:
        if isinstance(value, str):
            if _MESSAGES.match(value) and "messages" in variables:
                return variables["messages"]
            return self.renderer.render(value, variables)
        if isinstance(value, dict):
            return {k: self._body(v, variables) for k, v in value.items()}
        if isinstance(value, list):
            return [self._body(v, variables) for v in value]
        return value

    async def close(self) -> None:
        await self.client.aclose()
