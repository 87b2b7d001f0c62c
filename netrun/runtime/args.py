"""Tool arguments from the model: parsed, and checked against the tool's parameters.

Invalid arguments are the model's mistake; the message goes back to it as the tool's
result so it can try again. Messages name the place and what was expected, never the
value (it may be long, odd, or a secret the model was shown).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, cast

from .jsonsafe import MAX_DEPTH, TOO_DEEP, json_problem


def parse_arguments(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(arguments, None) or (None, what is wrong)."""
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})"
    except ValueError as exc:  # valid JSON Python refuses, e.g. an integer of over 4,300 digits
        return None, f"the arguments are not valid JSON ({exc})"
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
        return cast(dict[str, Any], schema.model_dump(mode="json", exclude_none=True))
    return cast(dict[str, Any], json.loads(json.dumps(schema)))  # a deep copy of a plain mapping


def _fields_set(schema: Any) -> set[str]:
    return set(schema.model_fields_set) if hasattr(schema, "model_fields_set") else set(schema)


def call_args(name: str, args: Mapping[str, Any], schema: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A tool's arguments as it runs with them: checked against its ``schema`` (the error a
    tool returns when they do not fit, else None) and completed with the schema's defaults."""
    errors = check_args(args, schema)
    if errors:
        return dict(args), f"invalid arguments for {name}: " + "; ".join(errors)
    defaults = {k: s["default"] for k, s in (schema.get("properties") or {}).items() if "default" in s}
    return {**defaults, **args}, None


def check_args(value: Any, schema: Mapping[str, Any], path: str = "args") -> list[str]:
    """What is wrong with ``value`` against the JSON Schema ``schema``, checked by ``jsonschema``.

    Messages name the place and what is allowed, never the value (it may be long or odd),
    in the order a reader walks the value: a place's own problems, then what is missing,
    then its members in the value's order. A value of the wrong type gets that one message.
    """
    # At run time only: `netrun validate` never checks arguments, and jsonschema costs start-up.
    import jsonschema
    from referencing.exceptions import Unresolvable

    try:
        errors = list(_validator(schema, jsonschema).iter_errors(value))
    except (jsonschema.exceptions.UnknownType, Unresolvable, re.error, TypeError):
        # A schema the library cannot apply (an MCP server's unknown type name or dangling
        # $ref): the arguments go to the tool unchecked, and the tool's server judges them.
        return []
    wrong_type = [tuple(e.absolute_path) for e in errors if e.validator == "type"]
    found: list[tuple[tuple[tuple[int, int], ...], str]] = []
    for error in errors:
        where = tuple(error.absolute_path)
        if any(where[: len(t)] == t for t in wrong_type) and error.validator != "type":
            continue  # inside a value of the wrong type, nothing else is worth saying
        place = path + _suffix(where)
        if error.validator == "required":
            given = error.instance if isinstance(error.instance, Mapping) else {}
            # (the stubs allow jsonschema's Unset here; a `required` error always has its list)
            names = error.validator_value if isinstance(error.validator_value, Iterable) else ()
            for name in names:
                if name not in given:
                    found.append((_order(value, where, _RANK["required"]), f"{place}.{name}: missing (it is required)"))
        elif error.validator == "additionalProperties" and error.validator_value is False and isinstance(error.schema, Mapping):
            for name in _additional(error.instance, error.schema):
                found.append((_order(value, (*where, name), -1), f"{place}.{name}: unexpected"))
        else:
            found.append((_order(value, where, _RANK.get(str(error.validator), len(_RANK))), f"{place}: {_why(error)}"))
    found.sort(key=lambda pair: pair[0])
    return list(dict.fromkeys(message for _, message in found))  # one message per problem (missing names repeat)


_VALIDATORS: dict[str, Any] = {}
"""Validators by their schema's JSON text: building one costs as much as a check, and a
tool's schema is rebuilt (equal) for every run, so it is its content that repeats."""


