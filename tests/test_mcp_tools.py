"""MCP servers as tool sources, against real servers.

stdio: the npm reference server ``server-everything`` and PyPI's ``mcp-server-time``;
streamable HTTP and SSE: ``server-everything`` started once per module on a free port
(it listens on all interfaces; we only ever connect to 127.0.0.1); websocket: a small
aiohttp + MCPServer server (no published MCP server speaks websocket offline here).
The npm servers come from ``npm ci`` at the repository root (see package.json).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import TypeAdapter

from netrun.spec.mcp import McpServerSpec
from netrun.tools.mcp import McpServerMissingError, McpServers, function_name

from .fakes.server_thread import free_port

REPO = Path(__file__).resolve().parents[1]
EVERYTHING = REPO / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
TIME_SERVER = Path(sys.executable).parent / "mcp-server-time"
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

needs_node = pytest.mark.skipif(
    not EVERYTHING.exists() or shutil.which("node") is None,
    reason="server-everything is not installed: run `npm ci` at the repository root",
)
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts child processes through /proc")
pytestmark = pytest.mark.anyio

_SPEC = TypeAdapter(McpServerSpec)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # netrun runs on asyncio (litellm, aiohttp)


def spec(**fields: Any) -> Any:
    return _SPEC.validate_python(fields)


def everything(**fields: Any) -> Any:
    return spec(transport="stdio", command="node", args=[str(EVERYTHING), "stdio"], **fields)


def servers(specs: dict[str, Any], environ: dict[str, str] | None = None) -> McpServers:
    return McpServers(specs, environ={"PATH": os.environ["PATH"], **(environ or {})}, base_dir=REPO)


def _our_children() -> Iterator[tuple[int, str, bytes]]:
    """(pid, state, command line) of this process's children, from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid():
            yield int(entry.name), state, cmdline


def children(marker: str) -> list[int]:
    """Pids of this process's live children whose command line contains ``marker``."""
    return [pid for pid, state, cmdline in _our_children() if state != "Z" and marker.encode() in cmdline]


def zombies() -> list[int]:
    """Children that exited and were never reaped."""
    return [pid for pid, state, _ in _our_children() if state == "Z"]


