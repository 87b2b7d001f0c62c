"""netrun's errors: one base, :class:`NetrunError`, and the phase each error comes from.

Every error netrun raises for a user to read derives from :class:`NetrunError`. Each class
stays in the module that raises it (next to the code whose failure it names) and keeps its
other bases, so existing ``except ValueError`` or ``except sqlite3.OperationalError``
clauses go on catching it; this module only gives them a common root, a ``phase`` and a
place (file:line:col and YAML path) where one is known::

    NetrunError                          phase    raised by
    ├── UsageError                       (exit 2) the command was called wrongly
    │   ├── PathError                    load     validate/files.py: a PATH that does not exist
    │   └── ScaffoldError                cli      scaffold.py: a bad name for `netrun new`
    ├── LoadError                        load     load/document.py: not one YAML mapping (its diagnostics are located)
    ├── InvalidNetworkError              check    api.py: a network file that does not validate
    ├── InvalidInputError                run      api.py: a run's input or state the network refuses
    ├── MissingEnvError (LookupError)    run      envrefs.py: a ${NAME} that is not set
    ├── UrlError (ValueError)            run      urltemplate.py: a URL a value would send elsewhere
    ├── CelError (ValueError)            check    expressions/cel.py: an expression Inngest cannot evaluate
    ├── RenderError                      run      runtime/render.py: a template or expression failed (names its place)
    ├── ModelError                       run      runtime/model.py: a model call failed (``retriable``)
    ├── StepFailed                       run      runtime/steps.py: a step failed for good
    ├── RetryStep                        run      errors.py: a python tool asks for its step to be tried again
    ├── FailRun                          run      errors.py: a python tool fails the run
    ├── ModelRefused                     run      compile.py: the event asks for a model its choice does not allow
    ├── RunError                         run      runtime/results.py: the run cannot go on
    │   ├── McpServerMissingError        run      tools/mcp/servers.py: a server's program is not installed
    │   └── PythonImportError            run      tools/python_import.py: a python tool's function cannot be imported
    ├── HistoryError                     run      history/base.py: the thread store failed (``retriable``)
    │   └── PermanentHistoryError        run      ... and a retry cannot fix it
    ├── EngineError                      engine   engines/run_control.py: an unknown run, one that cannot resume
    │   └── RunBusyError                 engine   ... another process is running it
    ├── ApprovalError                    engine   engines/approvals.py: an approval that answers nothing
    ├── JournalError                     engine   engines/journal.py: the journal cannot be used
    ├── StorageFault (sqlite3.OperationalError)
    │                                    engine   sqlite_file.py: the disk refused a write
    ├── SettingsError                    serve    serve/settings.py: options netrun cannot start with
    ├── MissingExtraError (ImportError) cli      extras.py: an optional library is not installed (names the extra)
    └── StartError                       serve    serve/app.py: the server cannot start

Outside the tree, on purpose: exceptions that are control flow or outcomes, not errors.
``RunSuspended`` (runtime/steps.py: a run waits for an event), ``RunStopped``
(engines/local_steps.py: the engine shuts down between steps), ``RunCancelled``
(runtime/lifecycle.py: a cancelled run stops before its next step and runs its ``finally:``) and ``SingletonSkipped``
(serve/local_runs.py: a run that is not started, like Inngest's "skipped") are raised to
unwind a run that is doing what it should; an ``except NetrunError`` meant for failures
must never swallow them. Private signals caught inside their own module
(``_AttemptFailedError`` in tools/http.py, ``_SuspectError`` in tools/mcp/connection.py,
``_GaveUpError`` in engines/local_steps.py, ``_StepError`` in runtime/lifecycle.py, ``_ClientGoneError`` in serve/guard.py,
``_SyncUnreachableError`` and ``_InngestDownError`` in serve/inngest_sync.py) never reach a
caller and stay outside too, as does ``ScopeError`` (spec/scopes.py, a ``RuntimeError``):
it reports a bug in netrun, not a mistake a user can fix. So does the CLI's ``_Reported`` (cli/group.py), a
click exception that carries a message already shown.

The command line turns these into exit codes in one place (:func:`netrun.cli.exit_code`
and the group that calls it): a :class:`UsageError` exits 2, any other NetrunError 1.

This module imports nothing from netrun but :mod:`netrun.diagnostics`, so every layer
can import it.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from .diagnostics import Pos, YamlPath, format_path

Phase = Literal["load", "spec", "check", "compile", "run", "engine", "serve", "cli"]
"""Where in the pipeline an error is raised: load -> spec -> check -> compile -> run, then
the engines that execute runs, the server, and the command line itself."""


class NetrunError(Exception):
    """An error a user can read and act on; ``phase`` says which part of netrun raised it.

    A subclass names its phase on its class line, ``class JournalError(NetrunError,
    phase="engine")``, and inherits it otherwise. No ``__init__`` of its own: subclasses keep
    their constructors (and, through their other bases, C-level ones such as
    ``sqlite3.OperationalError``'s). A place is attached with :meth:`at` where the raiser
    knows it.
    """

    phase: ClassVar[Phase] = "run"
    pos: Pos | None = None
    """The file, line and column the error is about, when it has one."""
    yaml_path: YamlPath = ()
    """The YAML path of the node the error is about (``router.rules[2]``), when it has one."""

    def __init_subclass__(cls, phase: Phase | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if phase is not None:
            cls.phase = phase

    def at(self, pos: Pos | None = None, path: YamlPath = ()) -> Self:
        """Attach the place and return the error, so that ``raise SomeError(...).at(path=p)``."""
        if pos is not None:
            self.pos = pos
        if path:
            self.yaml_path = path
        return self

    @property
    def where(self) -> str:
        """``file:line:col: yaml.path``, the parts that are known ("" when none is).

        An error that carries diagnostics (:class:`~netrun.load.LoadError`) is located by
        its first one: each diagnostic has its own position already."""
        pos, path = self.pos, self.yaml_path
        first = next(iter(getattr(self, "diagnostics", None) or ()), None)
        if pos is None and first is not None:
            pos, path = first.pos, path or first.path
        parts = [f"{pos.file}:{pos.line}:{pos.col}"] if pos is not None else []
        if path:
            parts.append(format_path(path))
        return ": ".join(parts)


class UsageError(NetrunError, phase="cli"):
    """The command was called wrongly (a path that does not exist, an unusable name): the
    command line exits 2 with it, as click does for its own usage errors."""


class RetryStep(NetrunError, phase="run"):  # noqa: N818 - an instruction, read as one: raise RetryStep
    """Raised by a ``python`` tool's function: this attempt failed, try the step again.

    The step is retried as every failed step is (the network's ``function.retries``, on
    both engines); when the retries are used up, the model gets an error result with the
    message. ``after`` asks for a wait of that many seconds before the next attempt."""

    retriable: ClassVar[bool] = True
    """What the engines read to decide a retry (as for a model's 429)."""

    def __init__(self, message: str = "the function asked to be retried", *, after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = after
        """Seconds to wait before the next attempt (None: the engine's backoff)."""


class FailRun(NetrunError, phase="run"):  # noqa: N818 - an instruction, read as one: raise FailRun
    """Raised by a ``python`` tool's function: the run cannot go on; it fails with this message
    (the function's step records it, so a resumed run fails the same way without calling it again)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


__all__ = ["FailRun", "NetrunError", "Phase", "RetryStep", "UsageError"]
