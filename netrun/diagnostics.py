"""Diagnostics: what went wrong, where, and in which phase.

Every problem netrun finds in a network file becomes a :class:`Diagnostic`. It carries
the file, the 1-based line and column, the YAML path (``agents.triage.tools[1]``) and the
phase that found it, so that every output format (human, JSON, GitHub annotations) can
point at the exact spot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]
Phase = Literal["load", "spec", "check"]

# A YAML path: mapping keys (str) and sequence indexes (int) from the document root.
YamlPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")


def format_path(path: YamlPath) -> str:
    """Render a YAML path as ``agents.triage.tools[1]`` (quoting keys that need it)."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{part!r}]")
    return "".join(out)


@dataclass(frozen=True, order=True)
class Pos:
    """A position in a source file; line and col are 1-based."""

    file: str
    line: int
    col: int


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a network file."""

    pos: Pos
    message: str
    path: YamlPath = ()
    severity: Severity = "error"
    phase: Phase = "check"
    code: str = "invalid"
    """A stable, machine-readable kind, e.g. ``unknown-field`` or ``undefined-variable``."""
    secret: bool = field(default=False, compare=False)
    """The value at this position may be a secret: outputs must not print the source line."""

    @property
    def where(self) -> str:
        return format_path(self.path)

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.pos.file, self.pos.line, self.pos.col, self.message)
