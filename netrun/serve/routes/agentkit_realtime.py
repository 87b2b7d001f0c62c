"""``/v1/realtime/connect``: the WebSocket that ``@inngest/realtime`` subscribes to, so the
``useAgents`` hook of ``@inngest/use-agent`` 0.4.0 streams from ``netrun serve`` unchanged.

The hook does not use the connection it is given (:mod:`.agentkit` serves one for apps that
drive it themselves): it calls ``useInngestSubscription`` with the token
``getRealtimeToken`` returned, and ``@inngest/realtime`` opens
``{INNGEST_BASE_URL}/v1/realtime/connect?token={key}``. With ``INNGEST_BASE_URL`` (or
``NEXT_PUBLIC_INNGEST_BASE_URL``, ``VITE_INNGEST_BASE_URL``) naming ``netrun serve`` it
lands here. ``/agentkit/{network}/realtime/token`` answers ``key`` (the stream token),
``channel`` and ``topics`` as Inngest's ``getSubscriptionToken`` does; the key is the
stream token and the stream's cursor when it was given (:func:`subscription_key`).

What is sent is Inngest Realtime's message (``Realtime.messageSchema`` of
``@inngest/realtime`` 0.4): ``{kind: "data", channel, topic, data: <AgentKit chunk>,
run_id, created_at}`` per chunk of the user's (or thread's) stream after the key's cursor;
use-agent unwraps ``data`` and routes the chunk by ``data.threadId``. The key
is a stream token (:mod:`netrun.serve.stream_tokens`): it opens only the stream it names,
and a refused one closes the socket with code 1008 (policy violation) and the reason,
before anything is sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..stream_tokens import verify

if TYPE_CHECKING:
    from ..app import Server

TOPIC = "agent_stream"
"""The one topic the chunks are published on (a token's ``topics``)."""

router = APIRouter(tags=["agentkit"])


def subscription_key(token: str, cursor: int) -> str:
    """The ``key`` a client subscribes with: the stream token and the stream's cursor when
    the token was given, so a socket opened later (or opened again after a drop, with the
    same key) starts there and misses nothing; what it sees twice, use-agent drops (it
    de-duplicates chunks by their ids)."""
    return f"{token}~{cursor}"


def parse_key(key: str) -> tuple[str, int] | None:
    """The token and the cursor of a subscription key; None for a malformed one."""
    token, tilde, cursor = key.rpartition("~")
    if not tilde or not cursor.isdigit() or len(cursor) > 18:
        return None
    return token, int(cursor)


def claims(token: str) -> tuple[Literal["thread", "user"], str] | None:
    """The stream a token names (scope and key), read from its payload, unverified: the
    caller verifies it for that very stream. None for a token of another kind (a run's) or
    not a token at all. The payload is ``[version, scope, key, expiry]`` (stream_tokens)."""
    payload, _, _ = token.partition(".")
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(fields, list) or len(fields) != 4 or fields[1] not in ("thread", "user") or not isinstance(fields[2], str):
        return None
    return fields[1], fields[2]


def message(scope_key: str, chunk: dict[str, Any]) -> str:
    """A chunk as the data message of Inngest Realtime."""
    given = chunk.get("data")
    data: dict[str, Any] = given if isinstance(given, dict) else {}
    stamp = chunk.get("timestamp")
    moment = datetime.fromtimestamp(stamp / 1000, UTC) if isinstance(stamp, int | float) else datetime.now(UTC)
    body = {
        "kind": "data",
        "channel": scope_key,
        "topic": TOPIC,
        "data": chunk,
        "created_at": moment.isoformat().replace("+00:00", "Z"),
        **({"run_id": data["runId"]} if isinstance(data.get("runId"), str) else {}),
    }
    return json.dumps(body, default=str)


@router.websocket("/v1/realtime/connect")
async def realtime(websocket: WebSocket) -> None:
    held: Server = websocket.app.state.netrun
    given = websocket.query_params.get("token") or ""
    parsed = parse_key(given) if len(given) <= 1100 else None
    token, after = parsed if parsed is not None else ("", 0)
    named = claims(token) if token else None
    if named is None or not verify(held.stream_secret, token, scope=named[0], key=named[1]):
        # Accepted, then closed with the reason: a browser shows a refused handshake only as a failure.
        await websocket.accept()
        await websocket.close(code=1008, reason="not a valid stream token (expired, or not this server's): ask for a new one")
        return
    scope, key = named
    await websocket.accept()

    async def send() -> None:
        async for item in held.events.follow(scope, key, after=after):
            await websocket.send_text(message(key, item.chunk))

    async def receive() -> None:  # the client's pings and its close
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    sending, receiving = asyncio.create_task(send()), asyncio.create_task(receive())
    try:
        await asyncio.wait({sending, receiving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, receiving):
            task.cancel()
        await asyncio.gather(sending, receiving, return_exceptions=True)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # closed by the client already
            await websocket.close()
