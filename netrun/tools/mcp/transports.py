"""The transports to an MCP server (stdio, SSE, streamable HTTP, websocket), ready to open.

``${ENV}`` references are resolved here, at connect time, and nowhere else: what the
network file says stays as written everywhere a message may quote it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import StdioServerParameters, stdio_client, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from ...envrefs import resolve
from ...spec.mcp import McpServerSpec, StdioServer, WsServer
from .session import Opener
from .traced_calls import TracedCalls

SSE_READ_TIMEOUT = 3600.0
"""Seconds an SSE stream may stay silent; a run may idle while a model thinks or a human answers."""


def opener(spec: McpServerSpec, environ: Mapping[str, str], base_dir: Path, connect_timeout: float) -> Opener:
    """A function opening the transport, with every reference resolved (may raise MissingEnvError).

    The resolved values are among the run's secrets (:class:`~netrun.redact.Secrets` is made
    from every reference of the servers' specs), so a message quoting one is redacted.
    """

    def env(text: str) -> str:
        return resolve(text, environ)

    if isinstance(spec, StdioServer):
        cwd = Path(env(spec.cwd)) if spec.cwd is not None else Path()
        params = StdioServerParameters(
            command=env(spec.command),
            args=[env(a) for a in spec.args],
            env={k: env(v) for k, v in spec.env.items()} or None,
            # Relative to the network file, as every path in it; by default its directory,
            # so `node ./server.js` works wherever netrun was started.
            cwd=str(base_dir / cwd),
        )
        return lambda attempt: stdio_client(params, errlog=attempt.errlog)  # type: ignore[arg-type]
    url = env(spec.url)
    headers = {k: env(v) for k, v in spec.headers.items()}
    if spec.transport == "sse":
        return lambda attempt: sse_client(
            url,
            headers=headers,
            timeout=connect_timeout,
            sse_read_timeout=SSE_READ_TIMEOUT,
            httpx_client_factory=attempt.traced.sse_client_factory,
        )
    if spec.transport == "streamable-http":
        return lambda attempt: _streamable_http(url, headers, connect_timeout, attempt.http_errors, attempt.traced)
    assert isinstance(spec, WsServer)
    return lambda _: _websocket(url, headers, connect_timeout)


@asynccontextmanager
async def _streamable_http(
    url: str, headers: dict[str, str], connect_timeout: float, http_errors: list[str], traced: TracedCalls
) -> AsyncIterator[Any]:
    """``streamable_http_client`` with our headers; we own the HTTP client, so we close it.

    HTTP error statuses are noted in ``http_errors``: the SDK turns a 401 into "Server returned
    an error response", and the status is what a user needs to fix a token.
    """

    async def note(response: httpx2.Response) -> None:
        if response.status_code >= 400 and response.request.method != "DELETE":
            http_errors.append(f"HTTP {response.status_code} {response.reason_phrase}".strip())

    timeout = httpx2.Timeout(connect_timeout, read=SSE_READ_TIMEOUT)
    async with (
        httpx2.AsyncClient(
            headers=headers, timeout=timeout, event_hooks={"request": [traced.inject], "response": [note]}
        ) as client,
        streamable_http_client(url, http_client=client) as (read, write),
    ):
        yield read, write


@asynccontextmanager
async def _websocket(url: str, headers: dict[str, str], connect_timeout: float) -> AsyncIterator[Any]:
    """MCP over a websocket (subprotocol ``mcp``, one JSON-RPC message per text frame).

    mcp 2.x dropped the websocket client that 1.x had (``mcp.client.websocket``), so this is
    a small one on aiohttp, which is already installed as a dependency of litellm. aiohttp
    runs on asyncio only, as netrun does.
    """
    import aiohttp  # only runs that use a websocket server pay for the import

    async def receive(
        ws: aiohttp.ClientWebSocketResponse, read_writer: MemoryObjectSendStream[SessionMessage | Exception]
    ) -> None:
        # Ending (socket closed, or the session gone) closes the read stream: the session
        # then sees the connection end, and pending requests fail with CONNECTION_CLOSED.
        async with read_writer:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue  # aiohttp answers pings itself; close and error frames end the loop
                try:
                    item: SessionMessage | Exception = SessionMessage(
                        types.jsonrpc_message_adapter.validate_json(frame.data, by_name=False)
                    )
                except ValueError as exc:
                    item = exc
                try:
                    await read_writer.send(item)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return

    async def send(
        ws: aiohttp.ClientWebSocketResponse,
        write_reader: MemoryObjectReceiveStream[SessionMessage],
        read_writer: MemoryObjectSendStream[SessionMessage | Exception],
    ) -> None:
        try:
            async with write_reader:
                async for item in write_reader:
                    await ws.send_str(item.message.model_dump_json(by_alias=True, exclude_unset=True))
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            await read_writer.aclose()  # a socket we cannot write to is a lost connection

    timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
    async with (
        aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(connect=connect_timeout)) as http,
        http.ws_connect(url, protocols=("mcp",), timeout=timeout) as ws,
    ):
        # Created once connected, so that a failed connect leaves no stream unclosed.
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
        async with read_writer, read_stream, write_stream, write_reader, anyio.create_task_group() as tg:
            tg.start_soon(receive, ws, read_writer)
            tg.start_soon(send, ws, write_reader, read_writer)
            try:
                yield read_stream, write_stream
            finally:
                tg.cancel_scope.cancel()
