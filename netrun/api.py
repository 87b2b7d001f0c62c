"""netrun's Python API, for code that embeds netrun (and for tests).

- :func:`load_network` a network file, validated as ``netrun validate`` validates it; a file with
  errors raises :class:`InvalidNetworkError`, which carries every located message.
- :class:`Runs` runs networks on the local engine (runs journaled in SQLite), with an
  injectable model client or a replies file; it resumes runs, delivers the events that
  answer their waits, retries and cancels them. :func:`run` / :func:`run_sync` are the
  one-call forms.
- :func:`~netrun.asgi.asgi_app` is the ``netrun serve`` application, to mount in an
  existing FastAPI application with :func:`~netrun.asgi.mount` (in :mod:`netrun.asgi`;
  both are re-exported by ``netrun``).

``import netrun`` must stay cheap (``netrun validate`` starts with it): this module imports
only the standard library and :mod:`netrun.errors` at import time; pydantic, litellm,
fastapi and the engine are imported by the functions that use them.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from .errors import NetrunError

if TYPE_CHECKING:
    from .diagnostics import Diagnostic
    from .engines.local import Journal, RunRecord
    from .engines.runner import LocalEngine
    from .runtime.model import Completion, ModelClient, Request
    from .spec import NetworkSpec
    from .spec.model import ModelSpec

ModelFunction: TypeAlias = "Callable[[Request], Awaitable[Completion | str] | Completion | str]"
"""A model as a plain function: a :class:`~netrun.runtime.model.Request` in, a
:class:`~netrun.runtime.model.Completion` (or just its text) out, sync or async."""

Model: TypeAlias = "ModelClient | ModelFunction"
"""What ``model=`` takes: an object with netrun's model client protocol (an async
``complete(request, on_text=None) -> Completion``, :mod:`netrun.runtime.model`), or a
:data:`ModelFunction`."""

PathLike: TypeAlias = "str | os.PathLike[str]"


class InvalidNetworkError(NetrunError, phase="check"):
    """A network file with errors. ``diagnostics`` holds each problem with its file, line,
    column and YAML path; ``messages`` the same as ``netrun validate`` prints them."""

    def __init__(self, path: Path, diagnostics: list[Diagnostic], text: str) -> None:
        super().__init__(text)
        self.path = path
        self.diagnostics = diagnostics

    @property
    def messages(self) -> list[str]:
        """``file:line:col: severity: yaml.path: message`` for each problem."""
        return _located(self.diagnostics)


def _located(diagnostics: Iterable[Diagnostic]) -> list[str]:
    return [
        f"{d.pos.file}:{d.pos.line}:{d.pos.col}: {d.severity}: " + (f"{d.where}: " if d.where else "") + d.message
        for d in diagnostics
    ]


class InvalidInputError(NetrunError, ValueError, phase="run"):
    """An input, initial state or event a network cannot start with (nothing is recorded).
    ``problems`` holds one ``place: why`` message each (``state.count: expected integer, got string``)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Network:
    """A validated network file."""

    spec: NetworkSpec
    """The network as netrun's spec models (``netrun.spec.NetworkSpec``)."""
    path: Path
    warnings: list[str] = field(default_factory=list)
    """What ``netrun validate`` warns about in the file, located as in :attr:`InvalidNetworkError.messages`."""

    @property
    def name(self) -> str:
        return self.spec.name


def load_network(path: PathLike, *, strict: bool = False) -> Network:
    """Load and validate the network file at ``path`` as ``netrun validate`` does.

    Raises :class:`InvalidNetworkError` when the file has errors (with ``strict``, warnings
    too), and :class:`FileNotFoundError` when there is no such file.
    """
    from ._fast_start import skip_pydantic_plugins

    skip_pydantic_plugins()  # as `netrun validate` does: no plugin discovery before pydantic loads
    from . import report
    from .validate import validate_paths

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no such network file: {file}")
    result = validate_paths([file])
    found = result.files[0] if result.files else None
    if result.errors or (strict and result.warnings) or found is None or found.spec is None:
        diagnostics = result.diagnostics
        text = report.human(result, quiet=True) if diagnostics else f"{file} is not a network file"
        raise InvalidNetworkError(file, diagnostics, text)
    return Network(found.spec, file.resolve(), _located(result.diagnostics))


