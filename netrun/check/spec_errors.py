"""Spec phase: pydantic validation errors -> located, readable diagnostics.

pydantic reports an error at a ``loc`` such as ``('tools', 'fetch', 'http', 'http', 'url')``
where some parts are union tags, not keys of the data. :func:`walk_loc` follows the spec
types alongside the loc to tell the two apart, so each error lands on the YAML node (and,
for an unknown field, on its key) that the author wrote.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

from ..diagnostics import Diagnostic, YamlPath
from ..load import Document
from ..spec.tools import TOOL_KINDS
from ..suggest import did_you_mean, hint, one_of

SECRET_KEYS = frozenset({"api_key", "headers", "env"})


def is_secret_path(path: YamlPath) -> bool:
    """Values under these keys may hold secrets: never echo them."""
    return any(part in SECRET_KEYS for part in path if isinstance(part, str)) or path[:2] == ("history", "url")


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` (keeping unions) and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
            else:
                return tp
        else:
            return tp


def _tag_of(member: Any) -> str | None:
    if get_origin(member) is Annotated:
        for meta in get_args(member)[1:]:
            if isinstance(meta, Tag):
                return meta.tag
    inner = _unwrap(member)
    if isinstance(inner, type) and issubclass(inner, BaseModel):  # Field(discriminator=...) unions
        for field in inner.model_fields.values():
            if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1:
                return str(get_args(field.annotation)[0])
    return None


def _field(model: type[BaseModel], name: str) -> Any:
    for key, field in model.model_fields.items():
        if (field.alias or key) == name:
            return field.annotation
    return None


def walk_loc(root: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[YamlPath, list[Any], bool]:
    """Map a pydantic ``loc`` to the data path, the types along it, and whether it names a key."""
    path: list[str | int] = []
    seen: list[Any] = [root]
    tp: Any = root
    is_key = False
    for part in loc:
        if part == "[key]":  # the dict key itself is wrong (checked before any union below it)
            is_key = True
            continue
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            members = {_tag_of(m): m for m in get_args(tp)}
            tp = members.get(str(part), Any)
            seen[-1] = tp
            continue
        path.append(part)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            tp = _field(tp, str(part))
        elif origin is dict:
            tp = get_args(tp)[1]
        elif origin is list:
            tp = get_args(tp)[0]
        else:
            tp = Any
        seen.append(tp)
    return tuple(path), seen, is_key


def kind_of(value: Any) -> str:
    """How a value's type is named in messages: 'a string', 'a list', ..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null (an empty value)" if value is None else type(value).__name__


def show(value: Any, secret: bool = False) -> str:
    """A value as it appears in a message: short, and never a secret."""
    if secret:
        return "a hidden value"
    if isinstance(value, dict | list):
        return kind_of(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


_KIND_KEYS = {"tool": TOOL_KINDS, "trigger": ("event", "cron")}
"""The first word after 'a' in a kind-union message -> its kind keys."""


def _models_at(types_along: list[Any]) -> type[BaseModel] | None:
    tp = _unwrap(types_along[-1]) if types_along else None
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _message(err: Any, root: type[BaseModel], doc: Document) -> tuple[str, YamlPath, bool, str]:
    """(message, path, point at the key?, code) for one pydantic error."""
    etype: str = err["type"]
    loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    value = err.get("input")
    path, along, is_key = walk_loc(root, loc)
    secret = is_secret_path(path)
    if etype == "extra_forbidden":
        parent = _models_at(along[:-1])
        name = str(path[-1])
        allowed = [f.alias or k for k, f in parent.model_fields.items()] if parent else []
        return (
            f"unknown field '{name}'" + hint(name, allowed, "fields").replace("defined fields", "allowed"),
            path,
            True,
            "unknown-field",
        )
    if etype == "missing":
        return f"missing required field '{path[-1]}'", path, True, "missing-field"
    if etype == "literal_error":
        options = [o.strip().strip("'") for o in ctx.get("expected", "").replace(" or ", ", ").split(",")]
        options = [{"True": "true", "False": "false"}.get(o, o) for o in options]
        near = did_you_mean(str(value), options) if isinstance(value, str) else None
        guess = f"; did you mean '{near}'?" if near else ""
        return f"{show(value, secret)} is not allowed here{guess}; allowed: {one_of(options)}", path, False, "not-allowed"
    if etype == "union_tag_invalid":
        key = str(ctx.get("discriminator", "")).strip("'")
        options = [o.strip().strip("'") for o in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag", ""))
        return (
            f"unknown {key} '{tag}'" + hint(tag, options, f"{key}s").replace(f"defined {key}s", "allowed"),
            (*path, key),
            False,
            "not-allowed",
        )
    if etype == "union_tag_not_found":
        key = str(ctx.get("discriminator", "")).strip("'")
        return f"missing required field '{key}'", (*path, key), True, "missing-field"
    if etype in _EXPECTED:
        return (
            f"expected {_EXPECTED[etype]}, got {kind_of(value)}"
            + (f" ({show(value, secret)})" if not isinstance(value, dict | list) and value is not None else ""),
            path,
            False,
            "wrong-type",
        )
    if etype in ("too_short", "too_long"):
        n = ctx.get("min_length") if etype == "too_short" else ctx.get("max_length")
        if etype == "too_short" and n == 1:
            return "must not be empty", path, False, "empty"
        word = "at least" if etype == "too_short" else "at most"
        return f"needs {word} {n} item{'s' if n != 1 else ''}, has {ctx.get('actual_length')}", path, False, "length"
    bounds = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if etype in bounds:
        words, key = bounds[etype]
        return f"must be {words} {show(ctx.get(key))}, got {show(value, secret)}", path, False, "out-of-range"
    if etype.startswith("kind_") and isinstance(value, dict):
        kinds = _KIND_KEYS.get(str(err["msg"]).split(" ")[1])
        if kinds:
            found = [k for k in kinds if k in value]
            names = " and ".join(f"'{k}'" for k in found)
            what = f"it has {names}" if found else f"it has none (its keys: {', '.join(map(str, value)) or 'none'})"
            return f"{err['msg']}; {what}", path, True, "kind"
    # Custom errors (bad names, durations, kind unions, rules) already say what is allowed.
    return str(err["msg"]).removeprefix("Value error, "), path, is_key, etype.replace("_", "-")


def spec_diagnostics(exc: ValidationError, root: type[BaseModel], doc: Document) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for err in exc.errors(include_url=False):
        message, path, at_key, code = _message(err, root, doc)
        if code == "missing-field":
            # Point at the mapping that lacks the field: its key if it has one.
            pos = doc.pos(path[:-1], key=True) if path[:-1] else doc.pos(())
        else:
            pos = doc.pos(path, key=at_key)
        out.append(Diagnostic(pos=pos, message=message, path=path, phase="spec", code=code, secret=is_secret_path(path)))
    return out
