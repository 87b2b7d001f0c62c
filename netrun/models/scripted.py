"""Offline models: scripted replies, and recording a real run's replies to replay them.

A replies file lists, per caller (an agent name, or ``router`` for the routing agent), the
replies of its calls in order::

    dba:
      - text: Use a read-only role for reporting.
        tool_calls:
          - {name: save_dba_answer, args: {answer: Use a read-only role.}}
    router:
      - tool_calls: [{name: select_agent, args: {agent: dba}}]

``model: scripted/replies.yaml`` in a network (path relative to the network file) uses it
for that model; ``netrun run --replay FILE`` uses it for every call, and ``--record FILE``
writes one from a real run. Replies are picked by caller and call number, so a replay
fails clearly, naming the call, when the run asks for something the file does not hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..redact import Secrets
from ..runtime.model import Completion, ModelClient, ModelError, Request, ToolRequest


def load_replies(path: Path) -> dict[str, list[dict[str, Any]]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ModelError(f"cannot read the replies file {path}: {reason}", retriable=False) from None
    except yaml.YAMLError as exc:
        raise ModelError(f"the replies file {path} is not valid YAML: {exc}", retriable=False) from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ModelError(f"the replies file {path} must map each agent name (or 'router') to a list of replies", retriable=False)
    for caller, replies in data.items():
        for i, reply in enumerate(replies):
            problem = _reply_problem(reply)
            if problem:
                raise ModelError(f"the replies file {path}: {caller} reply #{i + 1} {problem}", retriable=False)
    return data


def _reply_problem(reply: Any) -> str | None:
    if not isinstance(reply, dict):
        return "must be a mapping with 'text' and/or 'tool_calls'"
    unknown = set(reply) - {"text", "tool_calls", "tools"}
    if unknown:
        return f"has unknown keys: {', '.join(sorted(unknown))} (allowed: text, tool_calls, tools)"
    calls = reply.get("tool_calls") or []
    if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls):
        return "has tool_calls that are not a list of {name, args}"
    return None


def _tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class ScriptedClient:
    """Answers from a replies file; never touches the network."""

    def __init__(self, replies: dict[str, list[dict[str, Any]]], source: str, prefix: str = "") -> None:
        self.replies = replies
        self.source = source
        self.prefix = prefix
        """Prepended to callers: a child run's replies are kept apart from its parent's."""
        self.used: dict[str, int] = {}
        """Per caller, how many of its replies the calls so far reached (``netrun test``
        reports scripted replies a run never asked for)."""

    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        caller = self.prefix + request.caller
        script = self.replies.get(caller, [])
        if request.turn >= len(script):
            raise ModelError(
                f"{self.source} has no reply for {caller} call #{request.turn + 1} "
                f"(it holds {len(script)} for {caller}); the run took a different path than the script",
                retriable=False,
            )
        self.used[caller] = max(self.used.get(caller, 0), request.turn + 1)
        reply = script[request.turn] or {}
        offered = [t["function"]["name"] for t in request.tools]
        recorded = reply.get("tools")
        if recorded is not None and sorted(recorded) != sorted(offered):
            raise ModelError(
                f"replay mismatch at {request.caller} call #{request.turn + 1}: recorded with tools "
                f"{', '.join(sorted(recorded)) or '(none)'}, now offered {', '.join(sorted(offered)) or '(none)'}",
                retriable=False,
            )
        calls = []
        for i, call in enumerate(reply.get("tool_calls") or []):
            name = call.get("name", "")
            if name not in offered:
                raise ModelError(
                    f"{self.source}: {request.caller} call #{request.turn + 1} calls tool '{name}', "
                    f"which is not offered (offered: {', '.join(offered) or 'none'})",
                    retriable=False,
                )
            args = call.get("args", {})
            arguments = args if isinstance(args, str) else json.dumps(args)
            calls.append(ToolRequest(call.get("id") or f"call_{request.caller}_{request.turn}_{i}", name, arguments))
        text = str(reply.get("text") or "")
        if text and on_text is not None:
            on_text(text)
        prompt = sum(_tokens(str(m.get("content") or "")) for m in request.messages)
        return Completion(
            text=text,
            tool_calls=calls,
            prompt_tokens=prompt,
            completion_tokens=_tokens(text) + 8 * len(calls),
            model=f"scripted:{self.source}",
        )


class RecordingClient:
    """Passes calls to a real client and writes their replies to a replies file as it goes.

    A completion reaches this client before the run redacts it, and the file outlives the
    run (it is committed, as test fixtures are): each reply is redacted against ``secrets``
    (the run's, :meth:`Secrets.for_definition`) before it is written."""

    def __init__(
        self,
        inner: ModelClient,
        path: Path,
        replies: dict[str, list[dict[str, Any]]],
        prefix: str = "",
        secrets: Secrets | None = None,
    ) -> None:
        self.inner = inner
        self.path = path
        self.replies = replies
        """Shared by every recording client of a run and its child runs: one file holds all."""
        self.prefix = prefix
        self.secrets = secrets if secrets is not None else Secrets()

    async def complete(self, request: Request, on_text: Callable[[str], None] | None = None) -> Completion:
        result = await self.inner.complete(request, on_text)
        reply: dict[str, Any] = {"text": result.text} if result.text else {}
        if result.tool_calls:
            reply["tool_calls"] = [{"name": c.name, "args": _args(c.arguments)} for c in result.tool_calls]
        reply["tools"] = [t["function"]["name"] for t in request.tools]
        calls = self.replies.setdefault(self.prefix + request.caller, [])
        calls.extend({} for _ in range(request.turn + 1 - len(calls)))
        calls[request.turn] = self.secrets.redact_value(reply)
        self.path.write_text(
            "# Recorded by `netrun run --record`; replay with --replay.\n"
            + yaml.safe_dump(self.replies, sort_keys=False, allow_unicode=True),
            encoding="utf-8",
        )
        return result


def _args(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except (ValueError, RecursionError):
        return arguments  # kept as the model wrote it, so the replay sends the same text
