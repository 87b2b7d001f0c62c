"""Finding and checking test files (``*.test.yaml``) and the networks they test.

A test file is checked as a network file is: its schema (every error located), then its
references against the network (agents in ``replies`` and ``route``, stubbed tools,
replies files, initial ``state`` against the declared state), and the network itself must
validate. Problems come back as validate's
:class:`~netrun.validate.Report`, so they print the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import Diagnostic
from ..includes import DocumentCache, display
from ..load import Document, LoadError
from ..runtime.state import state_problems
from ..spec import NetworkSpec
from ..spec.testcase import TestFileSpec
from ..validate import FileResult, PathError, Report, validate_model, validate_paths
from ..validate.files import files_under

TEST_SUFFIXES = (".test.yaml", ".test.yml")


@dataclass
class TestFile:
    __test__ = False  # not a pytest test class

    path: Path
    spec: TestFileSpec
    doc: Document
    network: NetworkSpec
    network_path: Path


def discover_tests(paths: Iterable[Path]) -> list[Path]:
    """Test files under ``paths``; a network file stands for its test file beside it."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(files_under(path, TEST_SUFFIXES))
        elif path.name.endswith(TEST_SUFFIXES) and path.exists():
            found.append(path)
        elif path.exists():
            stem, _, ext = path.name.rpartition(".")
            sibling = path.with_name(f"{stem}.test.{ext}")
            if not sibling.exists():
                raise PathError(
                    f"{path} has no test file beside it (expected {sibling.name}); create one with `netrun new` or by hand"
                )
            found.append(sibling)
        else:
            raise PathError(f"no such file or directory: {path}")
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]  # type: ignore[func-returns-value]


def network_for(path: Path, spec: TestFileSpec) -> Path:
    if spec.network:
        return path.parent / spec.network
    suffix = next(s for s in TEST_SUFFIXES if path.name.endswith(s))
    return path.with_name(path.name[: -len(suffix)] + suffix.replace(".test", ""))


def load_tests(paths: list[Path]) -> tuple[list[TestFile], Report]:
    """The valid test files, and the problems of the others (and of their networks)."""
    cache = DocumentCache()
    results: list[FileResult] = []
    loaded: list[TestFile] = []
    sources: dict[str, list[str]] = {}
    for path in paths:
        result = FileResult(display(path), kind="test")
        results.append(result)
        try:
            doc = cache.load(path)
        except LoadError as exc:
            result.diagnostics.extend(exc.diagnostics)
            continue
        sources.update(doc.lines)
        if not isinstance(doc.data, dict):
            result.diagnostics.append(
                Diagnostic(doc.pos(()), "a test file is a mapping with 'cases' (and optionally 'network')", code="not-a-mapping")
            )
            continue
        spec, diags, _ = validate_model(TestFileSpec, doc)
        result.diagnostics.extend(diags)
        if not isinstance(spec, TestFileSpec) or diags:
            continue
        network_path = network_for(path, spec)
        if not network_path.is_file():
            result.diagnostics.append(
                Diagnostic(
                    doc.pos(("network",)),
                    f"no network file {display(network_path)} to test",
                    path=("network",) if spec.network else (),
                    code="missing-network",
                )
            )
            continue
        network_report = validate_paths([network_path])
        network_spec = network_report.files[0].spec if network_report.files else None
        if network_report.errors or network_spec is None:
            results.extend(f for f in network_report.files if f.diagnostics)
            sources.update(network_report.sources)
            result.diagnostics.append(
                Diagnostic(
                    doc.pos(("network",)),
                    f"the network {display(network_path)} has errors (above): its tests cannot run",
                    code="invalid-network",
                )
            )
            continue
        result.diagnostics.extend(_references(spec, doc, network_spec, path))
        if not result.errors:
            loaded.append(TestFile(path, spec, doc, network_spec, network_path))
    for r in results:
        r.diagnostics.sort(key=Diagnostic.sort_key)
    return loaded, Report(results, sources)


def _references(spec: TestFileSpec, doc: Document, network: NetworkSpec, path: Path) -> list[Diagnostic]:
    """What a case names must exist in the network: agents, tools, replies files."""
    agents = set(network.agents)
    tools = set(network.tools)
    servers = set(network.mcp_servers)
    out: list[Diagnostic] = []

    def error(where: tuple[str | int, ...], message: str, key: bool = False) -> None:
        out.append(Diagnostic(doc.pos(where, key=key), message, path=where, code="unknown-reference"))

    for name, case in spec.cases.items():
        at: tuple[str | int, ...] = ("cases", name)
        if case.replies is not None and case.replay is not None:
            error((*at, "replay"), "give the model's replies inline ('replies') or as a file ('replay'), not both")
        for caller in case.replies or {}:
            if "/" in caller:  # PREFIX/agent: an agent of a network used as a tool (as `netrun run --record` writes them)
                continue
            if caller not in agents and caller != "router":
                error(
                    (*at, "replies", caller),
                    f"no agent '{caller}' in the network; callers are its agents ({', '.join(sorted(agents))}) and 'router'",
                    key=True,
                )
        if case.replay is not None and not (path.parent / case.replay).exists():
            error((*at, "replay"), f"no replies file {case.replay} beside the test file")
        for tool in case.tools:
            server, dot, name_ = tool.replace("__", ".", 1).partition(".")
            if tool in tools:
                continue
            if not (dot and server in servers):
                error(
                    (*at, "tools", tool),
                    f"no tool '{tool}' in the network (declared: {', '.join(sorted(tools)) or 'none'}; MCP tools are written server.tool)",
                    key=True,
                )
                continue
            listed = {t.split(".", 1)[1] for a in network.agents.values() for t in a.tools if t.startswith(server + ".")}
            whole = any(server in a.mcp_servers for a in network.agents.values())
            if not whole and name_ not in listed:
                error(
                    (*at, "tools", tool),
                    f"no agent uses the tool '{name_}' of the MCP server {server} (the agents use: {', '.join(sorted(listed)) or 'none'})",
                    key=True,
                )
        # A case's initial state is checked as `netrun run --state` and the REST API check it.
        for field, where, why in state_problems(network.state, case.state):
            declared = field in network.state
            out.append(
                Diagnostic(
                    doc.pos((*at, "state", field), key=not declared),
                    why if where == field else f"{where}: {why}",
                    path=(*at, "state", field),
                    code="invalid-state",
                )
            )
        output = case.expect.output
        if output is not None and not isinstance(output, str) and output.regex is not None:
            try:
                re.compile(output.regex)
            except re.error as exc:
                error((*at, "expect", "output", "regex"), f"not a valid regular expression: {exc}")
        for i, agent in enumerate(case.expect.route or []):
            if agent not in agents:
                error((*at, "expect", "route", i), f"no agent '{agent}' in the network ({', '.join(sorted(agents))})")
    return out
