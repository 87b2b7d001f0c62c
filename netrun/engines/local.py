"""The local engine: runs journaled in SQLite, resumable after a crash or a wait.

Every step's output is committed before the run moves on. Resuming a run (after
``kill -9``, or when an awaited event arrives) replays it from the start: completed steps
return their recorded outputs, so no inference or tool call is made twice. A run keeps
the definition it started with: the validated spec is stored with the run, and a resume
compiles that, not the file as it is now.

Its parts, each in its own module (their names are re-exported here, where the engine,
the server, the public API and the tests import them from):

- :mod:`netrun.engines.journal_schema`: the journal's tables, :class:`RunRecord`, run ids;
- :mod:`netrun.engines.journal`: :class:`Journal`, the SQLite file and its leases;
- :mod:`netrun.engines.local_steps`: :class:`LocalSteps`, the steps interface over the
  journal, and how a failed step is retried;
- here: :func:`wait_matches`, whether a delivered event answers a recorded wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..runtime.render import RenderError, evaluate
from ..runtime.steps import path_get
from ..spec import scopes
from .journal import LEASE_SECONDS, Journal, JournalError
from .journal_schema import FINAL_STATUSES, RunRecord, new_run_id
from .local_steps import INLINE_SLEEP, Invoker, LocalSteps, RunStopped, Sender, retriable


def wait_matches(spec: Mapping[str, Any], trigger: Mapping[str, Any], incoming: Mapping[str, Any]) -> bool:
    """Whether ``incoming`` answers a wait recorded with ``spec`` (its match and if)."""
    if spec.get("match") and path_get(dict(incoming), spec["match"]) != spec.get("match_value"):
        return False
    if spec.get("if"):
        variables = scopes.at_match(spec.get("variables") or {}, trigger, incoming)
        try:
            return bool(evaluate(spec["if"], variables))
        except RenderError:
            return False
    return True


__all__ = [
    "FINAL_STATUSES",
    "INLINE_SLEEP",
    "LEASE_SECONDS",
    "Invoker",
    "Journal",
    "JournalError",
    "LocalSteps",
    "RunRecord",
    "RunStopped",
    "Sender",
    "new_run_id",
    "retriable",
    "wait_matches",
]
