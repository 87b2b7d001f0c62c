"""The ``netrun`` click group, and the one place where errors become exit codes:
0 success, 1 a problem in the user's files (or a run that failed), 2 a usage error.

Commands return their exit status and let netrun's errors through; :class:`_Command`, the
class of every command (netrun/cli/*.py), turns both into click's exit (:func:`exit_code`).
A command raises click's own exceptions only for what is about its command line (an option
that is no JSON, two options that exclude each other).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import NetrunError, UsageError
from ..extras import missing_extra


def exit_code(error: NetrunError) -> int:
    """2 for a command called wrongly (:class:`~netrun.errors.UsageError`), else 1: the
    user's files, their environment or a run is at fault, not the command line."""
    return 2 if isinstance(error, UsageError) else 1


def _click_error(error: NetrunError, ctx: click.Context) -> click.ClickException:
    """The click exception that shows ``error`` and exits with :func:`exit_code`. Notes
    added on the way up (``exc.add_note``) say how to go on, one per line."""
    message = "\n".join([str(error), *getattr(error, "__notes__", ())])
    if exit_code(error) == 2:
        return click.UsageError(message, ctx)  # with the command's usage line, as click's own
    return click.ClickException(message)


class _Reported(click.ClickException):
    """An error whose message is a whole report (validation problems, why the server cannot
    start): printed as it is, without click's ``Error:`` prefix; exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(self.message, err=True)


class _Command(click.Command):
    """Every netrun command: a returned int is the exit status; a NetrunError is shown
    and exits by :func:`exit_code` (no traceback for an expected mistake)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            status = super().invoke(ctx)
        except NetrunError as exc:
            raise _click_error(exc, ctx) from None
        except ModuleNotFoundError as exc:  # an optional library, imported where first used
            missing = missing_extra(exc, f"netrun {ctx.info_name}")
            if missing is None:
                raise
            raise _click_error(missing, ctx) from None
        if isinstance(status, int):
            ctx.exit(status)
        return status


class _Group(click.Group):
    command_class = _Command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="netrun")
def main() -> None:
    """netrun runs AI agent networks declared in YAML."""
    from .._fast_start import fast_start

    fast_start()  # before any command loads pydantic or httpx: what they import eagerly and netrun never uses


def load_network(file: Path) -> Any:
    """Validate the file as `netrun validate` does; its messages and exit code on errors."""
    from .. import report
    from ..validate import validate_paths

    if not file.exists():
        raise click.UsageError(f"no such file: {file}")
    result = validate_paths([file])
    if result.errors:
        raise _Reported(report.human(result, quiet=False))
    spec = result.files[0].spec
    if spec is None:
        raise click.ClickException(f"{file} is not a network file")
    return spec


__all__ = ["exit_code", "load_network", "main"]
