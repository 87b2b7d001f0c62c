"""The ``netrun`` command line. The only place where errors become exit codes:
0 success, 1 a problem in the user's files (or a run that failed), 2 a usage error.

Commands return their exit status and let netrun's errors through; :class:`_Command`, the
class of every command here, turns both into click's exit (:func:`exit_code`). A command
raises click's own exceptions only for what is about its command line (an option that is
no JSON, two options that exclude each other).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import NetrunError, UsageError


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
        if isinstance(status, int):
            ctx.exit(status)
        return status


class _Group(click.Group):
    command_class = _Command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
def validate(paths: tuple[Path, ...], fmt: str, strict: bool, quiet: bool) -> int:
    """Check network files: schema, references, templates and expressions.

    PATHS are files or directories (default: networks/). Every problem in every file is
    reported; the exit code is 1 if there is any error (or any warning with --strict).
    """
    from ._fast_start import skip_pydantic_plugins

    skip_pydantic_plugins()  # before pydantic loads: no plugin applies, discovery is slow
    from . import report
    from .validate import validate_paths

    targets = list(paths) or [Path("networks")]
    result = validate_paths(targets)
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
def schema(output: Path, check: bool) -> int:
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
        return 1
    if not stale:
        click.echo("schemas are up to date")
    return 0


def _journal_path(db: Path | None) -> Path:
    return db or Path(os.environ.get("NETRUN_DATA_DIR", ".netrun")) / "runs.db"


def _journal(db: Path | None) -> Any:
    from .engines.local import Journal

    return Journal(_journal_path(db))


def _state_pairs(pairs: tuple[str, ...], declared: Mapping[str, Any]) -> dict[str, Any]:
    """``--state KEY=VALUE`` pairs as the initial state, checked against the declared state:
    each VALUE is JSON or text, whichever the field's type accepts."""
    from .runtime.state import read_state_text, state_problems

    state: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"'{pair}' is not KEY=VALUE", param_hint="--state")
        state[key] = read_state_text(declared, key, value)
    problems = state_problems(declared, state)
    if len(problems) == 1:
        key, path, why = problems[0]
        raise click.BadParameter(why if path == key else f"{path}: {why}", param_hint=f"--state {key}")
    if problems:
        raise click.UsageError("invalid initial state:\n" + "\n".join(f"  --state {key}: {why if path == key else f'{path}: {why}'}" for key, path, why in problems))
    return state


def _json_option(text: str | None, name: str) -> dict[str, Any]:
    if text is None:
        return {}
    from .runtime.jsonsafe import json_problem

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None
    except RecursionError:
        raise click.BadParameter("nested too deeply", param_hint=name) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=name)
    problem = json_problem(value, name)  # what the journal could not read back
    if problem is not None:
        raise click.BadParameter(f"{problem[0]}: {problem[1]}", param_hint=name)
    return value


