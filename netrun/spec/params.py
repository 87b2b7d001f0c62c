"""JSON Schema, the subset that model providers accept for tool parameters.

The same subset declares state fields. Keywords keep their JSON Schema spelling
(``additionalProperties``, ``minLength``) so schemas can be pasted from elsewhere; a
misspelt keyword is an error instead of a constraint silently ignored.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, Tag

from .base import Name, Spec, by_shape, one_of

JsonType = Literal["string", "integer", "number", "boolean", "array", "object", "null"]


class JsonSchema(Spec):
    """A JSON Schema (the subset function-calling models understand)."""

    type: (
        Annotated[
            Annotated[JsonType, Tag("text")] | Annotated[list[JsonType], Tag("list")],
            one_of("type is a JSON type name or a list of them: string, integer, number, boolean, array, object, null", by_shape),
        ]
        | None
    ) = None
    """The JSON type: string, integer, number, boolean, array, object or null."""
    description: str | None = None
    """What the value means; the model reads this."""
    title: str | None = None
    """A short title."""
    enum: Annotated[list[Any], Field(min_length=1)] | None = None
    """The allowed values."""
    const: Any = None
    """The one allowed value."""
    default: Any = None
    """The value used when none is given."""
    examples: list[Any] | None = None
    """Example values."""
    format: str | None = None
    """A string format, e.g. date-time, email, uri."""
    pattern: str | None = None
    """A regular expression strings must match."""
    minLength: int | None = Field(default=None, ge=0)  # noqa: N815 - JSON Schema spelling
    """Shortest allowed string."""
    maxLength: int | None = Field(default=None, ge=0)  # noqa: N815
    """Longest allowed string."""
    minimum: float | None = None
    """Smallest allowed number."""
    maximum: float | None = None
    """Largest allowed number."""
    exclusiveMinimum: float | None = None  # noqa: N815
    """Numbers must be greater than this."""
    exclusiveMaximum: float | None = None  # noqa: N815
    """Numbers must be less than this."""
    items: "JsonSchema | None" = None
    """The schema of array items."""
    minItems: int | None = Field(default=None, ge=0)  # noqa: N815
    """Fewest allowed array items."""
    maxItems: int | None = Field(default=None, ge=0)  # noqa: N815
    """Most allowed array items."""
    properties: "dict[str, JsonSchema] | None" = None
    """The schema of each object property."""
    required: list[str] | None = None
    """The object properties that must be present."""
    additionalProperties: (  # noqa: N815
        Annotated[
            Annotated[bool, Tag("bool")] | Annotated["JsonSchema", Tag("map")],
            one_of(
                "additionalProperties is true, false or a JSON Schema mapping",
                lambda v: "bool" if isinstance(v, bool) else by_shape(v),
            ),
        ]
        | None
    ) = None
    """Whether (or how) properties not listed are allowed."""
    anyOf: "list[JsonSchema] | None" = None  # noqa: N815
    """The value matches at least one of these schemas."""


_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def matches_type(value: Any, json_type: str) -> bool:
    """Whether a JSON value has this JSON Schema type (as validate checks defaults and
    literals, and the runtime checks the model's arguments): a boolean is not a number,
    an integral float is an integer."""
    if isinstance(value, bool) and json_type in ("integer", "number"):
        return False
    if json_type == "integer" and isinstance(value, float):
        return value.is_integer()
    want = _PYTHON_TYPES.get(json_type)
    return True if want is None else isinstance(value, want)


StateField = Annotated[
    Annotated[JsonType, Tag("text")] | Annotated[JsonSchema, Tag("map")],
    one_of("a state field is a type name (string, integer, number, boolean, array, object) or a JSON Schema mapping", by_shape),
]
"""A declared state field: a type name (``count: integer``) or a JSON Schema."""

Parameters = Annotated[
    Annotated[JsonSchema, Tag("schema")] | Annotated[dict[Name, JsonSchema], Tag("properties")],
    one_of(
        "parameters are a mapping: either a JSON Schema with 'type: object', or a mapping of parameter name to schema",
        lambda v: ("schema" if v.get("type") == "object" else "properties") if isinstance(v, dict) else None,
    ),
]
"""Tool parameters: a JSON Schema with ``type: object``, or the shorthand mapping of
parameter name to schema (every parameter without a ``default`` is required)."""
