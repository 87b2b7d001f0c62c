"""AgentKit's streaming protocol: netrun's run events (:mod:`netrun.runtime.events`) as
``AgentMessageChunk`` chunks, the whole mapping in one place (as AgentKit's ``streaming.ts``).

Every stream ``netrun serve`` sends (:mod:`netrun.serve.run_events`) and the terminal output
of ``netrun run`` (:mod:`netrun.console`) read these chunks, so an AgentKit client
(``@inngest/use-agent``) works against netrun unchanged. A chunk is ``{event, data,
timestamp (ms), sequenceNumber, id: "publish-{seq}:{event}"}`` (:func:`frame`); ``data`` gets
the run's ``threadId`` and ``userId`` when it has them, as AgentKit adds them.

The mapping (one netrun event may become several chunks):

- ``run.started`` -> ``run.started`` (scope network, ``messageId`` = run id, input and
  definition hash in ``metadata``)
- ``routed`` -> held, and its decision rides in the next agent ``run.started``'s
  ``metadata.routing``; a stop (no agent) -> ``netrun.routed`` (an extra name clients ignore)
- ``agent.started`` -> ``run.started`` (scope agent, ``parentRunId`` = the run)
- ``text.delta`` -> ``part.created`` (type text, the first time for the turn) + ``text.delta``
- ``tool.called`` -> ``part.created`` (tool-call) + ``tool_call.arguments.delta`` + ``part.completed``
- ``tool.result`` -> ``part.created`` (tool-output) + ``tool_call.output.delta`` + ``part.completed``,
  then, when the call wrote state, ``metadata.updated`` (type ``context_update``,
  ``metadata: {state, step}``: the run's state once the write was applied)
- ``approval.requested`` / ``approval.resolved`` -> ``hitl.requested`` / ``hitl.resolved``
  (``expired`` is ``denied``, its reason says so)
- ``agent.finished`` -> ``part.completed`` of its text part (``part.created`` and one
  ``text.delta`` first when nothing streamed), ``usage.updated`` (the run's totals so far,
  ``cumulative: true``), ``run.completed`` (scope agent)
- ``waiting``, ``run.waiting`` -> ``netrun.waiting``, ``netrun.run.waiting`` (netrun payloads)
- ``run.completed`` -> ``run.completed`` (scope network, result, usage) + ``stream.ended``;
  ``run.failed`` -> ``run.failed`` + ``stream.ended``; ``run.cancelled`` ->
  ``run.interrupted`` (``user_cancellation``) + ``stream.ended``

Ids are derived from the run id, the turn and the step id only (:func:`message_id`,
:func:`agent_run_id`, :func:`text_part`, :func:`call_part`, :func:`output_part`): a resumed
run, or a second Inngest call of the same run, names everything the same. What the
mapping remembers of a run (its thread, the turn going on, the parts open, the usage so
far) is :class:`RunStream`; :meth:`RunStream.restore` rebuilds it from journaled chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..spec.base import parse_duration
from . import events
from .stream_ids import NAMESPACE, agent_run_id, call_part, iteration_of, message_id, output_part, step_of, text_part

STREAM_ENDED = "stream.ended"
"""The chunk that ends a run's stream (after ``run.completed``, ``run.failed``, ``run.interrupted``)."""

EXTRA_PREFIX = "netrun."
"""Extra event names (netrun detail AgentKit has no event for) start with this."""

Chunk = dict[str, Any]
"""One ``AgentMessageChunk``: ``event``, ``data``, ``timestamp``, ``sequenceNumber``, ``id``."""
Piece = tuple[str, dict[str, Any]]
"""A chunk before it is numbered: its event name and its data."""