@main.command()
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("-i", "--input", "input_", help="The network input (the user's request); with --event, by default the trigger's input template.")
@click.option("-s", "--state", "state", multiple=True, metavar="KEY=VALUE", help="Initial state of a declared field; VALUE is JSON or text, whichever its type accepts. Repeatable.")
@click.option("--event", "event_json", metavar="JSON", help="The triggering event, e.g. '{\"name\": \"app/x\", \"data\": {...}}'.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document with the result, for scripts.")
@click.option("--replay", type=click.Path(path_type=Path, dir_okay=False), help="Answer every model call from this replies file (offline).")
@click.option("--record", type=click.Path(path_type=Path, dir_okay=False), help="Save the model replies of this run to a replies file.")
@click.option("--resume", "resume_id", metavar="RUN_ID", help="Resume a run that was interrupted or is waiting.")
@click.option("--retry", "retry_id", metavar="RUN_ID", help="Run a failed run again once its cause is fixed: completed steps are kept, the failed step runs again.")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False), help="The run journal (default: .netrun/runs.db, or $NETRUN_DATA_DIR/runs.db).")
@click.option("--thread", "thread_id", metavar="ID", help="Continue (or start) the conversation ID: its messages are loaded first, this run's are appended.")
def run(file: Path | None, input_: str | None, state: tuple[str, ...], event_json: str | None, as_json: bool, replay: Path | None, record: Path | None,
        resume_id: str | None, retry_id: str | None, db: Path | None, thread_id: str | None) -> int:
    """Run a network locally, durably: progress streams as it happens.

    A run that is killed resumes with --resume RUN_ID without repeating any completed
    model or tool call; a run waiting for an event resumes when `netrun send` delivers it.
    A failed run runs again with --retry RUN_ID once its cause is fixed: its completed steps
    are not repeated, the step that failed runs again.
    """

    from .console import Progress

    if resume_id is not None and retry_id is not None:
        raise click.UsageError("--resume and --retry exclude each other")
    existing = resume_id or retry_id
    if existing is None and file is None:
        raise click.UsageError("give a network FILE to run, or --resume RUN_ID, or --retry RUN_ID")
    if existing is not None and not _journal_path(db).exists():  # do not create a journal to find nothing in it
        raise click.ClickException(f"no run {existing}: there is no run journal {_journal_path(db)} (--db names another)")
    if replay is not None and record is not None:
        raise click.UsageError("--replay and --record exclude each other")
    progress = None if as_json else Progress()
    started: list[str] = []

    def emit(kind: str, data: dict[str, Any]) -> None:
        if kind == "run.started" and not started:
            started.append(data["run_id"])
        if progress is not None:
            progress(kind, data)

    waits: list[str] = []

    async def finish(engine: Any, outcome: Any) -> Any:
        waits.extend(dict.fromkeys(w[2] for w in engine.journal.waits(run_id=outcome.id)))  # read while the journal is open
        return outcome

    if resume_id is not None:
        async def operation(engine: Any) -> Any:
            found = engine.journal.run(resume_id)
            if found is not None and found.status == "failed":
                raise click.ClickException(f"run {resume_id} failed: {found.error}\nonce its cause is fixed, retry it with: netrun run --retry {resume_id}")
            if found is not None and found.status == "cancelled":
                raise click.ClickException(f"run {resume_id} was cancelled ({found.error}); a cancelled run does not go on")
            if found is not None and found.status == "completed" and not as_json:
                click.echo(f"run {resume_id} completed already" + (f":\n{found.result['output']}" if (found.result or {}).get("output") else ""))
            return await finish(engine, await engine.resume(resume_id))
    elif retry_id is not None:
        async def operation(engine: Any) -> Any:
            return await finish(engine, await engine.retry(retry_id))
    else:
        assert file is not None
        spec = _load_network(file)
        options: dict[str, Any] = {k: str(v.resolve()) for k, v in (("replay", replay), ("record", record)) if v is not None}
        if thread_id is not None:
            options["thread_id"] = thread_id
        event, initial = _json_option(event_json, "--event"), _state_pairs(state, spec.state)
        from .runtime.jsonsafe import json_problem

        if input_ is not None and json_problem(input_, "--input") is not None:
            raise click.BadParameter("text that is not valid Unicode (a lone surrogate or bytes that are not UTF-8)", param_hint="--input")
        text = input_ if input_ is not None else _event_input(spec, event) if event else ""

        async def operation(engine: Any) -> Any:
            return await finish(engine, await engine.start(spec, file.resolve().parent, input=text, state=initial, event=event, options=options))
    try:
        outcome = _with_engine(db, emit, progress is not None, operation, lambda: existing or (started[0] if started else None))
    except KeyboardInterrupt:
        run_id = existing or (started[0] if started else None)
        hint = f"; resume it with: netrun run --resume {run_id}" if run_id else ""
        raise click.ClickException(f"interrupted{hint}") from None
    if as_json:
        click.echo(json.dumps(outcome.summary(), indent=2))
    elif outcome.status == "waiting":
        _how_to_continue(outcome, waits)
    return 1 if outcome.status in ("failed", "cancelled") else 0


def _event_input(spec: Any, event: dict[str, Any]) -> str:
    """The network input the trigger of ``event`` makes from it, as `netrun serve` does."""
    from .engines.triggers import network_input
    from .runtime.render import RenderError

    try:
        return network_input(spec, event)
    except RenderError as exc:
        raise click.BadParameter(f"cannot make the network input from this event with the trigger's input template: {exc}; "
                                 "give the input with -i", param_hint="--event") from None


