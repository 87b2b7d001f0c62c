"""JSON values netrun keeps must read back: what a request or the command line gives is
checked here before anything stores it.

A value reads back when its text is UTF-8 (no lone surrogates such as ``"\\ud800"``, which
Python's JSON parser accepts and nothing can encode), its numbers are finite (``NaN`` and
``1e400`` parse as floats that JSON cannot write) and it nests no deeper than
:data:`MAX_DEPTH` (the encoders that answer ``GET /runs/{id}`` recurse).
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 64
"""How deep a stored JSON value may nest: far more than any state or event needs."""
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def json_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first thing in ``value`` that would not read back, as ``(path.to.it, why)``; or None.

    Walks without recursion (the value may be very deep); names the place, never the value."""
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if not encodable(item):
                return where, "text that is not valid Unicode (a lone surrogate such as \\ud800); send UTF-8 text"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where, f"{item} is not a JSON number; send a finite number"
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return where, TOO_DEEP
            if isinstance(item, dict):
                for key, child in reversed(item.items()):
                    if not encodable(str(key)):
                        return where, "a key that is not valid Unicode (a lone surrogate such as \\ud800); send UTF-8 text"
                    stack.append((child, f"{where}.{key}", depth + 1))
            else:
                stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in reversed(list(enumerate(item))))
    return None


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