@dataclass(frozen=True)
class RunResult:
    """What became of a run: ``status`` is completed, failed, waiting, cancelled, queued or
    running. The result fields are None until the run has completed."""

    run_id: str
    status: str
    network: str
    output: str | None = None
    state: dict[str, Any] | None = None
    """The state the run ended with."""
    route: list[str] | None = None
    """The agents that ran, in order."""
    usage: dict[str, Any] | None = None
    """Tokens (``prompt_tokens``, ``completion_tokens``, ``tokens``), ``cost`` and model ``seconds``."""
    stop_reason: str | None = None
    error: str | None = None
    """Why a failed or cancelled run ended."""
    approvals: list[dict[str, Any]] = field(default_factory=list)
    """The tool calls a waiting run waits to have approved: ``{id, tool, args, event, expires_at, ...}``."""
    result: dict[str, Any] | None = None
    """The whole result, as ``netrun run --json`` prints it (per-agent results, iterations, ...)."""

    @classmethod
    def of(cls, record: RunRecord) -> RunResult:
        done = record.result or {}
        return cls(
            run_id=record.id,
            status=record.status,
            network=record.network,
            output=done.get("output"),
            state=done.get("state"),
            route=done.get("route"),
            usage=done.get("usage"),
            stop_reason=done.get("stop_reason"),
            error=record.error,
            approvals=list(record.approvals),
            result=record.result,
        )


class _FunctionClient:
    """A :data:`ModelFunction` behind the model client protocol."""

    def __init__(self, fn: ModelFunction) -> None:
        self.fn = fn

    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        import inspect

        from .runtime.model import Completion

        answer = self.fn(request)
        if inspect.isawaitable(answer):
            answer = await answer
        completion = Completion(text=answer) if isinstance(answer, str) else answer
        if completion.text and on_text is not None:
            on_text(completion.text)
        return completion


def _factory(model: Any) -> Callable[[ModelSpec], ModelClient] | None:
    """The engine's model factory for ``model=``: every model of the network answered by it."""
    if model is None:
        return None
    client = model if callable(getattr(model, "complete", None)) else _FunctionClient(model) if callable(model) else None
    if client is None:
        raise TypeError("model must have an async complete(request, on_text=None) method, or be a function of the request")
    return lambda spec: client


def default_db(environ: Mapping[str, str] | None = None) -> Path:
    """The journal ``netrun run`` uses: ``$NETRUN_DATA_DIR/runs.db``, else ``.netrun/runs.db``."""
    from .engines.journal_schema import data_dir

    return data_dir(os.environ if environ is None else environ) / "runs.db"