def _how_to_continue(outcome: Any, waits: list[str]) -> None:
    """Say (on stderr, after the progress) what answers a run left waiting."""
    lines = [f"run {outcome.id} is waiting; it goes on when an event answers it:"]
    for approval in outcome.approvals:
        lines.append(f"  netrun send {approval['event']} --run {outcome.id} --data '{{\"approval_id\": \"{approval['id']}\", \"approved\": true}}'"
                     f"   # {approval['tool']}; or false, with a \"reason\"")
    approval_events = {a["event"] for a in outcome.approvals}
    for event in waits:
        if event not in approval_events:
            lines.append(f"  netrun send {event} --run {outcome.id} --data '{{...}}'")
    lines.append(f"or carry on after a crash with: netrun run --resume {outcome.id}")
    click.echo("\n".join(lines), err=True)


def _with_engine(db: Path | None, emit: Any, stream: bool, operation: Any, stopped_run: Any = lambda: None) -> Any:
    """Run ``operation(engine)`` on the local engine in a fresh event loop: the journal is
    closed and model clients shut down afterwards, and engine errors become CLI errors.
    ``stopped_run()``: the run a full disk stopped, named in how to go on."""
    import asyncio

    from .engines.runner import LocalEngine
    from .finder import find_network
    from .models.litellm_client import close_clients
    from .sqlite_file import StorageFault

    journal = _journal(db)

    async def main() -> Any:
        try:
            return await operation(LocalEngine(journal, dict(os.environ), emit, stream=stream, networks=find_network))
        finally:
            await close_clients()

    try:
        return asyncio.run(main())
    except StorageFault as exc:  # the run stopped at its last recorded step, as at a shutdown
        run_id = stopped_run()
        if run_id:
            exc.add_note(f"once there is space, go on with: netrun run --resume {run_id}")
        raise
    finally:
        journal.close()


def _load_network(file: Path) -> Any:
    """Validate the file as `netrun validate` does; its messages and exit code on errors."""
    from . import report
    from .validate import validate_paths

    if not file.exists():
        raise click.UsageError(f"no such file: {file}")
    result = validate_paths([file])
    if result.errors:
        raise _Reported(report.human(result, quiet=False))
    spec = result.files[0].spec
    if spec is None:
        raise click.ClickException(f"{file} is not a network file")
    return spec


@main.command()
@click.argument("event")
@click.option("-d", "--data", "data_json", default="{}", metavar="JSON", help="The event's data.")
@click.option("--run", "run_id", metavar="RUN_ID", help="Deliver only to this run.")
@click.option("--json", "as_json", is_flag=True, help="Print the resumed runs as JSON.")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False), help="The run journal.")
def send(event: str, data_json: str, run_id: str | None, as_json: bool, db: Path | None) -> int:
    """Send an event: it answers the waits that match it, and those runs resume."""

    from .console import Progress

    data = _json_option(data_json, "--data")
    if run_id is not None:
        data.setdefault("run_id", run_id)  # approvals match on the run id in the data
    progress = None if as_json else Progress()
    records = _with_engine(db, progress, progress is not None, lambda engine: engine.deliver(event, data, run_id))
    if as_json:
        click.echo(json.dumps([r.summary() for r in records], indent=2))
    elif not records:
        click.echo(f"no run was waiting for {event}" + (f" (run {run_id})" if run_id else "") + " with a matching condition")
    return 1 if any(r.status == "failed" for r in records) else 0


@main.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True, help="Mermaid or Graphviz text.")
def graph(file: Path, fmt: str) -> None:
    """Print a network's topology: agents, the router's rules and LLM routes, tools, MCP
    servers, waits and approvals (paste Mermaid into Markdown; render dot with Graphviz)."""
    from ._fast_start import skip_pydantic_plugins

    skip_pydantic_plugins()
    from . import graph as graphs

    spec = _load_network(file)
    click.echo(graphs.mermaid(spec) if fmt == "mermaid" else graphs.dot(spec))


