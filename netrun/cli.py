"""The ``netrun`` command line. The only place where errors become exit codes:
0 success, 1 a problem in the user's files, 2 a usage error."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netrun")
def main() -> None:
    """netrun runs AI agent networks declared in YAML."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["human", "json", "github"]), default="human", show_default=True, help="Output format."
)
@click.option("--strict", is_flag=True, help="Warnings fail the run too.")
@click.option("-q", "--quiet", is_flag=True, help="Human format: no source lines, only the messages.")
def validate(paths: tuple[Path, ...], fmt: str, strict: bool, quiet: bool) -> None:
    """Check network files: schema, references, templates and expressions.

    PATHS are files or directories (default: networks/). Every problem in every file is
    reported; the exit code is 1 if there is any error (or any warning with --strict).
    """
    from ._fast_start import skip_pydantic_plugins

    skip_pydantic_plugins()  # before pydantic loads: no plugin applies, discovery is slow
    from . import report
    from .validate import PathError, validate_paths

    targets = list(paths) or [Path("networks")]
    try:
        result = validate_paths(targets)
    except PathError as exc:
        raise click.UsageError(str(exc)) from None
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
    sys.exit(1 if failed else 0)


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="The directory to write the schemas to.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files differ from the models.")
def schema(output: Path, check: bool) -> None:
    """Write the JSON Schemas of network and fragment files (for editors and CI)."""
    from .schema import render_schemas

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
        sys.exit(1)
    if not stale:
        click.echo("schemas are up to date")


if __name__ == "__main__":  # pragma: no cover
    main()
