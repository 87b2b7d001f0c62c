"""Approval ids: each approval-gated tool call waits for a decision on its own id.

Durability rule 7: an approval answers exactly one tool call, by its id. The id is
derived from the run id and the call's step id, so it is the same on every replay, after
a restart and on another replica, and it never names a call of another run.
"""

from __future__ import annotations

import hashlib

APPROVAL_EVENT = "netrun/approval"
"""The default event carrying a human's decision on an approval-gated tool call."""

APPROVAL_PREFIX = "apr_"


def approval_id(run_id: str, step_id: str) -> str:
    """``apr_`` + 24 hex digits of sha256(run id, step id): opaque, so clients use the id
    they were shown rather than building one from step ids (whose format may change)."""
    return APPROVAL_PREFIX + hashlib.sha256(f"{run_id}\n{step_id}".encode()).hexdigest()[:24]


__all__ = ["APPROVAL_EVENT", "APPROVAL_PREFIX", "approval_id"]
