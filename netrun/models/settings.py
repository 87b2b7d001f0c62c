"""What both real-model clients read from a model's spec the same way: its ``${ENV}``
settings, resolved, and how long one call may take."""

from __future__ import annotations

from collections.abc import Mapping

from .. import envrefs
from ..runtime.model import ModelError, Request
from ..spec.base import parse_duration
from ..spec.model import ModelSpec


def resolved(spec: ModelSpec, text: str | None, environ: Mapping[str, str]) -> str | None:
    """``text`` (``api_base``, ``api_key``) with its ``${ENV}`` references filled in; a
    variable that is not set fails the call for good, naming it."""
    if text is None:
        return None
    try:
        return envrefs.resolve(text, environ)
    except envrefs.MissingEnvError as exc:
        raise ModelError(f"model {spec.id}: {exc}", retriable=False) from None


def call_timeout(spec: ModelSpec, request: Request) -> float | None:
    """Seconds the call may take: the shorter of the agent's ``limits.time`` and the model's
    ``timeout``; None when neither says."""
    limits = [t for t in (request.timeout, parse_duration(spec.timeout).total_seconds() if spec.timeout else None) if t]
    return min(limits) if limits else None
