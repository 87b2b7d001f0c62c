"""The endpoints of AgentKit's React client (``@inngest/use-agent``), under ``/agentkit/{network}``.

``DefaultHttpTransport`` from ``@inngest/use-agent`` 0.4.0 talks to them unchanged, configured
only with URLs (``baseURL: ".../agentkit/NETWORK"``; README "Using AgentKit's React client").
The network is the path's: one transport per network, so a thread is never continued by a
network that did not start it. Each endpoint, with the request the transport sends:

- ``POST /chat`` (sendMessage) ``{userMessage: {id, content, state?}, threadId, userId?,
  channelKey?, history?}``: starts a run of the network on the thread, input the message,
  initial state ``userMessage.state``; 202 ``{success, threadId, runId, status}``. The
  thread's history is the server's (its store); the client's ``history`` is not read.
- ``POST /realtime/token`` (getRealtimeToken) ``{userId?, channelKey?, threadId?}``: a
  short-lived stream token for the stream use-agent subscribes to, the user's
  (``userId``, else ``channelKey``) or else the thread's: ``{token, expires (ms since the
  epoch), channel, scope, url, cursor}``; the connection module (``GET
  /agentkit/connection.js``) opens ``url`` with it, after ``cursor`` (the stream's position at
  the request) unless it resumes elsewhere; ``key`` and ``topics`` too, what the
  ``useAgents`` hook subscribes with (:mod:`.agentkit_realtime`, a WebSocket).
- ``GET /threads?limit&offset|cursorTimestamp&cursorId&userId|channelKey`` (fetchThreads):
  ``{threads: [{id, title, messageCount, createdAt, updatedAt, lastMessageAt}], hasMore,
  total, nextCursorTimestamp, nextCursorId}``, newest first. ``total`` counts the threads
  seen so far (a lower bound while ``hasMore``).
- ``GET /threads/{threadId}`` (fetchHistory): ``{messages}`` in AgentKit's stored-message
  shape (``{message_id, type: user|agent, content | data.output[], createdAt}``).
- ``POST /threads`` (createThread) ``{userId?, channelKey?, title?}``: ``{threadId, title}``.
- ``DELETE /threads/{threadId}`` (deleteThread): 204.
- ``POST /approve-tool`` (approveToolCall) ``{toolCallId, threadId?, action, reason?}``: the
  decision on the pending approval of that tool call (``toolCallId`` is the ``partId`` of
  its tool-call part in the stream, also accepted: the approval id), delivered as
  ``POST /events`` delivers it (both engines); 204.
- ``POST /chat/cancel`` (cancelMessage) ``{threadId}``: cancels the thread's runs that have
  not ended (``POST /runs/{id}/cancel``); 204.

The hook's stream, a WebSocket, is :mod:`.agentkit_realtime`; the shapes of threads and
history are in :mod:`.agentkit_shapes`. Refusals carry the
reason in ``detail`` and in ``message``, the key the transport shows.
Bodies are read as JSON whatever their content type: a transport given its own ``headers``
sends no ``Content-Type: application/json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...history.store import new_thread_id
from ...runtime.agentkit_stream import call_part
from ...runtime.state import state_problems
from ...tracing import incoming
from ..guard import unprocessable
from ..stream_tokens import expiry, issue
from . import agentkit_realtime
from .agentkit_shapes import NEW_TITLE, history_messages, thread_entry
from .deps import API, server
from .events import deliver_event
from .handlers import field_name
from .models import EventRequest, RunRequest
from .runs import cancel_run
from .threads import thread_messages

if TYPE_CHECKING:
    from ..app import Server
    from ..catalog import Version

CONNECTION_JS = Path(__file__).resolve().parent.parent / "static" / "agentkit-connection.js"
"""The connection module (``IConnection`` over netrun's Server-Sent Events), shipped in the package."""

TOKEN_TTL = 600.0
"""Seconds a stream token from ``/realtime/token`` opens its stream for (the connection asks again after)."""

MAX_PAGE = 500


class _Route(APIRoute):
    """Adds ``message`` beside ``detail`` to every refusal: ``DefaultHttpTransport`` shows
    ``message`` (or ``error.message``) and otherwise only the status line."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await handle(request)
            except HTTPException as exc:
                return JSONResponse({"detail": exc.detail, "message": str(exc.detail)}, exc.status_code, headers=exc.headers)
            if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
                try:
                    body = json.loads(bytes(response.body))
                except ValueError:
                    return response
                if isinstance(body, dict) and isinstance(body.get("detail"), str) and "message" not in body:
                    return JSONResponse({**body, "message": body["detail"]}, response.status_code)
            return response

        return handler


router = APIRouter(tags=["agentkit"])
_api = APIRouter(prefix="/agentkit/{network}", dependencies=API, route_class=_Route)


@router.get("/agentkit/connection.js", include_in_schema=False)
async def connection_module() -> FileResponse:
    """The connection module: public code, like a page's script (it holds no secret)."""
    return FileResponse(CONNECTION_JS, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"})


# -- request bodies --------------------------------------------------------------------------------


class _Body(BaseModel):
    # The transport merges its configured ``body`` defaults into every request: unknown keys are the app's.
    model_config = ConfigDict(extra="ignore")


class UserMessage(_Body):
    id: str | None = None
    content: str = Field(min_length=1)
    role: Literal["user"] = "user"
    state: dict[str, Any] | None = None


class SendMessage(_Body):
    userMessage: UserMessage  # noqa: N815 - AgentKit's field names
    threadId: str | None = Field(default=None, min_length=1, max_length=200)  # noqa: N815
    userId: str | None = None  # noqa: N815
    channelKey: str | None = None  # noqa: N815


class TokenRequest(_Body):
    userId: str | None = Field(default=None, min_length=1)  # noqa: N815
    channelKey: str | None = Field(default=None, min_length=1)  # noqa: N815
    threadId: str | None = Field(default=None, min_length=1)  # noqa: N815


class CreateThread(_Body):
    userId: str | None = None  # noqa: N815
    channelKey: str | None = None  # noqa: N815
    title: str | None = None


class Approve(_Body):
    toolCallId: str = Field(min_length=1)  # noqa: N815
    # Null from the useAgents hook while it shows its fallback thread: the call is found by its id then.
    threadId: str | None = Field(default=None, min_length=1)  # noqa: N815
    action: Literal["approve", "deny"]
    reason: str | None = None


class Cancel(_Body):
    threadId: str = Field(min_length=1)  # noqa: N815


B = TypeVar("B", bound=BaseModel)


async def _read(request: Request, model: type[B]) -> B:
    """The body as ``model``, parsed as JSON whatever the content type; a 422 naming the field."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise HTTPException(422, "body: not JSON (send the JSON the transport sends)") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [(field_name(("body", *e["loc"])), str(e["msg"])) for e in exc.errors()]
        raise HTTPException(422, "; ".join(f"{f}: {m}" for f, m in problems)) from None


def _network(held: Server, name: str) -> Version:
    version = held.catalog.get(name)
    if version is None:
        served = ", ".join(sorted(held.catalog.current)) or "none"
        raise HTTPException(404, f"no network named '{name}'; served: {served}")
    return version


def _user(user_id: str | None, channel_key: str | None) -> str | None:
    """The user a thread is filed under: use-agent's ``userId``, else its ``channelKey``."""
    return user_id or channel_key or None


# -- sending, streaming, approving, cancelling -------------------------------------------------------


@_api.post("/chat", status_code=202, response_model=None)
async def send_message(network: str, request: Request, held: Server = Depends(server)) -> dict[str, Any] | Response:
    body = await _read(request, SendMessage)
    version = _network(held, network)
    state = body.userMessage.state or {}
    problems = state_problems(version.spec.state, state)
    if problems:
        return unprocessable((f"body.userMessage.state.{path}", why) for _, path, why in problems)
    run = RunRequest(
        input=body.userMessage.content, state=state, thread_id=body.threadId, user=_user(body.userId, body.channelKey)
    )
    started = await held.start_run(version, run, incoming(request.headers))  # a valid traceparent: the run's parent
    if isinstance(started, Response):
        return started
    return {"success": True, "threadId": started["thread_id"], "runId": started["run_id"], "status": started["status"]}


@_api.post("/realtime/token")
async def realtime_token(network: str, request: Request, held: Server = Depends(server)) -> dict[str, Any]:
    body = await _read(request, TokenRequest)
    _network(held, network)
    user = _user(body.userId, body.channelKey)
    if user is not None:
        scope: Literal["user", "thread"] = "user"
        key, url = user, f"/users/{quote(user, safe='')}/events"
    elif body.threadId is not None:
        scope, key, url = "thread", body.threadId, f"/threads/{quote(body.threadId, safe='')}/events"
    else:
        raise HTTPException(422, "body: give userId or channelKey (the user's stream), or threadId (the thread's)")
    try:
        token = issue(held.stream_secret, scope=scope, key=key, ttl=TOKEN_TTL)
    except ValueError as exc:  # a key too long to be a user or a thread
        raise HTTPException(422, f"body.{'userId' if scope == 'user' else 'threadId'}: {exc}") from None
    expires = (expiry(token) or int(time.time() + TOKEN_TTL)) * 1000
    # The stream's cursor now: a client that connects later (after a refused token, a
    # drop) still starts here, and misses nothing that followed its request.
    cursor = held.events.cursor()
    return {
        "token": token,
        "expires": expires,
        "channel": key,
        "scope": scope,
        "url": url,
        "cursor": str(cursor),
        # What @inngest/realtime subscribes with (the useAgents hook): see .agentkit_realtime.
        "key": agentkit_realtime.subscription_key(token, cursor),
        "topics": [agentkit_realtime.TOPIC],
    }


def _thread_runs(held: Server, network: str, thread_id: str | None) -> list[Any]:
    """The runs of ``network`` on the thread that have not ended, oldest first (on any
    thread for None). A run on Inngest has its thread in the record of its stream, not in
    its options."""

    def thread_of(record: Any) -> str | None:
        if record.options.get("thread_id"):
            return str(record.options["thread_id"])
        stream = held.journal.stream_of(record.id)
        return stream[1] if stream is not None else None

    return [r for r in held.journal.unfinished(network) if thread_id is None or thread_of(r) == thread_id]


def _names(run_id: str, approval: dict[str, Any]) -> set[str]:
    """What a client may call a pending approval's tool call: the ``partId`` of its tool-call
    part in the stream, or the approval's id."""
    return {approval["id"], call_part(run_id, approval["step"])}


@_api.post("/approve-tool", status_code=204, response_class=Response)
async def approve_tool(network: str, request: Request, held: Server = Depends(server)) -> Response:
    body = await _read(request, Approve)
    _network(held, network)
    pending: list[tuple[str, dict[str, Any]]] = []
    for record in _thread_runs(held, network, body.threadId):
        full = held.journal.run(record.id, approvals=True)
        pending += [(record.id, a) for a in (full.approvals if full else [])]
    found = next(((rid, a) for rid, a in pending if body.toolCallId in _names(rid, a)), None)
    if found is None:
        listed = ", ".join(f"{a['tool']} (partId {sorted(_names(rid, a) - {a['id']})[0]})" for rid, a in pending)
        raise HTTPException(
            404,
            f"network '{network}' has no tool call {body.toolCallId} waiting for approval"
            f"{f' on thread {body.threadId}' if body.threadId else ''}; "
            f"waiting: {listed or 'none'}",
        )
    run_id, approval = found
    data = {"approved": body.action == "approve", "approval_id": approval["id"], "tool": approval["tool"]}
    if body.reason is not None:
        data["reason"] = body.reason
    answered = await deliver_event(EventRequest(name=approval["event"], data=data, run_id=run_id), held)
    if isinstance(answered, Response):
        return answered
    return Response(status_code=204)


@_api.post("/chat/cancel", status_code=204, response_class=Response)
async def cancel_message(network: str, request: Request, held: Server = Depends(server)) -> Response:
    body = await _read(request, Cancel)
    _network(held, network)
    runs = _thread_runs(held, network, body.threadId)
    if not runs:
        raise HTTPException(404, f"thread {body.threadId} of network '{network}' has no run that has not ended")
    for record in runs:
        try:
            await cancel_run(held, record.id, "cancelled by the user (AgentKit's cancelMessage)")
        except HTTPException as exc:
            if exc.status_code != 409:  # 409: it ended meanwhile
                raise
    return Response(status_code=204)


# -- threads ------------------------------------------------------------------------------------------


@_api.get("/threads")
async def fetch_threads(
    network: str,
    limit: int = 20,
    offset: int = 0,
    cursorTimestamp: str | None = None,  # noqa: N803 - AgentKit's query names
    cursorId: str | None = None,  # noqa: N803
    userId: str | None = None,  # noqa: N803
    channelKey: str | None = None,  # noqa: N803
    held: Server = Depends(server),
) -> dict[str, Any]:
    _network(held, network)
    if not 0 < limit <= MAX_PAGE:
        raise HTTPException(422, f"query.limit: must be between 1 and {MAX_PAGE}, not {limit}")
    if not 0 <= offset <= 10 * MAX_PAGE:
        raise HTTPException(422, f"query.offset: must be between 0 and {10 * MAX_PAGE}, not {offset}")
    before = None
    if cursorTimestamp is not None:
        try:
            before = float(cursorTimestamp)
        except ValueError:
            raise HTTPException(
                422, "query.cursorTimestamp: must be the nextCursorTimestamp of the previous page (a number)"
            ) from None
        offset = 0
    store = held.thread_store(network)
    try:
        rows = await store.threads(_user(userId, channelKey), offset + limit + 1, before)
        page = rows[offset : offset + limit]
        threads = [thread_entry(row, await store.get(row["thread_id"])) for row in page]
    finally:
        await store.close()
    more = len(rows) > offset + limit
    last = page[-1] if page and more else None
    return {
        "threads": threads,
        "hasMore": more,
        "total": offset + len(page) + (1 if more else 0),
        "nextCursorTimestamp": repr(last["updated"]) if last else None,
        "nextCursorId": last["thread_id"] if last else None,
    }


@_api.get("/threads/{thread_id}")
async def fetch_history(network: str, thread_id: str, held: Server = Depends(server)) -> dict[str, Any]:
    _network(held, network)
    return {"threadId": thread_id, "messages": history_messages(await thread_messages(held, network, thread_id))}


@_api.post("/threads", status_code=201)
async def create_thread(network: str, request: Request, held: Server = Depends(server)) -> dict[str, Any]:
    body = await _read(request, CreateThread)
    _network(held, network)
    thread_id = new_thread_id()
    store = held.thread_store(network)
    try:
        await store.create(thread_id, _user(body.userId, body.channelKey))
    finally:
        await store.close()
    # netrun's threads keep no title: a thread is titled by its first message when listed.
    return {"threadId": thread_id, "title": body.title or NEW_TITLE}


@_api.delete("/threads/{thread_id}", status_code=204, response_class=Response)
async def delete_thread(network: str, thread_id: str, held: Server = Depends(server)) -> Response:
    _network(held, network)
    store = held.thread_store(network)
    try:
        deleted = await store.delete(thread_id)
    finally:
        await store.close()
    if not deleted:
        raise HTTPException(404, f"no thread {thread_id}")
    return Response(status_code=204)


router.include_router(_api)
router.include_router(agentkit_realtime.router)
