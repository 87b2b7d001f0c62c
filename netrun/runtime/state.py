"""Initial state, checked against the network's declared ``state`` before a run is recorded.

Both ways of starting a run use it: ``netrun run --state KEY=VALUE`` (text, read as the
field's type by :func:`read_state_text`) and ``POST /networks/{name}/runs`` (JSON
``state``). Every given field must be declared, and its value must fit the declaration
(type, enum, the rest of the JSON Schema subset in :mod:`netrun.spec.params`) and read
back from the journal (:mod:`netrun.runtime.jsonsafe`). A network that declares no state
accepts no initial state: its templates and rules cannot read undeclared fields anyway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..spec.params import JsonSchema, matches_type
from ..suggest import hint
from .args import check_args
from .jsonsafe import encodable, json_problem


def field_schema(field: Any) -> dict[str, Any]:
    """A declared state field (a type name or a JSON Schema) as a JSON Schema mapping."""
    if isinstance(field, JsonSchema):
        return field.model_dump(mode="json", exclude_none=True)
    return {"type": field}


def state_problems(declared: Mapping[str, Any], given: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What is wrong with ``given`` as the initial state of a network declaring ``declared``:
    ``(field, path, why)`` for each problem, none when it is fine."""
    problems: list[tuple[str, str, str]] = []
    for key, value in given.items():
        if not encodable(key):
            problems.append((key, "<key>", "a field name that is not valid Unicode (a lone surrogate such as \\ud800)"))
            continue
        if key not in declared:
            tail = (
                hint(key, list(declared), "state fields")
                if declared
                else ": this network declares no state (declare fields under 'state:')"
            )
            problems.append((key, key, f"not a declared state field{tail}"))
            continue
        unreadable = json_problem(value, key)
        if unreadable is not None:
            problems.append((key, *unreadable))
            continue
        schema = field_schema(declared[key])
        for message in check_args(value, schema, key):
            path, why = _split(key, message)
            if path == key and why.startswith("expected "):
                why += f", got {_json_type(value)}" + (" (leave the field out for its default)" if value is None else "")
            problems.append((key, path, why))
    return problems


def read_state_text(declared: Mapping[str, Any], key: str, text: str) -> Any:
    """A ``--state KEY=VALUE`` value: JSON or text, whichever the declared field accepts
    (``name=42`` is the text "42" for a string field, the number 42 for an integer one).
    When neither fits, the JSON reading is returned, for :func:`state_problems` to report."""
    try:
        parsed: Any = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if key not in declared or parsed == text:
        return parsed
    schema = field_schema(declared[key])
    if check_args(parsed, schema, key) and not check_args(text, schema, key):
        return text
    return parsed


def _json_type(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "array", "object", "null"):
        if matches_type(value, name):
            return name
    return type(value).__name__


def _split(key: str, message: str) -> tuple[str, str]:
    """``"key.sub: why"`` -> ``("key.sub", "why")`` (the path starts with ``key``, which may
    itself hold ``": "``)."""
    rest, _, why = message[len(key) :].partition(": ")
    return key + rest, why
