"""JSON Schemas of network and fragment files, generated from the spec models.

Field descriptions come from the docstring under each field, read from the source here
rather than at import time (see :mod:`netrun.spec.base`).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import textwrap
from typing import Any

from pydantic import BaseModel

from .spec import FragmentSpec, NetworkSpec, Spec
from .spec.base import NAME_RE
from .spec.testcase import TestFileSpec

SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "network.schema.json": NetworkSpec,
    "fragment.schema.json": FragmentSpec,
    "test.schema.json": TestFileSpec,
}


def field_docs(cls: type[BaseModel]) -> dict[str, str]:
    """Attribute docstrings of ``cls`` (the string literal right under each field)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    stack: list[type[BaseModel]] = [Spec]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return seen


def _describe(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # inherited fields keep their base class's docs
        if isinstance(klass, type) and issubclass(klass, BaseModel):
            docs.update(field_docs(klass))
    props = schema.get("properties", {})
    for name, field in cls.model_fields.items():
        doc = docs.get(name)
        prop = props.get(field.alias or name)
        if doc and isinstance(prop, dict):
            prop["description"] = doc


def build_schema(root: type[BaseModel]) -> dict[str, Any]:
    schema = root.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    for cls in _models(root):
        if cls.__name__ in defs:
            _describe(defs[cls.__name__], cls)
    _describe(schema, root)
    _closed_name_maps(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://netrun.dev/schemas/{root.__name__}.json",
        **schema,
    }


def _closed_name_maps(node: Any) -> None:
    """Make every map keyed by a :data:`~netrun.spec.base.Name` check its keys and values.

    Pydantic emits ``dict[Name, X]`` as ``patternProperties: {NAME_RE: X}``, under which a key
    that misses the pattern (``helper.v2``) matches nothing and its value is never checked.
    ``propertyNames`` rejects such a key, and ``additionalProperties`` checks every value."""
    if isinstance(node, list):
        for item in node:
            _closed_name_maps(item)
        return
    if not isinstance(node, dict):
        return
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict) and list(patterns) == [NAME_RE] and "additionalProperties" not in node:
        node["propertyNames"] = {"pattern": NAME_RE}
        node["additionalProperties"] = node.pop("patternProperties")[NAME_RE]
    for value in node.values():
        _closed_name_maps(value)


def render_schemas() -> dict[str, str]:
    """File name -> JSON text of every schema netrun publishes."""
    return {name: json.dumps(build_schema(model), indent=2, sort_keys=False) + "\n" for name, model in SCHEMA_FILES.items()}
