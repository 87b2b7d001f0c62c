"""What a run opens around its loop (:func:`netrun.engines.execution.execute`): the models
its event picks (:func:`picked_models`), its thread with its store (:func:`thread_of`), its
MCP servers (:func:`mcp_servers`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from ..compile import Program
from ..history.store import open_store
from ..history.thread import Thread
from ..runtime.render import Renderer, RenderError
from ..spec import scopes


def picked_models(program: Program, event: Mapping[str, Any]) -> dict[str, str | None]:
    """The model ids the run's event picks for the program's choices (``model.from``): None
    where the template cannot render (the event has no such field: the default)."""
    picked: dict[str, str | None] = {}
    renderer = Renderer()
    for key, chosen in program.choices.items():
        try:
            picked[key] = renderer.render(chosen.spec.from_, scopes.variables(scopes.MODEL_FROM, {"event": dict(event)}))
        except RenderError:
            picked[key] = None
    return picked


@contextlib.asynccontextmanager
async def thread_of(
    options: Mapping[str, Any], program: Program, data_dir: Path, environ: Mapping[str, str]
) -> AsyncIterator[Thread | None]:
    """The run's thread (its store open for the run), or None for a run outside any."""
    thread_id = options.get("thread_id")
    if not thread_id:
        yield None
        return
    store = open_store(program.spec.history, data_dir, environ)
    try:
        given = options.get("history")
        yield Thread(str(thread_id), store, options.get("user"), list(given) if isinstance(given, list) else None)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def mcp_servers(program: Program, environ: Mapping[str, str]) -> AsyncIterator[Any]:
    """The run's MCP servers; each connects the first time one of its tools is needed (a
    replayed turn connects to nothing), and all close when the run stops."""
    if not any(agent.mcp_refs for agent in program.agents.values()):
        yield None
        return
    from ..tools.mcp import McpServers  # the mcp SDK is imported only by runs that use it

    async with McpServers(program.spec.mcp_servers, environ=environ, base_dir=program.base_dir) as servers:
        yield servers
