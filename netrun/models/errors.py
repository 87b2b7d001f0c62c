"""One classification of a failed model call, shared by every client: permanent failures
(a missing or rejected key, an unknown model, a request the provider refuses) fail at once
with the provider's own reason; a rate limit carries its ``Retry-After``; the rest may be
retried. The clients only say what they saw (an error name, an HTTP status, a message, the
response headers); the decision and the wording live here, so that they cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..redact import Secrets
from ..runtime.model import ModelError
from ..runtime.retry_after import retry_after_headers
from ..spec.model import ModelSpec

PERMANENT_STATUSES = (400, 401, 403, 404, 405, 413, 422)
"""HTTP statuses no retry can fix: a bad request, a rejected key, an unknown model."""
PERMANENT_ERRORS = (
    "AuthenticationError",
    "BadRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "UnsupportedParamsError",
    "ContextWindowExceededError",
    "ContentPolicyViolationError",
)
"""litellm's names for those failures (for errors raised before any HTTP status is known)."""
_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*|\w+(?:Error|Exception)(?::|\s+-)\s*)+")


def reason(text: str) -> str:
    """The provider's own words: a message without litellm's ``litellm.XError: XError:
    OpenAIException -`` prefixes."""
    return _PREFIX.sub("", text).strip()


def classify(model_id: str, name: str, status: int | None, text: str, headers: Mapping[str, str] | None = None) -> ModelError:
    """The failure as a :class:`ModelError`. ``text`` must already be redacted (it is cut
    here, and a key crossing the cut would leak its first half); ``name`` is the error's
    class name (litellm's, or the direct client's equivalent of it)."""
    text = text.splitlines()[0][:300] if text else name
    why = reason(text) or name
    model = f"model {model_id}"
    provider = model_id.split("/", 1)[0]
    key_hint = f"set model.api_key, or the provider's environment variable such as {provider.upper()}_API_KEY"
    if "api_key" in text.lower() and "must be set" in text.lower():
        return ModelError(f"{model}: missing API key for {provider} ({key_hint})", retriable=False)
    if status in (401, 403) or name in ("AuthenticationError", "PermissionDeniedError"):
        what = "the API key was rejected" if status != 403 and name != "PermissionDeniedError" else "access was denied"
        return ModelError(f"{model}: {what} (HTTP {status or 401}): {why} ({key_hint})", retriable=False)
    if status == 429 or name == "RateLimitError":
        if "insufficient_quota" in text or "exceeded your current quota" in text.lower():  # billing: waiting does not help
            return ModelError(f"{model}: quota exhausted (HTTP 429): {why}", retriable=False)
        wait = _wait(headers)
        asked = f", retry after {wait:g} s" if wait is not None else ""
        return ModelError(f"{model}: rate limited (HTTP 429{asked}): {why}", retriable=True, retry_after=wait)
    if status in PERMANENT_STATUSES or name in PERMANENT_ERRORS:
        return ModelError(f"{model}: {name} (HTTP {status}): {why}" if status else f"{model}: {name}: {why}", retriable=False)
    if name == "APIConnectionError" or "Connection" in name or "connection error" in text.lower():
        return ModelError(f"{model}: cannot reach the model ({why})", retriable=True)
    return ModelError(f"{model}: {name} (HTTP {status}): {why}" if status else f"{model}: {name}: {why}", retriable=True)


def model_error(
    spec: ModelSpec, environ: Mapping[str, str], name: str, status: int | None, text: str, headers: Mapping[str, str] | None
) -> ModelError:
    """:func:`classify` a failure of ``spec``'s call, its ``text`` redacted first (the spec's
    ``${ENV}`` values and the provider keys the environment holds): classify cuts it, and a
    key crossing the cut would leak its first half."""
    clean = Secrets.for_definition(spec.model_dump(mode="json"), environ).redact(text)
    return classify(spec.id, name, status, clean, headers)


def _wait(headers: Mapping[str, str] | None) -> float | None:
    if headers is None:
        return None
    try:
        return retry_after_headers(headers)
    except (TypeError, ValueError):
        return None


STATUS_NAMES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "Timeout",
    409: "APIError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "APIError",
    503: "ServiceUnavailableError",
    504: "Timeout",
}
"""litellm's exception names by HTTP status, so a direct call's errors read the same."""


def status_name(status: int) -> str:
    if status in STATUS_NAMES:
        return STATUS_NAMES[status]
    return "InternalServerError" if status >= 500 else "APIError"
