"""``GET /threads``, ``GET /threads/{id}``, ``DELETE /threads/{id}``: the conversations a
server's SQLite thread store keeps (a network's, with ``?network=``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException

from .deps import API, server
from .models import ThreadDeleted, ThreadMessages, ThreadPage

if TYPE_CHECKING:
    from ..app import Server

router = APIRouter(dependencies=API, tags=["threads"])


@router.get("/threads", response_model=ThreadPage)
async def threads(
    user: str | None = None,
    network: str | None = None,
    limit: int = 50,
    before: float | None = None,
    held: Server = Depends(server),
) -> dict[str, Any]:
    if not 0 < limit <= 500:
        raise HTTPException(422, "limit must be between 1 and 500")
    store = held.thread_store(network)
    try:
        page = await store.threads(user, limit, before)
    finally:
        await store.close()
    return {"threads": page, "next": {"before": page[-1]["updated"]} if len(page) == limit else None}


async def thread_messages(held: Server, network: str | None, thread_id: str) -> list[dict[str, Any]]:
    """The thread's messages in the store of ``network`` (the server's, with None); 404 for
    a thread the store does not know (one with no messages yet is known)."""
    store = held.thread_store(network)
    try:
        messages: list[dict[str, Any]] = await store.get(thread_id)
        known = bool(messages) or await store.exists(thread_id)
    finally:
        await store.close()
    if not known:
        raise HTTPException(404, f"no thread {thread_id}")
    return messages


@router.get("/threads/{thread_id}", response_model=ThreadMessages)
async def thread(thread_id: str, network: str | None = None, held: Server = Depends(server)) -> dict[str, Any]:
    return {"thread_id": thread_id, "messages": await thread_messages(held, network, thread_id)}


@router.delete("/threads/{thread_id}", response_model=ThreadDeleted)
async def delete_thread(thread_id: str, network: str | None = None, held: Server = Depends(server)) -> dict[str, Any]:
    store = held.thread_store(network)
    try:
        deleted = await store.delete(thread_id)
    finally:
        await store.close()
    if not deleted:
        raise HTTPException(404, f"no thread {thread_id}")
    return {"thread_id": thread_id, "deleted": True}