_BY_OBJECT: dict[int, tuple[Mapping[str, Any], Any]] = {}
"""Validators by their schema object: a run checks each call against its tool's one schema
object, so its JSON text is made once per run, not once per call (the object is held, so
its id keeps naming it)."""


def _validator(schema: Mapping[str, Any], jsonschema: Any) -> Any:
    held = _BY_OBJECT.get(id(schema))
    if held is not None and held[0] is schema:
        return held[1]
    key = json.dumps(schema, sort_keys=True, default=str)
    found = _VALIDATORS.get(key)
    if found is None:
        found = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)
        _bounded(_VALIDATORS)[key] = found
    _bounded(_BY_OBJECT)[id(schema)] = (schema, found)
    return found


def _bounded(cache: dict[Any, Any]) -> dict[Any, Any]:
    """``cache`` with room for one more: MCP servers may offer many schemas, runs build theirs anew."""
    if len(cache) >= 1024:
        cache.pop(next(iter(cache)))
    return cache


_RANK = {
    key: rank
    for rank, keys in enumerate(
        (
            ("type",),
            ("enum",),
            ("const",),
            ("anyOf", "oneOf", "not"),
            ("minLength", "maxLength"),
            ("pattern",),
            ("minimum",),
            ("maximum",),
            ("exclusiveMinimum",),
            ("exclusiveMaximum",),
            ("multipleOf",),
            ("minItems", "maxItems"),
            ("uniqueItems",),
            ("minProperties", "maxProperties"),
            ("required",),
        )
    )
    for key in keys
}
"""The order of a place's own messages (anything else comes after them)."""


def _why(error: Any) -> str:
    """What ``error`` (a ``jsonschema.ValidationError``) says is allowed, without the value."""
    keyword, allowed, schema = str(error.validator), error.validator_value, error.schema
    if keyword == "type":
        return "expected " + " or ".join([allowed] if isinstance(allowed, str) else allowed)
    if keyword == "enum":
        return f"must be one of {json.dumps(allowed)}"
    if keyword == "const":
        return f"must be {json.dumps(allowed)}"
    if keyword == "anyOf":
        return "matches none of the allowed schemas"
    if keyword == "oneOf":
        return "must match exactly one of the allowed schemas"
    if keyword in ("minLength", "maxLength"):
        return f"length must be within {schema.get('minLength', 0)}..{schema.get('maxLength', '')}"
    if keyword in ("minItems", "maxItems"):
        return f"number of items must be within {schema.get('minItems', 0)}..{schema.get('maxItems', '')}"
    if keyword in ("minProperties", "maxProperties"):
        return f"number of properties must be within {schema.get('minProperties', 0)}..{schema.get('maxProperties', '')}"
    if keyword == "pattern":
        return f"must match {allowed}"
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{keyword} is {allowed}"
    if keyword == "multipleOf":
        return f"must be a multiple of {allowed}"
    if keyword == "uniqueItems":
        return "items must be unique"
    if keyword == "not":
        return "matches a schema it must not"
    if error.validator is None:  # the schema `false`: nothing is allowed here
        return "not allowed here"
    return f"does not satisfy {keyword}"


def _suffix(where: tuple[Any, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in where)


def _order(value: Any, where: tuple[Any, ...], rank: int) -> tuple[tuple[int, int], ...]:
    """A sort key: the place's position in ``value`` (members in the value's order), then
    ``rank`` for the place's own messages, which come before its members'."""
    key: list[tuple[int, int]] = []
    for part in where:
        if isinstance(value, Mapping):
            key.append((1, list(value).index(part) if part in value else len(value)))
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int):
            key.append((1, part))
            value = value[part] if part < len(value) else None
        else:
            key.append((1, 0))
    return (*key, (0, rank))


def _additional(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    """The members of ``instance`` that neither ``properties`` nor ``patternProperties`` name."""
    if not isinstance(instance, Mapping):
        return []
    props, patterns = schema.get("properties") or {}, schema.get("patternProperties") or {}
    return [k for k in instance if k not in props and not any(re.search(p, k) for p in patterns)]