# -- servers started once per module ---------------------------------------------------------


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def serve(argv: list[str], port: int) -> Iterator[None]:
    """Run a server process listening on ``port`` until the block ends."""
    proc = subprocess.Popen(
        argv,
        env={**os.environ, "PORT": str(port)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    port = free_port()
    with serve(["node", str(EVERYTHING), "streamableHttp"], port):
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
def sse_url() -> Iterator[str]:
    port = free_port()
    with serve(["node", str(EVERYTHING), "sse"], port):
        yield f"http://127.0.0.1:{port}/sse"


WS_SERVER = '''
"""A websocket MCP server: aiohttp serves /mcp (subprotocol "mcp"), one MCPServer session per socket."""
import sys

import anyio
from aiohttp import WSMsgType, web
from mcp import types
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage

server = MCPServer("ws-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def handle(request):
    ws = web.WebSocketResponse(protocols=("mcp",))
    await ws.prepare(request)
    in_send, in_recv = anyio.create_memory_object_stream(16)
    out_send, out_recv = anyio.create_memory_object_stream(16)

    async def pump_in():
        async with in_send:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    await in_send.send(SessionMessage(types.jsonrpc_message_adapter.validate_json(frame.data)))

    async def pump_out():
        async with out_recv:
            async for msg in out_recv:
                await ws.send_str(msg.message.model_dump_json(by_alias=True, exclude_unset=True))

    low = server._lowlevel_server
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_in)
        tg.start_soon(pump_out)
        await low.run(in_recv, out_send, low.create_initialization_options())
        tg.cancel_scope.cancel()
    return ws


app = web.Application()
app.router.add_get("/mcp", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
'''


@pytest.fixture(scope="module")
def ws_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    script = tmp_path_factory.mktemp("ws") / "ws_server.py"
    script.write_text(textwrap.dedent(WS_SERVER))
    port = free_port()
    with serve([sys.executable, str(script), str(port)], port):
        yield f"ws://127.0.0.1:{port}/mcp"


# -- names --------------------------------------------------------------------------------------


def test_function_names_are_namespaced_valid_and_stable() -> None:
    assert function_name("ev", "get-sum") == "ev__get-sum"
    odd = function_name("files", "fs.read/file")
    assert FUNCTION_NAME.match(odd) and odd.startswith("files__fs_read_file_")
    long = function_name("server", "x" * 80)
    assert FUNCTION_NAME.match(long) and len(long) == 64
    assert long == function_name("server", "x" * 80)  # the same in every run
    assert function_name("server", "x" * 80) != function_name("server", "x" * 81)
    assert function_name("a", "b.c") != function_name("a", "b/c")


async def test_names_stay_unique_across_servers() -> None:
    # 'a__b' + 'c' and 'a' + 'b__c' would both be 'a__b__c'.
    m = McpServers({}, environ={}, base_dir=REPO)
    first, second = m._claim_name("a__b", "c"), m._claim_name("a", "b__c")
    assert first == "a__b__c" and second != first and FUNCTION_NAME.match(second)
    assert m._claim_name("a", "b__c") == second


# -- stdio: server-everything ------------------------------------------------------------------------


@needs_node
async def test_stdio_lists_namespaced_tools_with_their_schemas() -> None:
    async with servers({"ev": everything()}) as m:
        tools = await m.tools_for("ev", "*")
        by_name = {t.name: t for t in tools}
        assert {"ev__echo", "ev__get-sum", "ev__get-env"} <= set(by_name)
        assert all(FUNCTION_NAME.match(name) for name in by_name)
        echo = by_name["ev__echo"]
        assert (echo.server, echo.remote_name) == ("ev", "echo")
        assert echo.description and echo.parameters["type"] == "object"
        assert echo.parameters["properties"]["message"]["type"] == "string"
        assert await m.tools_for("ev", "echo") == [echo]  # `ev.echo` resolves to the same object
        assert m.connection("ev").sessions_opened == 1


@needs_node
async def test_include_and_exclude() -> None:
    async with servers({"ev": everything(include=["echo", "get-sum", "get-env"], exclude=["get-env"])}) as m:
        assert [t.name for t in await m.tools_for("ev")] == ["ev__echo", "ev__get-sum"]
        [excluded] = await m.tools_for("ev", "get-env")
        outcome = await excluded.call({})
        assert outcome.error and "not offered" in outcome.error and "include/exclude" in outcome.error
        [missing] = await m.tools_for("ev", "no-such-tool")
        assert "has no tool 'no-such-tool'" in (await missing.call({})).error
        tools = await m.resolve(["ev.get-sum", "ev.*", "ev"])  # an agent's references, de-duplicated
        assert [t.name for t in tools] == ["ev__get-sum", "ev__echo"]
        assert await m.resolve([]) == []


@needs_node
async def test_calls_and_result_shapes() -> None:
    async with servers({"ev": everything()}) as m:
        tools = {t.remote_name: t for t in await m.tools_for("ev")}
        assert (await tools["echo"].call({"message": "hi"})).to_json() == {"result": "Echo: hi"}
        assert (await tools["get-sum"].call({"a": 2, "b": 3})).result == "The sum of 2 and 3 is 5."
        structured = await tools["get-structured-content"].call({"location": "Chicago"})
        assert structured.error is None and set(structured.result) == {"temperature", "conditions", "humidity"}
        image = await tools["get-tiny-image"].call({})
        assert image.error is None and "[image: image/png, " in image.result and "iVBOR" not in image.result


@needs_node
async def test_bad_arguments_and_unknown_tools_are_error_outcomes() -> None:
    async with servers({"ev": everything()}) as m:
        [get_sum] = await m.tools_for("ev", "get-sum")
        bad = await get_sum.call({"a": 1, "b": "two"})
        assert bad.result is None and "expected number" in bad.error
        assert "must be a JSON object" in (await get_sum.call(["not", "an", "object"])).error  # type: ignore[arg-type]
        unknown = await m.connection("ev").call("no-such-tool", {})
        assert "not found" in unknown.error
        assert (await get_sum.call({"a": 1, "b": 2})).result == "The sum of 1 and 2 is 3."  # still usable


@needs_node
async def test_a_slow_call_times_out_and_the_session_survives() -> None:
    async with servers({"ev": everything(timeout="300ms")}) as m:
        tools = {t.remote_name: t for t in await m.tools_for("ev")}
        started = time.monotonic()
        slow = await tools["trigger-long-running-operation"].call({"duration": 1, "steps": 1})
        assert time.monotonic() - started < 2
        assert slow.error == "tool 'trigger-long-running-operation' of MCP server 'ev' (stdio: node) did not answer within 300ms"
        assert (await tools["echo"].call({"message": "after"})).result == "Echo: after"
        assert m.connection("ev").sessions_opened == 1


@needs_node
@needs_proc
async def test_one_connection_and_one_process_for_many_calls() -> None:
    async with servers({"ev": everything()}) as m:
        [echo] = await m.tools_for("ev", "echo")
        for i in range(30):
            assert (await echo.call({"message": str(i)})).result == f"Echo: {i}"
        results: list[str] = []

        async def call(i: int) -> None:
            results.append((await echo.call({"message": f"p{i}"})).result)

        async with anyio.create_task_group() as tg:  # parallel tool calls share the session
            for i in range(20):
                tg.start_soon(call, i)
        assert sorted(results) == sorted(f"Echo: p{i}" for i in range(20))
        assert m.connection("ev").sessions_opened == 1
        assert len(children(str(EVERYTHING))) == 1
    assert children(str(EVERYTHING)) == [] and zombies() == []


@needs_node
@needs_proc
async def test_a_crashed_stdio_server_is_restarted_once_then_reported_down() -> None:
    async with servers({"ev": everything()}) as m:
        [echo] = await m.tools_for("ev", "echo")
        assert (await echo.call({"message": "1"})).result == "Echo: 1"
        [first] = children(str(EVERYTHING))
        os.kill(first, signal.SIGKILL)
        assert (await echo.call({"message": "2"})).result == "Echo: 2"  # restarted, call retried
        [second] = children(str(EVERYTHING))
        assert second != first and m.connection("ev").sessions_opened == 2
        os.kill(second, signal.SIGKILL)
        down = await echo.call({"message": "3"})
        assert down.result is None and down.error.startswith("MCP server 'ev' (stdio: node) is down:")
        assert "Starting default (STDIO) server" in down.error  # its stderr, quoted
        assert (await echo.call({"message": "4"})).error == down.error
        assert m.error("ev") == down.error and m.connection("ev").sessions_opened == 2
        assert children(str(EVERYTHING)) == []
    assert zombies() == []


@needs_node
@needs_proc

# -- stdio: mcp-server-time (PyPI) -------------------------------------------------------------------


async def test_time_server_over_stdio() -> None:
    time_server = spec(transport="stdio", command=str(TIME_SERVER), args=["--local-timezone", "UTC"])
    async with servers({"time": time_server}) as m:
        [now] = await m.tools_for("time", "get_current_time")
        assert now.name == "time__get_current_time"
        outcome = await now.call({"timezone": "UTC"})
        assert outcome.error is None and outcome.result["timezone"] == "UTC" and outcome.result["datetime"]
        bad = await now.call({"timezone": "Not/AZone"})
        assert bad.result is None and bad.error


# -- HTTP transports and websocket ------------------------------------------------------------------


@needs_node
@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_http_transports(transport: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("http_url" if transport == "streamable-http" else "sse_url")
    async with servers({"remote": spec(transport=transport, url=url)}) as m:
        tools = {t.remote_name: t for t in await m.tools_for("remote")}
        assert "remote__echo" in {t.name for t in tools.values()}
        for i in range(5):
            assert (await tools["echo"].call({"message": f"{transport} {i}"})).result == f"Echo: {transport} {i}"
        assert "expected number" in (await tools["get-sum"].call({"a": "x", "b": 1})).error
        assert m.connection("remote").sessions_opened == 1


@needs_node
@pytest.mark.parametrize(("transport", "mode", "path"), [("streamable-http", "streamableHttp", "mcp"), ("sse", "sse", "sse")])
async def test_a_restarted_http_server_is_reconnected_once(transport: str, mode: str, path: str) -> None:
    port = free_port()
    argv = ["node", str(EVERYTHING), mode]
    with contextlib.ExitStack() as processes:
        first = processes.enter_context(contextlib.ExitStack())
        first.enter_context(serve(argv, port))
        async with servers({"remote": spec(transport=transport, url=f"http://127.0.0.1:{port}/{path}", timeout="5s")}) as m:
            [echo] = await m.tools_for("remote", "echo")
            assert (await echo.call({"message": "1"})).result == "Echo: 1"
            first.close()  # the server goes away and comes back: our session is unknown to it
            processes.enter_context(serve(argv, port))
            assert (await echo.call({"message": "2"})).result == "Echo: 2"
            assert m.connection("remote").sessions_opened == 2


async def test_websocket_transport(ws_url: str) -> None:
    async with servers({"calc": spec(transport="ws", url=ws_url)}) as m:
        [add] = await m.tools_for("calc")
        assert (add.name, add.description) == ("calc__add", "Add two integers.")
        assert (await add.call({"a": 2, "b": 3})).result == {"result": 5}
        assert "valid integer" in (await add.call({"a": "x", "b": 3})).error


# -- failures -------------------------------------------------------------------------------------


async def test_connection_failures_are_error_outcomes() -> None:
    port = free_port()  # closed: nothing listens on it
    specs = {
        "nocmd": spec(transport="stdio", command="netrun-no-such-command"),
        "exits": spec(transport="stdio", command="sh", args=["-c", "echo 'cannot start: bad config' >&2; exit 3"]),
        "http": spec(transport="streamable-http", url=f"http://127.0.0.1:{port}/mcp"),
        "sse": spec(transport="sse", url=f"http://127.0.0.1:{port}/sse"),
        "ws": spec(transport="ws", url=f"ws://127.0.0.1:{port}/mcp"),
        "unset": spec(transport="stdio", command="node", env={"TOKEN": "${NETRUN_TEST_UNSET}"}),
    }
    started = time.monotonic()
    async with servers(specs) as m:
        errors = await m.connect()
        assert errors == {name: m.error(name) for name in specs}
        assert errors["nocmd"] == (
            "MCP server 'nocmd' (stdio: netrun-no-such-command) is unavailable: "
            "FileNotFoundError: [Errno 2] No such file or directory: 'netrun-no-such-command'"
        )
        assert errors["exits"].startswith("MCP server 'exits' (stdio: sh) is unavailable: ")
        assert errors["exits"].endswith("its stderr ends with: cannot start: bad config")
        assert errors["http"].startswith(
            f"MCP server 'http' (streamable-http: http://127.0.0.1:{port}/mcp) is unavailable: ConnectError"
        )
        assert errors["sse"].startswith(f"MCP server 'sse' (sse: http://127.0.0.1:{port}/sse) is unavailable: ConnectError")
        assert errors["ws"].startswith(f"MCP server 'ws' (ws: ws://127.0.0.1:{port}/mcp) is unavailable: ClientConnectorError")
        assert (
            errors["unset"]
            == "MCP server 'unset' (stdio: node) is unavailable: environment variable NETRUN_TEST_UNSET is not set"
        )
        for name in specs:
            if name == "nocmd":  # a program that is not installed fails the run (tests/test_retries.py)
                with pytest.raises(McpServerMissingError, match="the command 'netrun-no-such-command' was not found"):
                    await m.tools_for(name, "*")
                continue
            assert await m.tools_for(name, "*") == []
            [tool] = await m.tools_for(name, "echo")  # an explicit reference still gives a tool...
            assert tool.name == f"{name}__echo"
            outcome = await tool.call({"message": "x"})  # ...whose calls say why it cannot run
            assert outcome.result is None and outcome.error == errors[name]
    assert time.monotonic() - started < 5


async def test_connect_timeout_and_closing_while_connecting() -> None:
    silent = spec(transport="stdio", command="sh", args=["-c", "cat > /dev/null"], connect_timeout="300ms")
    async with servers({"silent": silent, "also": silent}) as m:
        [tool] = await m.tools_for("silent", "anything")
        assert (await tool.call({})).error == (
            "MCP server 'silent' (stdio: sh) is unavailable: no answer within 300ms (connect_timeout) while connecting and listing tools"
        )
        async with anyio.create_task_group() as tg:  # a caller gives up mid-connect; closing still cleans up
            tg.start_soon(m.connect, "also")
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
    if Path("/proc/self/stat").exists():
        assert children("cat > /dev/null") == [] and zombies() == []


@needs_node
async def test_env_references_reach_the_server_and_stay_out_of_messages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # paths resolve against the network file's directory, not the current one
    environ = {"NETRUN_TEST_SECRET": "s3cret-value-42", "NETRUN_TEST_PACKAGE": "server-everything"}
    specs = {
        "ev": spec(
            transport="stdio",
            command="node",
            args=["dist/index.js", "stdio"],
            cwd="node_modules/@modelcontextprotocol/${NETRUN_TEST_PACKAGE}",
            env={"API_TOKEN": "${NETRUN_TEST_SECRET}"},
        ),
        "leaky": spec(
            transport="stdio",
            command="sh",
            args=["-c", 'echo "token is $API_TOKEN" >&2; exit 1'],
            env={"API_TOKEN": "${NETRUN_TEST_SECRET}"},
        ),
    }
    async with servers(specs, environ) as m:
        [get_env] = await m.tools_for("ev", "get-env")
        assert '"API_TOKEN": "s3cret-value-42"' in (await get_env.call({})).result  # resolved at connect time
        assert await m.tools_for("leaky") == []
        error = m.error("leaky")
        assert error == (
            "MCP server 'leaky' (stdio: sh) is unavailable: the process exited or closed its output before answering; "
            "its stderr ends with: token is ***"
        )


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_headers_are_resolved_and_secrets_never_leak(transport: str) -> None:
    """A real HTTP listener records what arrives and refuses it with a 401."""
    received: list[bytes] = []

    async def handle(stream: Any) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            received.append(data)
            await stream.send(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    environ = {"NETRUN_TEST_TOKEN": "tok-9f8e7d6c", "NETRUN_TEST_KEY": "key-1a2b3c4d"}
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    url = f"http://127.0.0.1:{port}/mcp?key=${{NETRUN_TEST_KEY}}"
    api = spec(transport=transport, url=url, headers={"Authorization": "Bearer ${NETRUN_TEST_TOKEN}"})
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        async with servers({"api": api}, environ) as m:
            [tool] = await m.tools_for("api", "search")
            outcome = await tool.call({"q": "x"})
        tg.cancel_scope.cancel()
    assert received and b"\r\nauthorization: bearer tok-9f8e7d6c\r\n" in received[0].lower()
    assert b" /mcp?key=key-1a2b3c4d " in received[0]
    assert outcome.error.startswith(
        f"MCP server 'api' ({transport}: http://127.0.0.1:{port}/mcp?key=${{NETRUN_TEST_KEY}}) is unavailable: "
    )
    assert "401" in outcome.error  # the status a user needs to fix the token
    assert "tok-9f8e7d6c" not in outcome.error and "key-1a2b3c4d" not in outcome.error
    if transport == "sse":  # httpx quotes the URL it requested, secret included: redacted
        assert "/mcp?key=***" in outcome.error


@needs_node
async def test_tools_after_close_answer_with_an_error() -> None:
    async with servers({"ev": everything()}) as m:
        [echo] = await m.tools_for("ev", "echo")
    outcome = await echo.call({"message": "late"})
    assert outcome.error == "MCP server 'ev' (stdio: node) is closed: the run's MCP connections were shut down"