def frame(event: str, data: dict[str, Any], seq: int, timestamp: int) -> Chunk:
    """The chunk numbered ``seq`` (its ``sequenceNumber`` and the stream's SSE ``id:``)."""
    return {"event": event, "data": data, "timestamp": timestamp, "sequenceNumber": seq, "id": f"publish-{seq}:{event}"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _tokens(usage: Mapping[str, Any]) -> dict[str, int]:
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {"promptTokens": prompt, "completionTokens": completion, "totalTokens": prompt + completion}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


@dataclass
class RunStream:
    """What the mapping remembers of one run between its events."""

    run_id: str
    network: str = ""
    thread_id: str | None = None
    user: str | None = None
    iteration: int | None = None
    """The turn going on (from ``agent.started``)."""
    agent: str | None = None
    """Its agent."""
    routing: dict[str, Any] | None = None
    """The router's decision for the next agent turn, until its ``agent.started``."""
    open_parts: set[str] = field(default_factory=set)
    """Text parts created and not completed yet."""
    prompt_tokens: int = 0
    completion_tokens: int = 0

    # -- what a chunk carries of the run --------------------------------------------------
    def _ids(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.thread_id:
            data["threadId"] = self.thread_id
        if self.user:
            data["userId"] = self.user
        return data

    def _turn(self, step: str) -> tuple[str, str, str | None]:
        """The run id, message id and agent name of the parts of ``step``."""
        n = iteration_of(step)
        if n is None:  # a setup or finally step: the network's own message
            return self.run_id, self.run_id, None
        return agent_run_id(self.run_id, n), message_id(self.run_id, n), self.agent if n == self.iteration else None

    def restore(self, chunks: Iterable[Mapping[str, Any]]) -> None:
        """Rebuild what the mapping knows from the run's journaled chunks (``run.started``,
        ``part.created``, ``part.completed``, ``usage.updated``), after a restart."""
        for chunk in chunks:
            event, data = chunk.get("event"), chunk.get("data") or {}
            if event == "run.started" and data.get("scope") == "agent":
                routing = (data.get("metadata") or {}).get("routing") or {}
                self.iteration, self.agent = routing.get("iteration"), data.get("name")
            elif event == "run.started":
                self.network = str(data.get("name") or self.network)
            elif event == "part.created" and data.get("type") == "text":
                self.open_parts.add(str(data.get("partId")))
            elif event == "part.completed":
                self.open_parts.discard(str(data.get("partId")))
            elif event == "usage.updated":
                usage = data.get("usage") or {}
                self.prompt_tokens = int(usage.get("promptTokens") or 0)
                self.completion_tokens = int(usage.get("completionTokens") or 0)

    # -- the mapping ----------------------------------------------------------------------
    def pieces(self, kind: str, payload: Mapping[str, Any], now: datetime | None = None) -> list[Piece]:
        """The chunks (not numbered yet) netrun's event ``kind`` becomes, in order."""
        data = {k: v for k, v in payload.items() if k != "replayed"}
        moment = now or datetime.now(UTC)
        handler = _HANDLERS.get(kind)
        out = handler(self, data, moment) if handler is not None else [(EXTRA_PREFIX + kind, data)]
        return [(event, self._ids(body)) for event, body in out]

    def _run_started(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        self.network = str(d.get("network") or "")
        self.thread_id = d.get("thread_id") or self.thread_id
        self.user = d.get("user") or self.user
        body: dict[str, Any] = {"runId": self.run_id, "scope": "network", "name": self.network, "messageId": self.run_id}
        if self.thread_id:
            body["threadId"] = self.thread_id
        body["metadata"] = {"input": d.get("input"), "definitionHash": d.get("definition_hash")}
        return [("run.started", body)]

    def _routed(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        if d.get("agent") is None:
            return [(EXTRA_PREFIX + events.ROUTED, d)]
        self.routing = {"iteration": d.get("iteration"), "agent": d.get("agent"), "how": d.get("how")}
        return []

    def _agent_started(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        n, name = int(d["iteration"]), str(d["agent"])
        self.iteration, self.agent = n, name
        routing = self.routing if self.routing and self.routing.get("iteration") == n else {"iteration": n, "agent": name}
        self.routing = None
        body = {
            "runId": agent_run_id(self.run_id, n),
            "parentRunId": self.run_id,
            "scope": "agent",
            "name": name,
            "messageId": message_id(self.run_id, n),
            "metadata": {"routing": routing},
        }
        return [("run.started", body)]

    def _text_delta(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        if self.iteration is None or d.get("caller") != self.agent:
            return []  # the routing model's text: no agent's message to put it in
        n = self.iteration
        part, message = text_part(self.run_id, n), message_id(self.run_id, n)
        out: list[Piece] = []
        if part not in self.open_parts:
            self.open_parts.add(part)
            out.append(self._text_created(n))
        out.append(("text.delta", {"partId": part, "messageId": message, "delta": str(d.get("text") or "")}))
        return out

    def _text_created(self, n: int) -> Piece:
        return (
            "part.created",
            {
                "partId": text_part(self.run_id, n),
                "runId": agent_run_id(self.run_id, n),
                "messageId": message_id(self.run_id, n),
                "type": "text",
                "metadata": {"agentName": self.agent or ""},
            },
        )

    def _agent_finished(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        n, name, text = int(d["iteration"]), str(d["agent"]), str(d.get("text") or "")
        self.iteration, self.agent = n, name
        part, message, agent_run = text_part(self.run_id, n), message_id(self.run_id, n), agent_run_id(self.run_id, n)
        out: list[Piece] = []
        if part not in self.open_parts and text:  # nobody watched: the whole text at once, as AgentKit without streaming
            out += [self._text_created(n), ("text.delta", {"partId": part, "messageId": message, "delta": text})]
            self.open_parts.add(part)
        if part in self.open_parts:
            self.open_parts.discard(part)
            body = {"partId": part, "runId": agent_run, "messageId": message, "type": "text", "finalContent": text}
            out.append(("part.completed", body))
        turn = _tokens(d.get("usage") or {})
        self.prompt_tokens += turn["promptTokens"]
        self.completion_tokens += turn["completionTokens"]
        out.append(("usage.updated", {"runId": self.run_id, "usage": self._usage(), "cumulative": True}))
        out.append(("run.completed", {"runId": agent_run, "scope": "agent", "name": name, "messageId": message, "usage": turn}))
        return out

    def _usage(self) -> dict[str, int]:
        p, c = self.prompt_tokens, self.completion_tokens
        return {"promptTokens": p, "completionTokens": c, "totalTokens": p + c}

    def _tool_called(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        step, tool, args = str(d["step"]), str(d["tool"]), d.get("args")
        run, message, agent = self._turn(step)
        part = call_part(self.run_id, step)
        meta = {"toolName": tool, **({"agentName": agent} if agent else {})}
        delta = {"partId": part, "messageId": message, "delta": json.dumps(args, default=str), "toolName": tool}
        return [
            ("part.created", {"partId": part, "runId": run, "messageId": message, "type": "tool-call", "metadata": meta}),
            ("tool_call.arguments.delta", delta),
            (
                "part.completed",
                {"partId": part, "runId": run, "messageId": message, "type": "tool-call", "finalContent": args, "metadata": meta},
            ),
        ]

    def _tool_result(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        step, tool = str(d["step"]), str(d["tool"])
        run, message, agent = self._turn(step)
        part = output_part(self.run_id, step)
        meta = {"toolName": tool, **({"agentName": agent} if agent else {})}
        outcome = {"error": d["error"]} if d.get("error") is not None else {"data": d.get("result")}
        base = {"partId": part, "runId": run, "messageId": message, "type": "tool-output"}
        pieces: list[Piece] = [
            ("part.created", {**base, "metadata": meta}),
            ("tool_call.output.delta", {"partId": part, "messageId": message, "delta": json.dumps(outcome, default=str)}),
            ("part.completed", {**base, "finalContent": outcome, "metadata": meta}),
        ]
        if d.get("state") is not None:  # the call wrote state: the run's state as it is now
            pieces.append(
                (
                    "metadata.updated",
                    {"runId": self.run_id, "metadata": {"state": d["state"], "step": step}, "type": "context_update"},
                )
            )
        return pieces

    def _approval_requested(self, d: dict[str, Any], now: datetime) -> list[Piece]:
        try:
            expires = now + parse_duration(str(d.get("timeout") or "24h"))
        except ValueError:
            expires = now + timedelta(hours=24)
        call = {"partId": call_part(self.run_id, str(d["step"])), "toolName": str(d["tool"]), "toolInput": d.get("args")}
        body = {"requestId": str(d["approval_id"]), "runId": self.run_id, "toolCalls": [call], "expiresAt": _iso(expires)}
        return [("hitl.requested", body)]

    def _approval_resolved(self, d: dict[str, Any], now: datetime) -> list[Piece]:
        resolution = d.get("resolution")
        body: dict[str, Any] = {
            "requestId": str(d["approval_id"]),
            "runId": self.run_id,
            "resolution": "approved" if resolution == "approved" else "denied",
        }
        if resolution == "approved":
            body["approvedTools"] = [str(d["tool"])]
        if resolution == "expired":
            body["reason"] = "expired: no decision arrived within the approval's timeout"
        elif d.get("reason") is not None:
            body["reason"] = _text(d["reason"])
        body["resolvedBy"] = "timeout" if resolution == "expired" else _text(d["by"]) if d.get("by") is not None else "unknown"
        body["resolvedAt"] = _iso(now)
        return [("hitl.resolved", body)]

    def _ended(self, d: dict[str, Any]) -> Piece:
        return (STREAM_ENDED, {"scope": "network", "messageId": self.run_id})

    def _run_completed(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        result = d.get("result") or {}
        usage = _tokens(result.get("usage") or {}) if isinstance(result, dict) else self._usage()
        body = {
            "runId": self.run_id,
            "scope": "network",
            "name": self.network,
            "messageId": self.run_id,
            "result": result,
            "usage": usage,
        }
        return [("run.completed", body), self._ended(d)]

    def _run_failed(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        body = {
            "runId": self.run_id,
            "scope": "network",
            "name": self.network,
            "messageId": self.run_id,
            "error": str(d.get("error") or ""),
            "recoverable": False,
        }
        return [("run.failed", body), self._ended(d)]

    def _run_cancelled(self, d: dict[str, Any], _: datetime) -> list[Piece]:
        body = {
            "runId": self.run_id,
            "scope": "network",
            "name": self.network,
            "reason": "user_cancellation",
            "metadata": {"error": d.get("error")},
        }
        return [("run.interrupted", body), self._ended(d)]


_HANDLERS = {
    events.RUN_STARTED: RunStream._run_started,
    events.ROUTED: RunStream._routed,
    events.AGENT_STARTED: RunStream._agent_started,
    events.TEXT_DELTA: RunStream._text_delta,
    events.AGENT_FINISHED: RunStream._agent_finished,
    events.TOOL_CALLED: RunStream._tool_called,
    events.TOOL_RESULT: RunStream._tool_result,
    events.APPROVAL_REQUESTED: RunStream._approval_requested,
    events.APPROVAL_RESOLVED: RunStream._approval_resolved,
    events.RUN_COMPLETED: RunStream._run_completed,
    events.RUN_FAILED: RunStream._run_failed,
    events.RUN_CANCELLED: RunStream._run_cancelled,
}
"""The kinds with an AgentKit event; the others (``waiting``, ``run.waiting``) go out as
``netrun.<kind>`` with their payload."""


def final_chunks(run_id: str, network: str, status: str, result: Any, error: str | None, timestamp: int) -> list[Chunk]:
    """The end of a finished run made from its record (numbered 0: for a run whose events
    were never journaled, which ended before the journal kept them)."""
    kind = {"completed": events.RUN_COMPLETED, "failed": events.RUN_FAILED}.get(status, events.RUN_CANCELLED)
    payload = {"result": result} if kind == events.RUN_COMPLETED else {"error": error or status}
    pieces = RunStream(run_id, network).pieces(kind, payload)
    return [frame(event, data, 0, timestamp) for event, data in pieces]


__all__ = [
    "EXTRA_PREFIX",
    "NAMESPACE",
    "STREAM_ENDED",
    "Chunk",
    "Piece",
    "RunStream",
    "agent_run_id",
    "call_part",
    "final_chunks",
    "frame",
    "iteration_of",
    "message_id",
    "output_part",
    "step_of",
    "text_part",
]
