"""Validate network files: load -> spec -> check, for every file, collecting every problem.

This module is the whole of ``netrun validate`` below the CLI. It imports nothing heavy
(no litellm, mcp, fastapi or inngest), so that validation starts fast in CI and in
pre-commit.
"""

from __future__ import annotations

import copy
import gc
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import envrefs
from .check.cycles import cycle_diagnostics, network_targets
from .check.network import NetworkChecker
from .check.spec_errors import is_secret_path, kind_of, show, spec_diagnostics
from .diagnostics import Diagnostic, Pos, YamlPath
from .errors import UsageError
from .includes import DocumentCache, display, is_fragment, resolve_includes
from .load import Document, LoadError
from .spec import FragmentSpec, NetworkSpec

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


def discover(paths: Iterable[Path]) -> list[Path]:
    """The network and fragment files named by ``paths`` (directories are searched)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and p.name.endswith(YAML_SUFFIXES)
                and not p.name.endswith(SKIPPED_SUFFIXES)
                and not any(part.startswith(".") or part == "node_modules" for part in p.relative_to(path).parts)
            )
        elif path.exists():
            found.append(path)
        else:
            raise PathError(f"no such file or directory: {path}")
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]  # type: ignore[func-returns-value]


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
            parent = _get(out, cut[:-1])
            if isinstance(parent, dict):
                parent.pop(cut[-1], None)
        dropped.add(cut)
    return out, frozenset(dropped)


def _get(data: Any, path: YamlPath) -> Any:
    for part in path:
        if (isinstance(data, dict) and part in data) or (isinstance(data, list) and isinstance(part, int) and part < len(data)):
            data = data[part]
        else:
            return None
    return data


def _exists(data: Any, path: YamlPath) -> bool:
    """Whether ``path`` is in ``data`` (a missing field's error names a path that is not)."""
    if not path:
        return False
    parent = _get(data, path[:-1])
    return (isinstance(parent, dict) and path[-1] in parent) or (isinstance(parent, list) and isinstance(path[-1], int))


def _load(path: Path, cache: DocumentCache, result: FileResult) -> Document | None:
    try:
        doc = cache.load(path)
    except LoadError as exc:
        result.diagnostics.extend(exc.diagnostics)
        return None
    kind = "fragment" if is_fragment(path) else "network"
    if doc.data is None and any(line.strip() and not line.lstrip().startswith("#") for line in doc.lines.get(doc.file, [])):
        result.diagnostics.append(Diagnostic(Pos(doc.file, 1, 1), "the document is null: a network is a mapping with at least 'name' and 'agents'", phase="load", code="empty"))
        return None
    if doc.data is None:
        what = (
            "a fragment needs at least one of agents, tools, mcp_servers, prompts, state"
            if kind == "fragment"
            else "a network needs at least 'name' and 'agents'"
        )
        result.diagnostics.append(Diagnostic(Pos(doc.file, 1, 1), f"empty file: {what}", phase="load", code="empty"))
        return None
    if not isinstance(doc.data, dict):
        got = "a list" if isinstance(doc.data, list) else f"{kind_of(doc.data)} ({show(doc.data)})"
        result.diagnostics.append(
            Diagnostic(
                doc.pos(()),
                f"the top level must be a mapping of fields (name, agents, ...), got {got}",
                phase="load",
                code="not-a-mapping",
            )
        )
        return None
    doc = Document(doc.file, dict(doc.data), dict(doc.nodes), dict(doc.lines))
    included: set[Path] = set()
    result.diagnostics.extend(resolve_includes(doc, path, cache, included=included))
    result.includes = frozenset(included)
    return doc


def validate_paths(paths: Iterable[Path]) -> Report:
    """Validate every network and fragment file under ``paths``."""
    # Validation allocates many small objects and no reference cycles: the cyclic garbage
    # collector would only rescan them (about 20% of the time on a thousand files).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _validate_paths(paths)
    finally:
        if was_enabled:
            gc.enable()


def roots_of(paths: Iterable[Path]) -> tuple[Path, ...]:
    """The folders validation may read: each folder given, and the folder of each file given."""
    return tuple(path.resolve() if path.is_dir() else path.absolute().parent.resolve() for path in paths)


def _internal(result: FileResult, exc: Exception) -> None:
    """A bug (or a limit this file found) must not stop the other files; one located line, no traceback."""
    result.diagnostics.append(
        Diagnostic(
            Pos(result.file, 1, 1),
            f"netrun could not validate this file ({type(exc).__name__}); this is a bug in netrun, please report it",
            phase="load",
            code="internal",
        )
    )
    result.spec = None


def _validate_paths(paths: Iterable[Path]) -> Report:
    paths = list(paths)
    files = discover(paths)
    cache = DocumentCache(roots_of(paths))
    results: list[FileResult] = []
    docs: dict[int, Document] = {}
    for path in files:
        result = FileResult(display(path), kind="fragment" if is_fragment(path) else "network")
        results.append(result)
        try:
            doc = _load(path, cache, result)
            if doc is None:
                continue
            model: type[BaseModel] = FragmentSpec if result.kind == "fragment" else NetworkSpec
            spec, diags, broken = validate_model(model, doc)
        except Exception as exc:  # reported on the file, the others go on
            _internal(result, exc)
            continue
        result.diagnostics.extend(diags)
        if isinstance(spec, NetworkSpec):
            result.spec = spec
            docs[id(result)] = doc
            result.broken = broken
    names = frozenset(_unique_names(results, docs))
    beside_files: list[dict[str, list[Path]]] = []

    def siblings() -> dict[str, list[Path]]:
        # Read the networks beside the validated files once, and only when something needs them.
        if not beside_files:
            beside_files.append(_siblings(files))
        return beside_files[0]

    def known_networks() -> frozenset[str]:
        return names | frozenset(siblings())

    for result in results:
        if result.spec is not None:
            try:
                result.diagnostics.extend(NetworkChecker(result.spec, docs[id(result)], names, result.broken, known_networks).run())
            except Exception as exc:  # reported on the file, the others go on
                _internal(result, exc)
                docs.pop(id(result))
    # Across the files validated together: networks whose tools would start each other's runs.
    validated: list[tuple[NetworkSpec, Document] | None] = [
        (r.spec, docs[id(r)]) if r.spec is not None and ("name",) not in r.broken else None for r in results
    ]
    # A network tool runs the network of that name beside the calling file: when some files
    # of a folder are validated alone (pre-commit, `netrun validate FILE`, `netrun run`), the
    # cycles their tools close through the other files are theirs to report too.
    beside = _beside([item[0] for item in validated if item is not None], siblings, cache)
    try:
        cycles = cycle_diagnostics([*validated, *beside], reported=len(validated))
    except Exception as exc:  # on the first network, the per-file results stand
        cycles = {}
        first = next((r for r in results if r.spec is not None), None)
        if first is not None:
            _internal(first, exc)
    for i, found in cycles.items():
        results[i].diagnostics.extend(found)
    for result in results:
        unique = {(d.pos, d.message, d.severity): d for d in result.diagnostics}
        result.diagnostics = sorted(unique.values(), key=Diagnostic.sort_key)
    report = Report(results)
    wanted = {d.pos.file for d in report.diagnostics}
    for doc in docs.values():
        if wanted.intersection(doc.lines):
            for file, lines in masked_lines(doc).items():
                if file in wanted:
                    report.sources.setdefault(file, lines)
    for file in wanted - set(report.sources):
        if not cache.inside(Path(file)):
            continue  # never a line of a file outside the validated folders
        try:
            text = Path(file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        report.sources[file] = [_mask_line(line) for line in text.splitlines()]
    return report


_SECRET_LINE = re.compile(
    r"((?:api[-_ ]?key|access[-_ ]?key|password|passwd|secret|token|authorization|bearer)['\"]?\s*:\s*)(?![\s'\"]*\$\{)\S.*", re.I
)


_KEY_SHAPES = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{12,}|\bgh[pousr]_[A-Za-z0-9]{20,}|\bxox[abprs]-[A-Za-z0-9-]{10,}|\bAKIA[0-9A-Z]{16}")


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@", re.I)


def _mask_line(line: str) -> str:
    """Mask the values of secret-looking keys, passwords in URLs, and strings shaped like
    well-known API keys, whatever key holds them (a misspelt ``api-key:`` is still a secret)."""
    return _URL_PASSWORD.sub(r"\1***@", _KEY_SHAPES.sub("***", _SECRET_LINE.sub(r"\1***", line)))


def masked_lines(doc: Document) -> dict[str, list[str]]:
    """The document's source lines with every literal secret replaced by ``***``: values
    under ``api_key``, ``headers`` and ``env`` that are not ``${ENV}`` references."""
    out = {file: [_mask_line(line) for line in lines] for file, lines in doc.lines.items()}
    for path in doc.nodes:
        if not is_secret_path(path):
            continue
        span = doc.span(path)
        assert span is not None
        value = _get(doc.data, path)
        if not isinstance(value, str) or envrefs.is_reference(value):
            continue
        lines = out.get(span.file)
        if lines is None:
            continue
        for row in range(span.line, span.end_line + 1):
            if 0 < row <= len(lines):
                start = span.col - 1 if row == span.line else len(lines[row - 1]) - len(lines[row - 1].lstrip())
                lines[row - 1] = lines[row - 1][:start] + "***"
    return out


def _unique_names(results: list[FileResult], docs: dict[int, Document]) -> dict[str, Pos]:
    """Network names (and function ids) must be unique across the files validated together."""
    names: dict[str, Pos] = {}
    ids: dict[str, Pos] = {}
    for result in results:
        spec = result.spec
        if spec is None or ("name",) in result.broken:
            continue
        doc = docs[id(result)]
        for table, value, path, what in (
            (names, spec.name, ("name",), "network name"),
            (
                ids,
                spec.function.id if spec.function and spec.function.id else spec.name,
                ("function", "id") if spec.function and spec.function.id else ("name",),
                "function id",
            ),
        ):
            first = table.get(value)
            if first is None:
                table[value] = doc.pos(path)
            elif what == "network name" or path != ("name",):
                result.diagnostics.append(
                    Diagnostic(
                        doc.pos(path),
                        f"{what} '{value}' is already used by {first.file}:{first.line}:{first.col}",
                        path,
                        code="duplicate-name",
                    )
                )
    return names


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


def _beside(specs: list[NetworkSpec], siblings: Callable[[], dict[str, list[Path]]], cache: DocumentCache) -> list[tuple[NetworkSpec, Document]]:
    """The networks beside the validated files that their network tools reach, directly or
    through each other (loaded, not checked: only for the cycles they close). A file with
    errors still counts: `netrun serve` may be serving its last good version."""
    have = {spec.name for spec in specs}
    wanted = [t for spec in specs for t, _ in network_targets(spec) if t not in have]
    if not wanted:
        return []
    by_name = siblings()
    out: list[tuple[NetworkSpec, Document]] = []
    while wanted:
        name = wanted.pop(0)
        if name in have:
            continue
        have.add(name)
        for path in by_name.get(name, []):
            doc = _load(path, cache, FileResult(display(path)))
            spec = validate_model(NetworkSpec, doc)[0] if doc is not None else None
            if isinstance(spec, NetworkSpec) and spec.name == name:
                out.append((spec, doc))  # type: ignore[arg-type]
                wanted.extend(t for t, _ in network_targets(spec) if t not in have)
                break
    return out


def _siblings(files: list[Path]) -> dict[str, list[Path]]:
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
