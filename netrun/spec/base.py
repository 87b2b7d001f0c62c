"""Building blocks shared by every spec model: the base class and the scalar types.

Field documentation is the docstring on the line below each field; ``netrun schema``
puts it into the JSON Schema that editors show (reading it at import time would slow
every ``netrun validate`` down, so the models themselves do not carry it).
"""

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, WithJsonSchema
from pydantic_core import PydanticCustomError


class Spec(BaseModel):
    """Base of every spec model: unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,  # `retries: "3"` and `tokens: true` are mistakes, not numbers
        populate_by_name=False,
    )


NAME_RE = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_RE)


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise PydanticCustomError(
            "bad_name",
            "'{value}' is not a valid name: use letters, digits, '_' and '-', starting with a letter or '_' (at most 64)",
            {"value": value},
        )
    return value


Name = Annotated[str, AfterValidator(_check_name), WithJsonSchema({"type": "string", "pattern": NAME_RE})]
"""An agent, tool, state field or server name: it becomes a function name the model sees."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_RE = r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration(text: str) -> timedelta:
    """``1h30m`` -> timedelta; raises ValueError on anything else."""
    pos, total = 0, 0.0
    text = text.strip()
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(text)
    return timedelta(milliseconds=total)


def _check_duration(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str):
        raise PydanticCustomError(
            "bad_duration",
            "expected a duration with a unit, like 30s, 5m, 4h or 1h30m (units: ms, s, m, h, d, w), got {value}",
            {"value": repr(value)},
        )
    try:
        if parse_duration(value).total_seconds() <= 0:
            raise PydanticCustomError("bad_duration", "a duration must be longer than 0, got '{value}'", {"value": value})
    except ValueError:
        raise PydanticCustomError(
            "bad_duration",
            "'{value}' is not a duration: write a number and a unit, like 30s, 5m, 4h or 1h30m (units: ms, s, m, h, d, w)",
            {"value": value},
        ) from None
    return value


Duration = Annotated[
    str,
    BeforeValidator(_check_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_RE, "examples": ["30s", "5m", "4h", "1h30m"]}),
]
"""A duration such as ``30s``, ``5m``, ``4h`` or ``1h30m``."""

Template = str
"""A Jinja2 template, rendered in a sandbox with strict undefined variables."""

Expression = str
"""A Jinja2 expression (the inside of ``{{ }}``), evaluated in the same sandbox."""


def _check_event(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise PydanticCustomError(
            "bad_event", "'{value}' is not an event name: no spaces, e.g. app/ticket.created", {"value": value}
        )
    return value


EventName = Annotated[
    str,
    AfterValidator(_check_event),
    WithJsonSchema({"type": "string", "pattern": r"^\S+$", "examples": ["app/support.ticket.created"]}),
]
"""An Inngest event name, conventionally ``prefix/noun.verb``."""


def one_of(error: str, pick: Callable[[Any], str | None]) -> Discriminator:
    """The discriminator of a union whose member is chosen by ``pick(value)``, with one
    clear error otherwise.

    netrun's YAML selects kinds by the key present (``http:`` or ``state:``) or by shape
    (a string or a mapping); a callable discriminator keeps pydantic's errors to the one
    member that applies instead of one error per member. Each union is spelled out where
    it is declared, ``Annotated[Annotated[A, Tag("a")] | Annotated[B, Tag("b")], one_of(...)]``,
    so that type checkers see its members.
    """
    kind = error.split(":", 1)[0].replace(" ", "_")[:40]
    return Discriminator(pick, custom_error_type="kind_" + kind, custom_error_message=error)


def by_key(*keys: str) -> Callable[[Any], str | None]:
    """A discriminator: the one key of ``keys`` present in the mapping, else None."""

    def pick(value: Any) -> str | None:
        if isinstance(value, dict):
            found = [k for k in keys if k in value]
            return found[0] if len(found) == 1 else None
        if isinstance(value, BaseModel):  # serializing: the kind is the key the model has
            found = [k for k in keys if k in type(value).model_fields]
            return found[0] if len(found) == 1 else None
        return None

    return pick


def by_shape(value: Any) -> str | None:
    """A discriminator: ``text`` for a string, ``map`` for a mapping, ``list`` for a list."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict | BaseModel):
        return "map"
    if isinstance(value, list):
        return "list"
    return None
