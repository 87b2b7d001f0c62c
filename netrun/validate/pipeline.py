"""Validate network files: load -> spec -> check for every file, then across the files.

One file's problems never stop the others: each file gets its results, and a bug in
netrun is one located line on the file that found it, not a traceback.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel

from ..check.cycles import cycle_diagnostics, network_targets
from ..check.network import NetworkChecker
from ..check.spec_errors import kind_of, show
from ..diagnostics import Diagnostic, Pos
from ..includes import DocumentCache, display, is_fragment, resolve_includes
from ..load import Document, LoadError
from ..spec import FragmentSpec, NetworkSpec
from .files import FileResult, Report, discover, roots_of, siblings_by_name
from .partial import validate_model
from .sources import quote_sources


def _load(path: Path, cache: DocumentCache, result: FileResult) -> Document | None:
    try:
        doc = cache.load(path)
    except LoadError as exc:
        result.diagnostics.extend(exc.diagnostics)
        return None
    kind = "fragment" if is_fragment(path) else "network"
    if doc.data is None and any(line.strip() and not line.lstrip().startswith("#") for line in doc.lines.get(doc.file, [])):
        result.diagnostics.append(
            Diagnostic(
                Pos(doc.file, 1, 1),
                "the document is null: a network is a mapping with at least 'name' and 'agents'",
                phase="load",
                code="empty",
            )
        )
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


def validate_paths(paths: Iterable[Path], roots: tuple[Path, ...] | None = None) -> Report:
    """Validate every network and fragment file under ``paths``; ``roots``: the folders files
    may be read from (default: the folders of ``paths``), as for includes that leave the
    folder of the file validated (``netrun validate --include-dependents``)."""
    # Validation allocates many small objects and no reference cycles: the cyclic garbage
    # collector would only rescan them (about 20% of the time on a thousand files).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _validate_paths(paths, roots)
    finally:
        if was_enabled:
            gc.enable()


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


def _validate_paths(paths: Iterable[Path], roots: tuple[Path, ...] | None = None) -> Report:
    paths = list(paths)
    files = discover(paths)
    cache = DocumentCache(roots_of(paths) if roots is None else roots)
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
            beside_files.append(siblings_by_name(files))
        return beside_files[0]

    def known_networks() -> frozenset[str]:
        return names | frozenset(siblings())

    for result in results:
        if result.spec is not None:
            try:
                result.diagnostics.extend(
                    NetworkChecker(result.spec, docs[id(result)], names, result.broken, known_networks).run()
                )
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
    quote_sources(report, list(docs.values()), cache)
    return report


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


def _beside(
    specs: list[NetworkSpec], siblings: Callable[[], dict[str, list[Path]]], cache: DocumentCache
) -> list[tuple[NetworkSpec, Document]]:
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
