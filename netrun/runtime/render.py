"""Rendering templates and evaluating expressions at run time, in the same sandbox that
``netrun validate`` checks them in (:func:`netrun.expressions.jinja.sandbox`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import DictLoader, Template, Undefined

from ..diagnostics import YamlPath, format_path
from ..errors import NetrunError
from ..expressions.jinja import sandbox

_SINGLE_EXPR = re.compile(r"\{\{((?:(?!\{\{|\}\}).)*)\}\}", re.S)
_MARK = "\x00"
"""Brackets each ``{{ }}`` output in :meth:`Renderer.render_pieces` (its text hex-encoded
inside, so no value can forge or close a bracket; a source holding NUL is refused)."""


def _mark(value: Any) -> str:
    return _MARK + str(value).encode().hex() + _MARK


def _unmark(hexed: str) -> str:
    """The text of one marked value. A value may hold marked values itself (``{{ m(x) }}``
    with a macro whose ``{{ x }}`` was marked): the whole of it is a value, inner marks go."""
    text = bytes.fromhex(hexed).decode()
    if _MARK in text:
        parts = text.split(_MARK)
        text = "".join(_unmark(p) if i % 2 else p for i, p in enumerate(parts))
    return text


class RenderError(NetrunError, phase="run"):
    """A template or expression failed at run time (an undefined value, a bad filter call).

    Its place is named when the caller gave it (``place=("router", "rules", 2, "if")``):
    the message starts with the YAML path and :attr:`yaml_path` holds it, since at run time
    the source text alone rarely says which of a network's templates failed."""


def _failed(what: str, source: str, reason: str, place: YamlPath) -> RenderError:
    prefix = f"{format_path(place)}: " if place else ""
    return RenderError(f"{prefix}{what} {source[:60]!r}: {reason}").at(path=place)


class Renderer:
    """Renders one network's templates; ``{% include "NAME" %}`` finds its prompt fragments."""

    def __init__(self, prompts: Mapping[str, str] | None = None) -> None:
        self.env = sandbox()
        self.env.loader = DictLoader(dict(prompts or {}))
        self._templates: dict[str, Template] = {}
        self._expressions: dict[str, Any] = {}
        # finalize is compiled into a template, so the marking renderer is an environment of its own
        self._marking = sandbox()
        self._marking.loader = self.env.loader
        self._marking.finalize = _mark
        self._marked: dict[str, Template] = {}

    def render(self, source: str, variables: Mapping[str, Any], place: YamlPath = ()) -> str:
        """Render a template; plain text (no ``{``) is returned as it is. ``place``, the
        template's YAML path, is named by the error if it fails."""
        if "{" not in source:
            return source
        try:
            template: Template = _cached(self._templates, source, lambda s: _flat(self.env.from_string(s)))
            return template.render(variables)
        except Exception as exc:  # any failure inside a user's template is the user's to read
            raise _failed("template", source, _reason(exc), place) from None

    def evaluate(self, source: str, variables: Mapping[str, Any], place: YamlPath = ()) -> Any:
        """Evaluate an expression such as ``state.category == "technical"``; ``place`` as
        for :meth:`render`."""
        try:
            expression = _cached(self._expressions, source, self._expression)
            value = expression(**variables)
            if isinstance(value, Undefined):  # strict undefined only raises when used: use it here
                str(value)
            return value
        except Exception as exc:
            raise _failed("expression", source, _reason(exc), place) from None

    def _expression(self, source: str) -> Any:
        expression = self.env.compile_expression(source, undefined_to_none=False)
        _flat(expression._template)
        return expression

    def render_value(self, value: Any, variables: Mapping[str, Any]) -> Any:
        """Render every string inside a JSON-like value as text."""
        return each_string(value, lambda s: self.render(s, variables))

    def render_typed(self, value: Any, variables: Mapping[str, Any]) -> Any:
        """Render every string inside a JSON-like value, the one rule for every place a
        template yields a value (state writes, event data, HTTP bodies): a string that is a
        single ``{{ expr }}`` keeps the expression's JSON type (``{{ args.limit }}`` is 5, not
        "5"; ``{{ args.tags }}`` a list, ``{{ event.data }}`` an object); anything else renders
        as text."""
        return each_string(value, lambda s: self._typed(s, variables))

    def _typed(self, source: str, variables: Mapping[str, Any]) -> Any:
        match = _SINGLE_EXPR.fullmatch(source.strip()) if "{{" in source else None
        if match:
            try:
                value = self.evaluate(match.group(1), variables)
                if type(value) in _SCALARS:  # as JSON would give it back, without the round trip
                    return value
                if not isinstance(value, Undefined):
                    return json.loads(json.dumps(value))
            except (RenderError, TypeError, ValueError, RecursionError):  # `{{- x -}}`, a value JSON can't carry:
                pass  # rendered as text below, so errors read the same as everywhere else
        return self.render(source, variables)

    def render_pieces(self, source: str, variables: Mapping[str, Any]) -> list[tuple[str, bool]]:
        """Render a template into ``(text, is_value)`` pieces: the template's own text (and
        what its ``{% %}`` blocks choose) apart from what each ``{{ }}`` inserted, so that a
        caller can treat inserted values as data (a URL percent-encodes them where they land)."""
        if _MARK in source:
            raise RenderError(f"template {source[:60]!r}: holds a NUL character")
        try:
            template = _cached(self._marked, source, lambda s: _flat(self._marking.from_string(s)))
            text = template.render(variables)
        except Exception as exc:
            raise RenderError(f"template {source[:60]!r}: {_reason(exc)}") from None
        parts = text.split(_MARK)
        try:
            pieces = [(_unmark(p) if i % 2 else p, bool(i % 2)) for i, p in enumerate(parts)]
        except ValueError:  # a `{% filter %}` block rewrote an inserted value: filter inside the {{ }}
            raise RenderError(f"template {source[:60]!r}: a {{% filter %}} block may not wrap a {{{{ }}}} here") from None
        return [piece for piece in pieces if piece[0] or piece[1]]


_SCALARS = frozenset({str, int, float, bool, type(None)})
"""Types a JSON round trip returns as they are (exactly these: a subclass such as Markup is
made plain by the trip)."""

_CACHED_MAX = 4096
"""Compiled templates kept per renderer. Bounded: some sources are new on every call (an
HTTP tool's ``${ENV}`` placeholders carry a nonce made for each call)."""


def _cached(cache: dict[str, Any], source: str, make: Callable[[str], Any]) -> Any:
    found = cache.get(source)
    if found is None:
        if len(cache) >= _CACHED_MAX:
            cache.pop(next(iter(cache)))  # the oldest: dicts keep insertion order
        found = cache[source] = make(source)
    return found


def _flat(template: Template) -> Template:
    """``template`` with its globals as one plain dict instead of Jinja's ChainMap over the
    environment's: each render copies them into a new context, and copying a ChainMap
    key by key cost a few per cent of a run's CPU (the sandbox's globals are fixed once made)."""
    template.globals = dict(template.globals)
    return template


def each_string(value: Any, leaf: Callable[[str], Any]) -> Any:
    """``value`` with ``leaf`` applied to every string inside it (dicts and lists walked)."""
    if isinstance(value, str):
        return leaf(value)
    if isinstance(value, dict):
        return {k: each_string(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [each_string(v, leaf) for v in value]
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
render_typed = _DEFAULT.render_typed
render_pieces = _DEFAULT.render_pieces
