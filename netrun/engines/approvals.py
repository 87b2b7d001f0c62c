"""Which approval an incoming approval event answers, decided before it is delivered.

A gated tool call waits for an event naming its approval id (see
:mod:`netrun.runtime.approvals`). A sender that does not name one is answered here, where
the pending approvals of the run are known (the journal): an id-less approval is given the
id of the single approval its run waits for, and refused when there are none or several.
Every refusal says why and lists what is pending, so a sender never gets a silent 202 for
an approval that answered nothing.

    ApprovalError(status, message)
      404  the run, or the approval, does not exist (nothing to answer)
      409  the approval is ambiguous, answered already, expired, or for another tool;
           the run has ended
      422  the event is malformed (no run id, ``approved`` not a boolean, ...)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import NetrunError
from ..runtime.approvals import APPROVAL_EVENT, APPROVAL_PREFIX
from .local import FINAL_STATUSES, Journal


class ApprovalError(NetrunError, phase="engine"):
    """An approval event that cannot answer any call; ``status`` is the HTTP status to send."""

    def __init__(self, status: int, message: str, run_id: str | None = None, pending: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.run_id = run_id
        self.pending = pending or []

    def body(self) -> dict[str, Any]:
        """The JSON body of the refusal: ``detail`` (the reason) and the pending approvals."""
        return {"detail": self.message, "run_id": self.run_id, "pending": self.pending}


def is_approval(journal: Journal, name: str, data: Mapping[str, Any], run_id: str | None = None) -> bool:
    """Whether an event is a decision on an approval: the default approval event, one that
    names an approval id, the event of an approval the target run waits for, or, naming
    no run, the event of an approval some run waits for (``approval: {event: app/ok}``: an
    ``app/ok`` without a run id is an approval that names no run, refused as one)."""
    if name == APPROVAL_EVENT or "approval_id" in data:
        return True
    target = run_id or data.get("run_id")
    if isinstance(target, str) and target:
        record = journal.run(target, approvals=True)
        return record is not None and any(a["event"] == name for a in record.approvals)
    return journal.awaits_approval(name)


def resolve_approval(journal: Journal, name: str, data: Mapping[str, Any], run_id: str | None = None) -> dict[str, Any] | None:
    """The data to deliver for an approval event, naming its run and approval id; None when
    the event is no approval (it is delivered as it is). Raises :class:`ApprovalError`."""
    if not is_approval(journal, name, data, run_id):
        return None
    given_run = data.get("run_id")
    if run_id is not None and given_run is not None and given_run != run_id:
        raise ApprovalError(422, f"the approval names two runs: run_id {run_id!r} and data.run_id {given_run!r}", run_id)
    target = run_id or given_run
    if not isinstance(target, str) or not target:
        raise ApprovalError(422, "an approval names the run it answers: give run_id (or data.run_id)")
    record = journal.run(target, approvals=True)
    if record is None:
        raise ApprovalError(404, f"no run {target}", target)
    if record.status in FINAL_STATUSES:
        raise ApprovalError(409, f"run {target} has ended ({record.status}); it waits for no approval", target)
    approved = data.get("approved")
    if not isinstance(approved, bool):
        raise ApprovalError(422, f"data.approved must be true or false, not {approved!r}", target, record.approvals)
    pending = [a for a in record.approvals if a["event"] == name]
    wanted = data.get("approval_id")
    tool = data.get("tool")
    if wanted is not None:
        if not isinstance(wanted, str) or not wanted.startswith(APPROVAL_PREFIX):
            raise ApprovalError(
                422, f"data.approval_id must be an approval id ({APPROVAL_PREFIX}...), not {wanted!r}", target, pending
            )
        found = next((a for a in pending if a["id"] == wanted), None)
        if found is None:
            past = journal.approval_outcome(target, wanted)
            if past is not None:
                raise ApprovalError(
                    409,
                    f"approval {wanted} of run {target} was {'answered already' if past == 'answered' else 'not answered in time'}; "
                    f"{_listing(pending)}",
                    target,
                    pending,
                )
            raise ApprovalError(
                404, f"run {target} has no approval {wanted} waiting for {name}; {_listing(pending)}", target, pending
            )
    elif not pending:
        legacy = [w for w in journal.waits(name, run_id=target) if not (w[3].get("variables") or {}).get("approval")]
        if legacy:  # a wait recorded by an older netrun: its condition matches without an id
            return {**data, "run_id": target}
        raise ApprovalError(404, f"run {target} waits for no approval ({name})", target, pending)
    elif len(pending) > 1:
        raise ApprovalError(
            409,
            f"run {target} waits for {len(pending)} approvals; name the one this answers in data.approval_id: "
            f"{_listing(pending)}",
            target,
            pending,
        )
    else:
        found = pending[0]
    if tool is not None and tool != found["tool"]:
        raise ApprovalError(
            409, f"approval {found['id']} of run {target} is for the tool {found['tool']}, not {tool}", target, pending
        )
    return {**data, "run_id": target, "approval_id": found["id"]}


def _listing(pending: list[dict[str, Any]]) -> str:
    if not pending:
        return "none is pending"
    return "pending: " + ", ".join(f"{a['id']} ({a['tool']}, step {a['step']})" for a in pending)


__all__ = ["APPROVAL_EVENT", "ApprovalError", "is_approval", "resolve_approval"]
