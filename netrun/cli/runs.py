"""The commands that run networks on the local engine: ``run`` and ``send``.

Both open the run journal (``--db``, default ``.netrun/runs.db``) and run the engine in a
fresh event loop (:func:`_with_engine`); ``run`` starts, resumes or retries a run, ``send``
delivers an event to the runs waiting for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ..extras import require
from ..runtime import events
from .group import _Command, load_network


def _journal_path(db: Path | None) -> Path:
    from ..engines.journal_schema import data_dir

    return db or data_dir(os.environ) / "runs.db"


def _journal(db: Path | None) -> Any:
    from ..engines.local import Journal

    return Journal(_journal_path(db))


def _state_pairs(pairs: tuple[str, ...], declared: Mapping[str, Any]) -> dict[str, Any]:
    """``--state KEY=VALUE`` pairs as the initial state, checked against the declared state:
    each VALUE is JSON or text, whichever the field's type accepts."""
    from ..runtime.state import read_state_text, state_problems

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
        raise click.UsageError(
            "invalid initial state:\n"
            + "\n".join(f"  --state {key}: {why if path == key else f'{path}: {why}'}" for key, path, why in problems)
        )
    return state


def _json_option(text: str | None, name: str) -> dict[str, Any]:
    if text is None:
        return {}
    from ..runtime.jsonsafe import json_problem

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


@click.command(cls=_Command)
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-i",
    "--input",
    "input_",
    help="The network input (the user's request); with --event, by default the trigger's input template.",
)
@click.option(
    "-s",
    "--state",
    "state",
    multiple=True,
    metavar="KEY=VALUE",
    help="Initial state of a declared field; VALUE is JSON or text, whichever its type accepts. Repeatable.",
)
@click.option("--event", "event_json", metavar="JSON", help='The triggering event, e.g. \'{"name": "app/x", "data": {...}}\'.')
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document with the result, for scripts.")
@click.option(
    "--replay", type=click.Path(path_type=Path, dir_okay=False), help="Answer every model call from this replies file (offline)."
)
@click.option(
    "--record", type=click.Path(path_type=Path, dir_okay=False), help="Save the model replies of this run to a replies file."
)
@click.option("--resume", "resume_id", metavar="RUN_ID", help="Resume a run that was interrupted or is waiting.")
@click.option(
    "--retry",
    "retry_id",
    metavar="RUN_ID",
    help="Run a failed run again once its cause is fixed: completed steps are kept, the failed step runs again.",
)
@click.option(
    "--db",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The run journal (default: .netrun/runs.db, or $NETRUN_DATA_DIR/runs.db).",
)
@click.option(
    "--thread",
    "thread_id",
    metavar="ID",
    help="Continue (or start) the conversation ID: its messages are loaded first, this run's are appended.",
)
def run(
    file: Path | None,
    input_: str | None,
    state: tuple[str, ...],
    event_json: str | None,
    as_json: bool,
    replay: Path | None,
    record: Path | None,
    resume_id: str | None,
    retry_id: str | None,
    db: Path | None,
    thread_id: str | None,
) -> int:
    """Run a network locally, durably: progress streams as it happens.

    A run that is killed resumes with --resume RUN_ID without repeating any completed
    model or tool call; a run waiting for an event resumes when `netrun send` delivers it.
    A failed run runs again with --retry RUN_ID once its cause is fixed: its completed steps
    are not repeated, the step that failed runs again.
    """

    from ..console import Progress

    require("run", "netrun run")  # before any work: one line naming the extra, not a failed run
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
        if kind == events.RUN_STARTED and not started:
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
                raise click.ClickException(
                    f"run {resume_id} failed: {found.error}\nonce its cause is fixed, retry it with: netrun run --retry {resume_id}"
                )
            if found is not None and found.status == "cancelled":
                raise click.ClickException(f"run {resume_id} was cancelled ({found.error}); a cancelled run does not go on")
            if found is not None and found.status == "completed" and not as_json:
                click.echo(
                    f"run {resume_id} completed already"
                    + (f":\n{found.result['output']}" if (found.result or {}).get("output") else "")
                )
            return await finish(engine, await engine.resume(resume_id))
    elif retry_id is not None:

        async def operation(engine: Any) -> Any:
            return await finish(engine, await engine.retry(retry_id))
    else:
        assert file is not None
        spec = load_network(file)
        options: dict[str, Any] = {k: str(v.resolve()) for k, v in (("replay", replay), ("record", record)) if v is not None}
        if thread_id is not None:
            options["thread_id"] = thread_id
        event, initial = _json_option(event_json, "--event"), _state_pairs(state, spec.state)
        from ..runtime.jsonsafe import json_problem

        if input_ is not None and json_problem(input_, "--input") is not None:
            raise click.BadParameter(
                "text that is not valid Unicode (a lone surrogate or bytes that are not UTF-8)", param_hint="--input"
            )
        text = input_ if input_ is not None else _event_input(spec, event) if event else ""

        async def operation(engine: Any) -> Any:
            return await finish(
                engine, await engine.start(spec, file.resolve().parent, input=text, state=initial, event=event, options=options)
            )

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
    from ..engines.triggers import network_input
    from ..runtime.render import RenderError

    try:
        return network_input(spec, event)
    except RenderError as exc:
        raise click.BadParameter(
            f"cannot make the network input from this event with the trigger's input template: {exc}; give the input with -i",
            param_hint="--event",
        ) from None


def _how_to_continue(outcome: Any, waits: list[str]) -> None:
    """Say (on stderr, after the progress) what answers a run left waiting."""
    lines = [f"run {outcome.id} is waiting; it goes on when an event answers it:"]
    for approval in outcome.approvals:
        lines.append(
            f'  netrun send {approval["event"]} --run {outcome.id} --data \'{{"approval_id": "{approval["id"]}", "approved": true}}\''
            f'   # {approval["tool"]}; or false, with a "reason"'
        )
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

    from ..engines.runner import LocalEngine
    from ..finder import find_network
    from ..models import close_clients  # of the clients used only: imports no litellm
    from ..sqlite_file import StorageFault
    from ..tracing import configure as trace_runs
    from ..tracing import shutdown as flush_traces
    from .gc_tuning import tune_gc

    trace_runs()  # when OTEL_* asks for traces (else nothing is imported); flushed below
    journal = _journal(db)

    async def main() -> Any:
        try:
            return await operation(LocalEngine(journal, dict(os.environ), emit, stream=stream, networks=find_network))
        finally:
            await close_clients()

    tune_gc()
    try:
        return asyncio.run(main())
    except StorageFault as exc:  # the run stopped at its last recorded step, as at a shutdown
        run_id = stopped_run()
        if run_id:
            exc.add_note(f"once there is space, go on with: netrun run --resume {run_id}")
        raise
    finally:
        journal.close()
        flush_traces()


@click.command(cls=_Command)
@click.argument("event")
@click.option("-d", "--data", "data_json", default="{}", metavar="JSON", help="The event's data.")
@click.option("--run", "run_id", metavar="RUN_ID", help="Deliver only to this run.")
@click.option("--json", "as_json", is_flag=True, help="Print the resumed runs as JSON.")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False), help="The run journal.")
def send(event: str, data_json: str, run_id: str | None, as_json: bool, db: Path | None) -> int:
    """Send an event: it answers the waits that match it, and those runs resume."""

    from ..console import Progress

    require("run", "netrun send")

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


__all__ = ["run", "send"]
