"""Rendering templates and evaluating expressions at run time, in the same sandbox that
``netrun validate`` checks them in (:func:`netrun.check.templates.sandbox`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import DictLoader, Template, Undefined

from ..check.templates import sandbox


class RenderError(Exception):
    """A template or expression failed at run time (an undefined value, a bad filter call)."""


class Renderer:
    """Renders one network's templates; ``{% include "NAME" %}`` finds its prompt fragments."""

    def __init__(self, prompts: Mapping[str, str] | None = None) -> None:
        self.env = sandbox()
        self.env.loader = DictLoader(dict(prompts or {}))
        self._templates: dict[str, Template] = {}
        self._expressions: dict[str, Any] = {}

    def render(self, source: str, variables: Mapping[str, Any]) -> str:
        """Render a template; plain text (no ``{``) is returned as it is."""
        if "{" not in source:
            return source
        try:
            template = self._templates.get(source)
            if template is None:
                template = self._templates[source] = self.env.from_string(source)
            return template.render(variables)
        except Exception as exc:  # any failure inside a user's template is the user's to read
            raise RenderError(f"template {source[:60]!r}: {_reason(exc)}") from None

    def evaluate(self, source: str, variables: Mapping[str, Any]) -> Any:
        """Evaluate an expression such as ``state.category == "technical"``."""
        try:
            expression = self._expressions.get(source)
            if expression is None:
                expression = self._expressions[source] = self.env.compile_expression(source, undefined_to_none=False)
            value = expression(**variables)
            if isinstance(value, Undefined):  # strict undefined only raises when used: use it here
                str(value)
            return value
        except Exception as exc:
            raise RenderError(f"expression {source[:60]!r}: {_reason(exc)}") from None

    def render_value(self, value: Any, variables: Mapping[str, Any]) -> Any:
        """Render every string inside a JSON-like value (an HTTP body, state values)."""
        if isinstance(value, str):
            return self.render(value, variables)
        if isinstance(value, dict):
            return {k: self.render_value(v, variables) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render_value(v, variables) for v in value]
        return value


def _reason(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


_SHARED: dict[tuple[tuple[str, str], ...], Renderer] = {}


def renderer_for(prompts: Mapping[str, str]) -> Renderer:
    """One renderer per set of prompt fragments, shared by every run of the same network:
    compiling a template costs milliseconds, rendering a compiled one microseconds."""
    key = tuple(sorted(prompts.items()))
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) > 256:  # a long-lived server with many edited networks: start afresh
            _SHARED.clear()
        found = _SHARED[key] = Renderer(prompts)
    return found


_DEFAULT = renderer_for({})
render = _DEFAULT.render
evaluate = _DEFAULT.evaluate
render_value = _DEFAULT.render_value
