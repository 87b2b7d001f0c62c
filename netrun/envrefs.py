"""``${NAME}`` and ``${NAME:-default}`` references to environment variables.

Validation checks their syntax only. They are resolved at run time, at the moment a
value is used, and their values never appear in logs, events, errors or output.
``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .errors import NetrunError

REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_START = re.compile(r"\$+\{")


@dataclass(frozen=True)
class RefError:
    offset: int
    """Where the bad reference starts in the string."""
    message: str


def find_errors(text: str) -> Iterator[RefError]:
    """Malformed references in ``text`` (the message never repeats the text itself)."""
    for m in _START.finditer(text):
        dollars = len(m.group()) - 1
        if dollars % 2 == 0:  # `$${` (or `$$$${`) is an escaped, literal `${`
            continue
        start = m.end() - 2
        if REF.match(text, start):
            continue
        close = text.find("}", start)
        if close < 0:
            yield RefError(start, "unclosed ${ reference: write ${NAME} or ${NAME:-default}")
        else:
            yield RefError(
                start,
                "bad ${...} reference: write ${NAME} or ${NAME:-default}, NAME made of letters, digits and '_' (write $${ for a literal ${)",
            )


def names(text: str) -> list[str]:
    """The variable names ``text`` refers to."""
    return [m.group("name") for m in REF.finditer(text)]


def is_reference(text: str) -> bool:
    """True when the whole of ``text`` is one reference (as secrets must be)."""
    return REF.fullmatch(text.strip()) is not None


class MissingEnvError(LookupError, NetrunError, phase="run"):
    """A referenced variable is not set and has no default; names the variable only."""


_ESCAPED_OR_REF = re.compile(r"\$\$\{|" + REF.pattern)


def resolve(text: str, environ: Mapping[str, str]) -> str:
    """Substitute references from ``environ``; raise :class:`MissingEnvError` for an unset one.

    ``$${`` is a literal ``${`` (and is not a reference); substituted values are never
    scanned again, so a value containing ``$${`` or ``${`` stays as it is.
    """

    def sub(m: re.Match[str]) -> str:
        if m.group() == "$${":
            return "${"
        value = environ.get(m.group("name"))
        if value is None:
            if m.group("default") is None:
                raise MissingEnvError(f"environment variable {m.group('name')} is not set")
            return m.group("default")
        return value

    return _ESCAPED_OR_REF.sub(sub, text)
