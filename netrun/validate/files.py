"""Which files validation reads, and what came of each: discovery, results, network names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..diagnostics import Diagnostic, YamlPath
from ..errors import UsageError
from ..includes import is_fragment
from ..spec import NetworkSpec

YAML_SUFFIXES = (".yaml", ".yml")
# Beside networks but not networks: test cases (`netrun test`) and model replies (`--replay`).
SKIPPED_SUFFIXES = (".test.yaml", ".test.yml", ".replies.yaml", ".replies.yml")


@dataclass
class FileResult:
    """The outcome for one file."""

    file: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    spec: NetworkSpec | None = None
    kind: str = "network"
    broken: frozenset[YamlPath] = frozenset()
    """Entries dropped for schema errors (not checked, and not reported again)."""
    includes: frozenset[Path] = frozenset()
    """The real paths of the fragments the file includes, directly or not."""

    @property
    def errors(self) -> int:
        return sum(d.severity == "error" for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(d.severity == "warning" for d in self.diagnostics)


@dataclass
class Report:
    """The outcome of validating a set of files."""

    files: list[FileResult]
    sources: dict[str, list[str]] = field(default_factory=dict)
    """Source lines of the files with problems, literal secrets masked, for snippets."""

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in f.diagnostics]

    @property
    def errors(self) -> int:
        return sum(f.errors for f in self.files)

    @property
    def warnings(self) -> int:
        return sum(f.warnings for f in self.files)


class PathError(UsageError, phase="load"):
    """A path given on the command line that does not exist (a usage error)."""


def files_under(folder: Path, suffixes: tuple[str, ...], skipped: tuple[str, ...] = ()) -> list[Path]:
    """The files below ``folder`` whose names end with one of ``suffixes`` (and none of
    ``skipped``), sorted; hidden folders and ``node_modules`` are not searched."""
    return [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and p.name.endswith(suffixes)
        and not p.name.endswith(skipped)
        and not any(part.startswith(".") or part == "node_modules" for part in p.relative_to(folder).parts)
    ]


def discover(paths: Iterable[Path]) -> list[Path]:
    """The network and fragment files named by ``paths`` (directories are searched)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(files_under(path, YAML_SUFFIXES, SKIPPED_SUFFIXES))
        elif path.exists():
            found.append(path)
        else:
            raise PathError(f"no such file or directory: {path}")
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]  # type: ignore[func-returns-value]


def roots_of(paths: Iterable[Path]) -> tuple[Path, ...]:
    """The folders validation may read: each folder given, and the folder of each file given."""
    return tuple(path.resolve() if path.is_dir() else path.absolute().parent.resolve() for path in paths)


def network_names(folder: Path) -> dict[Path, str]:
    """The network files directly in ``folder`` and the name each declares.

    The top-level ``name:`` line is enough here; loading every file in full would cost a
    pre-commit run over a folder of many networks seconds.
    """
    names: dict[Path, str] = {}
    for path in sorted(folder.glob("*.y*ml")):
        if not path.name.endswith(YAML_SUFFIXES) or path.name.endswith(SKIPPED_SUFFIXES) or is_fragment(path):
            continue
        try:
            if not path.resolve().is_relative_to(folder.resolve()):
                continue  # a symlink out of the folder: not read

            found = _NAME_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop
            continue
        if found:
            names[path.resolve()] = found.group(1)
    return names


def siblings_by_name(files: list[Path]) -> dict[str, list[Path]]:
    """The networks beside the validated files (not validated themselves), by name: what
    their network tools may reach when only some files of a folder are validated (as
    pre-commit does)."""
    validated = {p.resolve() for p in files}
    by_name: dict[str, list[Path]] = {}
    for folder in sorted({p.resolve().parent for p in files}):
        for path, name in network_names(folder).items():
            if path not in validated:
                by_name.setdefault(name, []).append(path)
    return by_name


_NAME_LINE = re.compile(r"""^name:[ \t]*["']?([A-Za-z_][A-Za-z0-9_-]*)["']?[ \t]*(?:#.*)?$""", re.M)
