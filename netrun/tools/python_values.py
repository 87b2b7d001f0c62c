"""What a ``python`` tool's function may return: JSON, and nothing that only looks like it.

The return value is the step's output: it is journaled (or sent to Inngest) and shown to the
model as JSON. ``json.dumps`` would turn a tuple into a list and a non-string key into a
string, and refuse a ``datetime``; this module names what is not JSON and where, so the model
(and the function's author) reads ``result['when'] is a datetime``, never a crash.
"""

from __future__ import annotations

import math
from typing import Any

from ..runtime.jsonsafe import MAX_DEPTH, json_problem


def json_type_problem(value: Any) -> str | None:
    """What in ``value`` is not JSON (``result['when'] is a datetime``), or None.

    Walks without recursion: a deeply nested return value is reported, not a RecursionError."""
    stack: list[tuple[Any, str, int]] = [(value, "result", 1)]
    while stack:
        item, where, depth = stack.pop()
        if item is None or isinstance(item, bool | int | str):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return f"{where} is {item}, not a JSON number"
            continue
        if depth > MAX_DEPTH:
            return f"{where} is nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"{where} has a key of type {type(key).__name__} (JSON keys are strings)"
                stack.append((child, f"{where}[{key!r}]", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        else:
            kind = type(item)
            named = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
            return f"{where} is a {named}"
    problem = json_problem(value, "result")
    return f"{problem[0]}: {problem[1]}" if problem is not None else None


__all__ = ["json_type_problem"]
