"""Rendering templates and evaluating expressions at run time, in the same sandbox that
``netrun validate`` checks them in (:func:`netrun.check.templates.sandbox`)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Template
from jinja2.exceptions import TemplateError

from ..check.templates import sandbox

_ENV = sandbox()


class RenderError(Exception):
    """A template or expression failed at run time (an undefined value, a bad filter call)."""


@lru_cache(maxsize=4096)
def _template(source: str) -> Template:
    return _ENV.from_string(source)


@lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


def render(source: str, variables: Mapping[str, Any]) -> str:
    """Render a template; plain text (no ``{``) is returned as it is."""
    if "{" not in source:
        return source
    try:
        return _template(source).render(variables)
    except TemplateError as exc:
        raise RenderError(f"template {source[:60]!r}: {exc.message or exc}") from None


def evaluate(source: str, variables: Mapping[str, Any]) -> Any:
    """Evaluate an expression such as ``state.category == "technical"``."""
    try:
        return _expression(source)(**variables)
    except TemplateError as exc:
        raise RenderError(f"expression {source[:60]!r}: {exc.message or exc}") from None


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON-like value (an HTTP body, state values)."""
    if isinstance(value, str):
        return render(value, variables)
    if isinstance(value, dict):
        return {k: render_value(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, variables) for v in value]
    return value