@main.command()
@click.argument("name")
@click.option("-d", "--dir", "folder", type=click.Path(path_type=Path, file_okay=False), help="Where to write the files (default: networks/ if it exists, else here).")
def new(name: str, folder: Path | None) -> None:
    """Scaffold a network NAME.yaml and its test file NAME.test.yaml, which validate and
    pass as created: a starting point to edit."""
    from .scaffold import scaffold

    try:
        written = scaffold(name, folder)
    except FileExistsError as exc:
        raise click.ClickException(f"{exc.filename} exists; pick another name or remove it") from None
    for path in written:
        click.echo(f"wrote {path}")
    network = written[0]
    click.echo(f"next: netrun validate {network} && netrun test {network}")


@main.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["human", "junit", "github"]), default="human", show_default=True, help="Output format.")
@click.option("-k", "select", metavar="TEXT", help="Only the cases whose name contains TEXT.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the report to this file (e.g. JUnit XML for CI).")
def test_command(paths: tuple[Path, ...], fmt: str, select: str | None, output: Path | None) -> int:
    """Run the test cases of networks (*.test.yaml): offline, deterministic, no API key.

    PATHS are test files, network files (their test file beside them) or directories
    (default: networks/). Exit code 1 if any case fails or a test file has errors.
    """
    import asyncio
    import time

    from . import report
    from .testing import report as test_report
    from .testing.cases import discover_tests, load_tests

    targets = list(paths) or [Path("networks")]
    found = discover_tests(targets)
    if not found:
        raise click.UsageError(f"no test files (*.test.yaml) under {', '.join(map(str, targets))}")
    files, problems = load_tests(found)
    colour = sys.stdout.isatty() and output is None
    if problems.errors:
        click.echo(report.github(problems) if fmt == "github" else report.human(problems, click.style if colour else report.plain), err=fmt != "github")
    from .testing.run import run_cases

    started = time.perf_counter()
    results = asyncio.run(run_cases(files, dict(os.environ), select))
    seconds = time.perf_counter() - started
    if select is not None and not results and not problems.errors:
        raise click.UsageError(f"no test case name contains {select!r}")
    broken = [(f.file, "\n".join(f"{d.pos.file}:{d.pos.line}:{d.pos.col}: {d.message}" for d in f.diagnostics if d.severity == "error"))
              for f in problems.files if f.errors and f.kind == "test"]
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
        click.echo(f"{failed} failed, {len(results) - failed} passed" + (f", {len(broken)} test file(s) with errors" if broken else "")
                   + f"; report written to {output}")
    else:
        click.echo(text, color=colour)
    return 1 if problems.errors or any(not r.passed for r in results) else 0


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="The interface to listen on (127.0.0.1: this machine only).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="The port to listen on.")
@click.option(
    "--engine", type=click.Choice(["auto", "local", "inngest"]), default="auto", show_default=True,
    help="Where runs execute: auto = Inngest when INNGEST_DEV or INNGEST_SIGNING_KEY is set, else the local engine.",
)
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="The local engine's journal directory (default: .netrun, or $NETRUN_DATA_DIR).")
@click.option("--no-watch", is_flag=True, help="Do not reload the network files when they change.")
@click.option("--app-id", help="The Inngest app id (default: netrun, or $NETRUN_APP_ID).")
def serve(paths: tuple[Path, ...], host: str, port: int, engine: str, data_dir: Path | None, no_watch: bool, app_id: str | None) -> None:
    """Serve networks: Inngest functions at /api/inngest and a REST API to start runs,
    stream their events and deliver events. PATHS default to networks/.

    Edits to the files are picked up while serving; an invalid edit is reported and the
    last good version keeps serving. Runs in flight keep the definition they started on.
    """
    import logging

    from .validate import discover

    targets = tuple(paths) or (Path("networks"),)
    discover(targets)
    # netrun's own log only: the root logger at INFO would print every litellm call.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("netrun: %(message)s"))
    logger = logging.getLogger("netrun")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    from .serve.settings import ServeSettings

    settings = ServeSettings.from_env(
        dict(os.environ), targets, engine=engine, data_dir=data_dir, host=host, port=port, watch=not no_watch, app_id=app_id,
    )
    import uvicorn

    from .serve.app import StartError, create_app

    try:
        app = create_app(settings)
    except StartError as exc:  # its message is the report of what is wrong: shown as it is
        raise _Reported(str(exc)) from None
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


if __name__ == "__main__":  # pragma: no cover
    main()
