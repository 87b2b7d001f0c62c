"""The Jinja environment every template and expression is checked and rendered in.

``netrun validate`` parses templates in it (:mod:`netrun.check.templates`) and runs render
them in it (:mod:`netrun.runtime.render`): one definition, so the checker can never accept
a construct the runtime refuses, or the other way round.
"""

from __future__ import annotations

import functools

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment


def sandbox() -> ImmutableSandboxedEnvironment:
    """A new environment: immutable sandbox (no attribute writes, no unsafe calls), strict
    undefined variables (a typo is an error, not an empty string), no HTML escaping (the
    text goes to models and APIs, not browsers)."""
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


_PARSING = sandbox()


@functools.lru_cache(maxsize=4096)
def parse_expression(source: str) -> nodes.Expr:
    """The tree of a Jinja expression (shared by the checks and the CEL translation, so
    each expression is parsed once); raises TemplateSyntaxError."""
    parser = Parser(_PARSING, source, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        tok = parser.stream.current
        raise TemplateSyntaxError(f"unexpected {tok.value!r} after the expression", tok.lineno)
    return expr
