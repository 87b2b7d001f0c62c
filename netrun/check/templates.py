"""Templates and expressions: parse them in the runtime's sandbox and check every name.

Templates and ``if`` expressions share one language, Jinja2 in a sandbox with strict
undefined variables. Here they are parsed (not rendered) and their variables checked
against the scope of the place they appear in: a typo such as ``state.categroy`` is a
validation error with its position inside the template, not a silent empty string at
run time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..expressions.jinja import parse_expression, sandbox
from ..suggest import hint

Fields = frozenset[str]
Scope = Mapping[str, Fields | None]
"""Variable name -> its known attributes (None: any attribute)."""


@dataclass(frozen=True)
class Problem:
    """A problem inside one template; ``line`` is 1-based within the template text."""

    message: str
    line: int
    col: int
    needle: str | None = None
    code: str = "template"


@functools.cache
def _lexer() -> ImmutableSandboxedEnvironment:
    return sandbox()


def template_pieces(source: str) -> list[tuple[str, bool]] | None:
    """A template's own text (False) and one stand-in per ``{{ }}`` (True), in order; ``{% %}``
    and comments are left out. None when it does not lex (reported as a template error)."""
    pieces: list[tuple[str, bool]] = []
    inside = False
    try:
        for _, kind, value in _lexer().lex(source):
            if kind == "variable_begin":
                pieces.append(("x", True))
                inside = True
            elif kind == "variable_end":
                inside = False
            elif kind == "data" and not inside:
                pieces.append((value, False))
    except TemplateSyntaxError:
        return None
    return pieces


_GLOBALS = frozenset(
    {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "true", "false", "none", "True", "False", "None"}
)
_STATE_HINT = {"state": "state fields", "args": "parameters"}


class TemplateChecker:
    """Checks templates and expressions against the variables of their scope."""

    def __init__(self, prompts: Fields = frozenset()) -> None:
        self.env = sandbox()
        self.prompts = prompts

    def template(self, source: str, scope: Scope) -> list[Problem]:
        if "{" not in source:  # plain text: nothing to parse
            return []
        parsed = _TEMPLATES.get(source)
        if parsed is None:
            try:
                parsed = _Parsed(self.env.parse(source))
            except TemplateSyntaxError as exc:
                parsed = _syntax(exc, source)
            _TEMPLATES[source] = parsed
        return [parsed] if isinstance(parsed, Problem) else self._check(parsed, source, scope)

    def expression(self, source: str, scope: Scope) -> list[Problem]:
        if not source.strip():
            return [Problem("empty expression", 1, 1, code="expression")]
        parsed = _EXPRESSIONS.get(source)
        if parsed is None:
            parsed = _parse_expression(source)
            _EXPRESSIONS[source] = parsed
        return [parsed] if isinstance(parsed, Problem) else self._check(parsed, source, scope)

    def _check(self, parsed: _Parsed, source: str, scope: Scope) -> list[Problem]:
        lines = source.split("\n")
        problems: list[Problem] = []

        def at(node: nodes.Node, needle: str, message: str, code: str) -> None:
            line = getattr(node, "lineno", 1) or 1
            text = lines[line - 1] if 0 < line <= len(lines) else ""
            found = re.search(r"(?<![\w.])" + re.escape(needle) + r"(?!\w)", text) or re.search(re.escape(needle), text)
            problems.append(Problem(message, line, found.start() + 1 if found else 1, needle, code))

        local = parsed.local
        known = sorted(scope)
        reported: set[str] = set()
        for name in parsed.names:
            if name.name not in scope and name.name not in local and name.name not in _GLOBALS and name.name not in reported:
                reported.add(name.name)
                at(
                    name,
                    name.name,
                    f"undefined variable '{name.name}'"
                    + hint(name.name, known, "variables here").replace("defined variables here", "available here"),
                    "undefined-variable",
                )
        for node, base, attr in parsed.attrs:
            fields = scope.get(base)
            if base in local or fields is None or attr in fields:
                continue
            noun = _STATE_HINT.get(base, "fields")
            at(node, attr, f"{base} has no field '{attr}'" + hint(attr, sorted(fields), noun), "unknown-field-ref")
        for node in parsed.filters:
            table = self.env.filters if isinstance(node, nodes.Filter) else self.env.tests
            if node.name not in table:
                kind = "filter" if isinstance(node, nodes.Filter) else "test"
                at(
                    node,
                    node.name,
                    f"unknown {kind} '{node.name}'"
                    + hint(node.name, sorted(table), f"{kind}s").replace(f"defined {kind}s", f"{kind}s"),
                    f"unknown-{kind}",
                )
        for node, target in parsed.includes:
            if target not in self.prompts:
                at(node, target, f"unknown prompt '{target}'" + hint(target, sorted(self.prompts), "prompts"), "unknown-prompt")
        return problems


class _Parsed:
    """What the checks need from one parsed template, gathered in a single walk of its tree.

    Parsing and walking are the costly part of validation, and the same template text
    recurs across tools, agents and files, so results are cached by text.
    """

    __slots__ = ("attrs", "filters", "includes", "local", "names")

    def __init__(self, tree: nodes.Node) -> None:
        self.names: list[nodes.Name] = []
        self.attrs: list[tuple[nodes.Node, str, str]] = []
        self.filters: list[nodes.Filter | nodes.Test] = []
        self.includes: list[tuple[nodes.Node, str]] = []
        self.local: set[str] = set()
        stack = [tree]
        while stack:
            node = stack.pop()
            stack.extend(node.iter_child_nodes())
            if isinstance(node, nodes.Name):
                if node.ctx == "load":
                    self.names.append(node)
                else:
                    self.local.add(node.name)
            elif isinstance(node, nodes.Getattr | nodes.Getitem):
                base = node.node
                if isinstance(base, nodes.Name):
                    if isinstance(node, nodes.Getattr):
                        self.attrs.append((node, base.name, node.attr))
                    elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                        self.attrs.append((node, base.name, node.arg.value))
            elif isinstance(node, nodes.Filter | nodes.Test):
                self.filters.append(node)
            elif isinstance(node, nodes.For):
                self.local.add("loop")
            elif isinstance(node, nodes.Macro):
                self.local |= {"caller", "varargs", "kwargs"}
            elif isinstance(node, nodes.Include | nodes.Extends | nodes.Import | nodes.FromImport):
                target = node.template
                if isinstance(target, nodes.Const) and isinstance(target.value, str):
                    self.includes.append((node, target.value))
        self.names.sort(key=lambda n: n.lineno)  # report in reading order


_TEMPLATES: dict[str, _Parsed | Problem] = {}
_EXPRESSIONS: dict[str, _Parsed | Problem] = {}


def _parse_expression(source: str) -> _Parsed | Problem:
    try:
        expr = parse_expression(source)
    except TemplateSyntaxError as exc:
        msg = exc.message or "syntax error"
        if re.search(r"(?<![=!<>])=(?!=)", source):
            msg += " (to compare, write '==')"
        if "{{" in source or "{%" in source:
            msg += " (an expression is written without '{{ }}')"
        return _syntax(TemplateSyntaxError(msg, exc.lineno), source, "expression")
    return _Parsed(expr)


_JARGON = [
    (re.compile(r"unexpected end of template, expected 'end of print statement'\.?"), "'{{' is never closed: expected '}}'"),
    (re.compile(r"expected token 'end of print statement', got '(.+?)'"), r"expected '}}' to close '{{', got '\1'"),
    (re.compile(r"Expected an expression, got 'end of statement block'"), "expected an expression before '%}'"),
    (re.compile(r"Expected an expression, got 'end of print statement'"), "expected an expression before '}}'"),
    (re.compile(r"unexpected end of template, expected 'end of statement block'\.?"), "'{%' is never closed: expected '%}'"),
    (re.compile(r"unexpected 'end of template'"), "the expression ends too early"),
]


def _syntax(exc: TemplateSyntaxError, source: str, code: str = "template-syntax") -> Problem:
    line = exc.lineno or 1
    lines = source.split("\n")
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    col = len(text) - len(text.lstrip()) + 1
    message = (exc.message or "syntax error").replace("\n", " ")
    for pattern, plain in _JARGON:
        message = pattern.sub(plain, message)
    # Jinja gives the line only; point at the token the message names, or at the
    # opening '{{' / '{%' that was never closed.
    opening = max(text.rfind("{{"), text.rfind("{%"))
    quoted = re.findall(r"'([^']{1,3})'", message)
    if "never closed" in message and opening >= 0:
        col = opening + 1
    elif quoted and quoted[-1] not in ("{{", "}}", "{%", "%}") and text.find(quoted[-1], max(opening, 0)) >= 0:
        col = text.find(quoted[-1], max(opening, 0)) + 1
    elif opening >= 0:
        col = opening + 1
    word = "expression" if code == "expression" else "template"
    return Problem(f"{word} syntax: {message}", line, col, None, code if code != "expression" else "expression-syntax")
