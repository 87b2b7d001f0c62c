"""Schema validation that survives errors: drop what is broken, validate the rest.

The check phase then still runs on everything that is well formed, so one bad field
does not hide every cross-reference problem of the file.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ValidationError

from ..check.spec_errors import spec_diagnostics
from ..diagnostics import Diagnostic, YamlPath
from ..load import Document


def validate_model(model: type[BaseModel], doc: Document) -> tuple[Any, list[Diagnostic], frozenset[YamlPath]]:
    """Validate against ``model``; on errors, drop what is broken and validate the rest, so
    that the check phase still runs on everything that is well formed. Returns the spec
    (or None), the diagnostics and the paths that were dropped."""
    try:
        return model.model_validate(doc.data), [], frozenset()
    except ValidationError as exc:
        diags = spec_diagnostics(exc, model, doc)
    paths = [d.path for d in diags]
    for coarse in (False, True):  # first drop only the bad fields, then whole entries
        pruned, dropped = _prune(doc.data, paths, coarse)
        if pruned is None:
            break
        try:
            return model.model_validate(pruned), diags, dropped
        except ValidationError:
            continue
    return None, diags, frozenset(paths)


_SECTIONS = ("state", "prompts", "agents", "tools", "mcp_servers")


def _cut(path: YamlPath, missing: bool, coarse: bool) -> YamlPath:
    """What to drop for an error at ``path``: never a list item (later indexes would shift
    away from their positions), at most an entry of a section when ``coarse``."""
    if missing:
        path = path[:-1]
    for i, part in enumerate(path):
        if isinstance(part, int):
            path = path[:i]
            break
    if coarse:
        path = path[:2] if path and path[0] in _SECTIONS else path[:1]
    return path


def _prune(data: dict[str, Any], paths: list[YamlPath], coarse: bool) -> tuple[dict[str, Any] | None, frozenset[YamlPath]]:
    """A copy of ``data`` without the parts the errors are in (None if the rest is unusable)."""
    out = copy.deepcopy(data)
    dropped: set[YamlPath] = set()
    for path in paths:
        cut = _cut(path, not _exists(data, path), coarse)
        if cut == ("name",):
            out["name"] = "_"  # a placeholder: the rest of the network can still be checked
        elif not cut or cut == ("agents",):
            return None, frozenset()
        else:
            parent = get(out, cut[:-1])
            if isinstance(parent, dict):
                parent.pop(cut[-1], None)
        dropped.add(cut)
    return out, frozenset(dropped)


def get(data: Any, path: YamlPath) -> Any:
    """The value at ``path`` in ``data``, or None where the path leaves it."""
    for part in path:
        if isinstance(data, list):
            if not isinstance(part, int) or part >= len(data):
                return None
            data = data[part]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return data


def _exists(data: Any, path: YamlPath) -> bool:
    """Whether ``path`` is in ``data`` (a missing field's error names a path that is not)."""
    if not path:
        return False
    parent = get(data, path[:-1])
    return (isinstance(parent, dict) and path[-1] in parent) or (isinstance(parent, list) and isinstance(path[-1], int))
