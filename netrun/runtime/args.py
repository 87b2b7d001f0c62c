"""Tool arguments from the model: parsed, and checked against the tool's parameters.

Invalid arguments are the model's mistake; the message goes back to it as the tool's
result so it can try again. Messages name the place and what was expected, never the
value (it may be long, odd, or a secret the model was shown).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..spec.params import matches_type
from .jsonsafe import MAX_DEPTH, TOO_DEEP, json_problem


def parse_arguments(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(arguments, None) or (None, what is wrong)."""
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})"
    except RecursionError:  # nested deeper than Python's parser goes: an answer, not a crash of the run
        return None, "the arguments are nested too deeply"
    if not isinstance(value, dict):
        return None, "the arguments must be a JSON object"
    problem = json_problem(value, "arguments")
    if problem is not None:  # what follows walks the arguments recursively, and the journal stores them
        where, why = problem
        if why == TOO_DEEP:
            return None, f"the arguments are nested too deeply (more than {MAX_NESTING} levels)"
        return None, f"{where}: {why}"
    return value, None


MAX_NESTING = MAX_DEPTH
"""How deep a model's arguments may nest: far more than any tool's parameters need."""


def parameters_schema(spec_parameters: Any) -> dict[str, Any]:
    """Tool parameters (a full ``type: object`` schema, the shorthand ``name -> schema``
    mapping, or None) as the ``{"type": "object", "properties", "required"}`` providers want.

    Accepts spec models or plain dicts, so every tool kind can share it. In the shorthand,
    a parameter without a ``default`` is required.
    """
    if spec_parameters is None:
        return {"type": "object", "properties": {}, "required": []}
    if getattr(spec_parameters, "type", None) == "object" or (
        isinstance(spec_parameters, Mapping) and spec_parameters.get("type") == "object"
    ):
        schema = _dump(spec_parameters)
        schema.setdefault("properties", {})
        schema.setdefault("required", [])
        return schema
    props = {name: _dump(s) for name, s in spec_parameters.items()}
    required = [name for name, s in spec_parameters.items() if "default" not in _fields_set(s)]
    return {"type": "object", "properties": props, "required": required}


def _dump(schema: Any) -> dict[str, Any]:
    if hasattr(schema, "model_dump"):
        return schema.model_dump(mode="json", exclude_none=True)
    return json.loads(json.dumps(schema))  # a deep copy of a plain mapping


def _fields_set(schema: Any) -> set[str]:
    return set(schema.model_fields_set) if hasattr(schema, "model_fields_set") else set(schema)


def check_args(value: Any, schema: Mapping[str, Any], path: str = "args") -> list[str]:
    """What is wrong with ``value`` against ``schema`` (the subset in :mod:`netrun.spec.params`).

    Messages name the place and the expected type, never the value (it may be long or odd).
    """
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(matches_type(value, t) for t in types):
            return [f"{path}: expected {' or '.join(types)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: must be one of {json.dumps(schema['enum'])}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {json.dumps(schema['const'])}")
    if "anyOf" in schema and all(check_args(value, s, path) for s in schema["anyOf"]):
        errors.append(f"{path}: matches none of the allowed schemas")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: length must be within {schema.get('minLength', 0)}..{schema.get('maxLength', '')}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: must match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, bad in (
            ("minimum", value.__lt__),
            ("maximum", value.__gt__),
            ("exclusiveMinimum", value.__le__),
            ("exclusiveMaximum", value.__ge__),
        ):
            if key in schema and bad(schema[key]):
                errors.append(f"{path}: {key} is {schema[key]}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: number of items must be within {schema.get('minItems', 0)}..{schema.get('maxItems', '')}")
        for i, item in enumerate(value):
            errors += check_args(item, schema.get("items") or {}, f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        errors += [f"{path}.{k}: missing (it is required)" for k in schema.get("required") or [] if k not in value]
        for key, item in value.items():
            if key in props:
                errors += check_args(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}.{key}: unexpected")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += check_args(item, schema["additionalProperties"], f"{path}.{key}")
    return errors
