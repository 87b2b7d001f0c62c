"""The commands on network files: ``validate``, ``schema``, ``graph``, ``new`` and ``test``.

Each imports what it needs when it runs: ``netrun validate`` starts without loading pydantic's
plugins, a model client or the server (tests/test_fast_start.py, test_validate_cli.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .group import _Command, load_network


@click.command(cls=_Command)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["human", "json", "github"]), default="human", show_default=True, help="Output format."
)
@click.option("--strict", is_flag=True, help="Warnings fail the run too.")
@click.option("-q", "--quiet", is_flag=True, help="Human format: no source lines, only the messages.")
@click.option(
    "--include-dependents",
    is_flag=True,
    help="Also validate the networks under --search that include or call PATHS (the pre-commit hook); "
    "PATHS outside --search, or not network files, are skipped.",
)
@click.option(
    "--search",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="With --include-dependents: a folder searched for dependent networks; repeatable (default: the current directory).",
)
def validate(
    paths: tuple[Path, ...], fmt: str, strict: bool, quiet: bool, include_dependents: bool, search: tuple[Path, ...]
) -> int:
    """Check network files: schema, references, templates and expressions.

    PATHS are files or directories (default: networks/). Every problem in every file is
    reported; the exit code is 1 if there is any error (or any warning with --strict).
    """
    from .. import report
    from ..validate import validate_paths

    targets = list(paths) or [Path("networks")]
    roots = None
    if include_dependents:  # the staged files and what they can break, nothing else
        from ..dependents import with_dependents

        folders = list(search) or [Path(".")]
        targets = with_dependents(paths, folders)
        if not targets:
            return 0  # no network file among the changed ones
        roots = tuple(folder.resolve() for folder in folders)
    result = validate_paths(targets, roots=roots)
    if not result.files:
        raise click.UsageError(f"no network files (*.yaml, *.yml) under {', '.join(map(str, targets))}")
    if fmt == "json":
        click.echo(report.as_json(result))
    elif fmt == "github":
        click.echo(report.github(result))
    else:
        colour = sys.stdout.isatty()
        click.echo(report.human(result, click.style if colour else report.plain, quiet), color=colour)
    failed = result.errors > 0 or (strict and result.warnings > 0)
    return 1 if failed else 0


@click.command(cls=_Command)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="The directory to write the schemas to.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files differ from the models.")
def schema(output: Path, check: bool) -> int:
    """Write the JSON Schemas of network and fragment files (for editors and CI)."""
    from ..schema import render_schemas

    stale = []
    for name, text in render_schemas().items():
        path = output / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(str(path))
        if not check:
            output.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            click.echo(f"wrote {path}")
    if check and stale:
        click.echo(f"out of date: {', '.join(stale)} (run 'netrun schema')", err=True)
        return 1
    if not stale:
        click.echo("schemas are up to date")
    return 0


@click.command(cls=_Command)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Mermaid or Graphviz text.",
)
def graph(file: Path, fmt: str) -> None:
    """Print a network's topology: agents, the router's rules and LLM routes, tools, MCP
    servers, waits and approvals (paste Mermaid into Markdown; render dot with Graphviz)."""
    from .. import graph as graphs

    spec = load_network(file)
    click.echo(graphs.mermaid(spec) if fmt == "mermaid" else graphs.dot(spec))


@click.command(cls=_Command)
@click.argument("name")
@click.option(
    "-d",
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write the files (default: networks/ if it exists, else here).",
)
def new(name: str, folder: Path | None) -> None:
    """Scaffold a network NAME.yaml and its test file NAME.test.yaml, which validate and
    pass as created: a starting point to edit."""
    from ..scaffold import scaffold

    try:
        written = scaffold(name, folder)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc.filename} exists; pick another name or remove it") from None
    for path in written:
        click.echo(f"wrote {path}")
    network = written[0]
    click.echo(f"next: netrun validate {network} && netrun test {network}")


@click.command("test", cls=_Command)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["human", "junit", "github"]), default="human", show_default=True, help="Output format."
)
@click.option("-k", "select", metavar="TEXT", help="Only the cases whose name contains TEXT.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to this file (e.g. JUnit XML for CI).",
)
def test_command(paths: tuple[Path, ...], fmt: str, select: str | None, output: Path | None) -> int:
    """Run the test cases of networks (*.test.yaml): offline, deterministic, no API key.

    PATHS are test files, network files (their test file beside them) or directories
    (default: networks/). Exit code 1 if any case fails or a test file has errors.
    """
    import asyncio
    import time

    from .. import report
    from ..extras import require
    from ..testing import report as test_report
    from ..testing.cases import discover_tests, load_tests

    require("run", "netrun test")  # the cases run on the local engine
    targets = list(paths) or [Path("networks")]
    found = discover_tests(targets)
    if not found:
        raise click.UsageError(f"no test files (*.test.yaml) under {', '.join(map(str, targets))}")
    files, problems = load_tests(found)
    colour = sys.stdout.isatty() and output is None
    if problems.errors:
        click.echo(
            report.github(problems) if fmt == "github" else report.human(problems, click.style if colour else report.plain),
            err=fmt != "github",
        )
    from ..testing.run import run_cases
    from .gc_tuning import tune_gc

    tune_gc()
    started = time.perf_counter()
    results = asyncio.run(run_cases(files, dict(os.environ), select))
    seconds = time.perf_counter() - started
    if select is not None and not results and not problems.errors:
        raise click.UsageError(f"no test case name contains {select!r}")
    broken = [
        (f.file, "\n".join(f"{d.pos.file}:{d.pos.line}:{d.pos.col}: {d.message}" for d in f.diagnostics if d.severity == "error"))
        for f in problems.files
        if f.errors and f.kind == "test"
    ]
    if fmt == "junit":
        text = test_report.junit(results, seconds, broken)
    elif fmt == "github":
        text = test_report.github(results, seconds)
    else:
        text = test_report.human(results, seconds, click.style if colour else report.plain, broken)
    if output is not None:
        try:
            output.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write the report to {output}: {exc.strerror}") from None
        failed = sum(not r.passed for r in results)
        click.echo(
            f"{failed} failed, {len(results) - failed} passed"
            + (f", {len(broken)} test file(s) with errors" if broken else "")
            + f"; report written to {output}"
        )
    else:
        click.echo(text, color=colour)
    return 1 if problems.errors or any(not r.passed for r in results) else 0


__all__ = ["graph", "new", "schema", "test_command", "validate"]
