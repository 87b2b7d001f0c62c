"""Tool arguments from the model: parsed and checked against the tool's parameters.

Invalid arguments are the model's mistake; the message goes back to it as the tool's
result so it can try again.
"""

from __future__ import annotations

import json
from typing import Any

_TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}


def parse_arguments(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(arguments, None) or (None, what is wrong)."""
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})"
    if not isinstance(value, dict):
        return None, "the arguments must be a JSON object"
    return value, None


def check_arguments(schema: dict[str, Any], args: dict[str, Any]) -> str | None:
    """What is wrong with ``args`` against an object schema, or None."""
    props: dict[str, Any] = schema.get("properties") or {}
    missing = [name for name in schema.get("required") or [] if name not in args]
    if missing:
        return f"missing required argument{'s' * (len(missing) > 1)}: {', '.join(missing)}"
    if schema.get("additionalProperties") is False:
        extra = [k for k in args if k not in props]
        if extra:
            return f"unknown argument{'s' * (len(extra) > 1)}: {', '.join(extra)} (allowed: {', '.join(props) or 'none'})"
    for name, value in args.items():
        problem = _check_value(props.get(name) or {}, value, name)
        if problem:
            return problem
    return None


def _check_value(schema: dict[str, Any], value: Any, where: str) -> str | None:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(_is(value, k) for k in kinds):
        return f"argument {where} must be {' or '.join(kinds)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"argument {where} must be one of {', '.join(map(json.dumps, schema['enum']))}, got {json.dumps(value)}"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = _check_value(schema["items"], item, f"{where}[{i}]")
            if problem:
                return problem
    if isinstance(value, dict) and "properties" in schema:
        nested = check_arguments(schema, value)
        if nested:
            return f"in {where}: {nested}"
    return None


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    want = _TYPES.get(kind)
    if want is None:
        return True
    return isinstance(value, want) and not (kind in ("integer", "number") and isinstance(value, bool))