class Runs:
    """Runs on the local engine, journaled in the SQLite file ``db``.

    ``model`` answers every model call of every run this object executes (a run resumed
    later by another process uses the network's own models, or its replies file, instead);
    without it, the networks' models are called (litellm, ``scripted/FILE``). ``environ``
    holds the ``${NAME}`` values (default: ``os.environ``). ``retries`` overrides the
    networks' ``function.retries``; ``backoff`` is the seconds before a step's first retry.

    Use it as an async context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        db: PathLike | None = None,
        *,
        model: Model | None = None,
        environ: Mapping[str, str] | None = None,
        retries: int | None = None,
        backoff: float = 0.5,
    ) -> None:
        from .engines.local import Journal
        from .engines.runner import LocalEngine
        from .finder import find_network

        self.environ = dict(os.environ if environ is None else environ)
        self.journal: Journal = Journal(Path(db) if db is not None else default_db(self.environ))
        self.engine: LocalEngine = LocalEngine(
            self.journal,
            self.environ,
            step_retries=retries,
            backoff=backoff,
            models=_factory(model),
            stream=False,
            networks=find_network,
        )
        self._model = model

    async def start(
        self,
        network: Network | PathLike,
        input: str = "",
        *,
        state: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        replies: PathLike | Mapping[str, Any] | None = None,
        thread: str | None = None,
    ) -> RunResult:
        """Run ``network`` (a :class:`Network` or a file to :func:`load_network`) until it completes,
        fails or waits for an event.

        ``state``: initial values of declared state fields (checked as ``netrun run --state``
        checks them: :class:`InvalidInputError`). ``event``: the triggering event
        (``{"name": ..., "data": {...}}``). ``replies``: answer the model calls offline from
        a replies file (a path, as ``netrun run --replay``) or its content (a mapping of caller
        to replies); stored with the run, so a resume answers from them too. ``thread``: the
        conversation the run continues (``netrun run --thread``).
        """
        from .runtime.jsonsafe import json_problem
        from .runtime.state import state_problems

        loaded = network if isinstance(network, Network) else load_network(network)
        if replies is not None and self._model is not None:
            raise ValueError("give model= or replies=, not both")
        problems = [f"state.{path}: {why}" for _, path, why in state_problems(loaded.spec.state, dict(state or {}))]
        for value, where in ((input, "input"), (dict(event or {}), "event")):
            found = json_problem(value, where)
            if found is not None:
                problems.append(": ".join(found))
        if problems:
            raise InvalidInputError(problems)
        options: dict[str, Any] = {}
        if isinstance(replies, Mapping):
            options.update(replies=dict(replies), source="the replies given to netrun.Runs.start")
        elif replies is not None:
            options["replay"] = str(Path(replies).resolve())
        if thread is not None:
            options["thread_id"] = thread
        record = await self.engine.start(
            loaded.spec, loaded.path.parent, input=input, state=dict(state or {}), event=dict(event or {}), options=options
        )
        return RunResult.of(self._read(record.id, record))

    async def resume(self, run_id: str) -> RunResult:
        """Go on with a run that was interrupted, or whose wait was answered (as ``netrun run --resume``)."""
        record = await self.engine.resume(run_id)
        return RunResult.of(self._read(run_id, record))

    async def send(self, event: str, data: Mapping[str, Any] | None = None, *, run_id: str | None = None) -> list[RunResult]:
        """Deliver an event (as ``netrun send``): it answers the waits that match it, and those
        runs go on. An approval is answered with the event the run waits for and
        ``{"approval_id": ..., "approved": True}`` (or False, with a ``"reason"``)."""
        body = dict(data or {})
        if run_id is not None:
            body.setdefault("run_id", run_id)  # approvals match on the run id in the data
        records = await self.engine.deliver(event, body, run_id)
        return [RunResult.of(self._read(r.id, r)) for r in records]

    async def retry(self, run_id: str) -> RunResult:
        """Run a failed run again from the step that failed (as ``netrun run --retry``)."""
        record = await self.engine.retry(run_id)
        return RunResult.of(self._read(run_id, record))

    def cancel(self, run_id: str, reason: str = "cancelled") -> RunResult:
        """End a run that has not ended (and its child runs); no event resumes it."""
        return RunResult.of(self._read(run_id, self.engine.cancel(run_id, reason)))

    def get(self, run_id: str) -> RunResult | None:
        """The run as the journal holds it now; None when there is no such run."""
        record = self.journal.run(run_id, approvals=True)
        return RunResult.of(record) if record is not None else None

    def _read(self, run_id: str, fallback: RunRecord) -> RunRecord:
        # Read back with its pending approvals: what the engine returns may lack them.
        return self.journal.run(run_id, approvals=True) or fallback

    async def aclose(self) -> None:
        """Close the journal and the model clients' connections of this event loop."""
        from .models import close_clients  # the direct client's and litellm's, of those used only

        await close_clients()
        self.close()

    def close(self) -> None:
        self.journal.close()

    async def __aenter__(self) -> Runs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def run(
    network: Network | PathLike,
    input: str = "",
    *,
    state: Mapping[str, Any] | None = None,
    event: Mapping[str, Any] | None = None,
    model: Model | None = None,
    replies: PathLike | Mapping[str, Any] | None = None,
    db: PathLike | None = None,
    environ: Mapping[str, str] | None = None,
    thread: str | None = None,
) -> RunResult:
    """Run ``network`` once on the local engine: :meth:`Runs.start` on a :class:`Runs` that is
    closed afterwards. ``db``: the journal (default :func:`default_db`, where ``netrun run``
    keeps its runs, so ``netrun run --resume RUN_ID`` can go on with a waiting run)."""
    async with Runs(db, model=model, environ=environ) as runs:
        return await runs.start(network, input, state=state, event=event, replies=replies, thread=thread)


def run_sync(network: Network | PathLike, input: str = "", **options: Any) -> RunResult:
    """:func:`run` from code that has no event loop running (a script, a test)."""
    import asyncio  # here, not at the top: `import netrun` (and `netrun validate`) does without it

    return asyncio.run(run(network, input, **options))


__all__ = [
    "InvalidInputError",
    "InvalidNetworkError",
    "Model",
    "ModelFunction",
    "Network",
    "RunResult",
    "Runs",
    "default_db",
    "load_network",
    "run",
    "run_sync",
]
