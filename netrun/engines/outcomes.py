"""How a run ends: its outcome types, and :class:`Outcomes`, which records an outcome in the
journal and tells whoever follows the run (the one ``fail``/``complete`` pair of every engine)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..redact import Secrets
from ..runtime.events import RUN_COMPLETED, RUN_FAILED

if TYPE_CHECKING:
    from ..runtime.network import Emit
    from .journal import Journal


@dataclass(frozen=True)
class Completed:
    """The run finished: its result (output, state, ...) as the journal keeps it."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    """The run failed: the message, redacted, as the journal keeps it."""

    message: str


@dataclass(frozen=True)
class Cancelled:
    """The run was cancelled (the journal says so already); its ``finally:`` steps have run."""

    message: str


Ended = Completed | Failed | Cancelled


class Outcomes:
    """How runs end, in the journal and as progress events: the one ``fail``/``complete`` pair.

    ``leased``: the runs hold this journal's lease (the local engine's). The ends their own
    execution records (:meth:`completed`, :meth:`failed`) give the lease up in the same
    commit, the journal's group commit: runs that end together share one. :meth:`fail` is for
    a run that is not executing (the engine ends it from outside).
    """

    def __init__(self, journal: Journal, environ: Mapping[str, str], emit: Emit | None, *, leased: bool = False) -> None:
        self.journal = journal
        self.environ = environ
        self.emit = emit
        self.leased = leased

    def fail(self, run_id: str, message: str, definition: Any = None, secrets: Secrets | None = None) -> Failed:
        """Record that the run failed with ``message``, redacted against ``secrets`` (default:
        those of ``definition``, else of the definition the journal holds for the run)."""
        message = self._redacted(run_id, message, definition, secrets)
        self.journal.set_status(run_id, "failed", error=message)
        return self._failed(run_id, message)

    async def failed(self, run_id: str, message: str, definition: Any = None, secrets: Secrets | None = None) -> Failed:
        """:meth:`fail`, as the run's own execution ends it."""
        message = self._redacted(run_id, message, definition, secrets)
        await self._record(run_id, "failed", None, message)
        return self._failed(run_id, message)

    async def completed(self, run_id: str, result: dict[str, Any]) -> Completed:
        """Record that the run completed with ``result`` (its output, state, ...)."""
        await self._record(run_id, "completed", result, None)
        if self.emit is not None:
            self.emit(RUN_COMPLETED, {"run_id": run_id, "result": result, "replayed": False})
        return Completed(result)

    async def _record(self, run_id: str, status: str, result: dict[str, Any] | None, error: str | None) -> None:
        if self.leased:
            await self.journal.end_run(run_id, status, result, error)
        else:
            self.journal.set_status(run_id, status, result, error)

    def _redacted(self, run_id: str, message: str, definition: Any, secrets: Secrets | None) -> str:
        if secrets is None:
            if definition is None:
                record = self.journal.run(run_id)
                definition = record.definition if record is not None else None
            secrets = Secrets.for_definition(definition, self.environ)
        # A store's error, a compile error or an internal one may quote a secret the run
        # itself could not redact.
        return secrets.redact(message)

    def _failed(self, run_id: str, message: str) -> Failed:
        if self.emit is not None:
            self.emit(RUN_FAILED, {"run_id": run_id, "error": message, "replayed": False})
        return Failed(message)


__all__ = ["Cancelled", "Completed", "Ended", "Failed", "Outcomes"]
