"""An MCP tool's result is capped at its server's ``max_bytes`` when it is made.

A small Python MCP server (stdio, written here) answers with as many bytes as asked, as
text, as structured content, or as an error. A result over the limit reaches the model as
its first ``max_bytes`` bytes and a note saying it was cut, so a huge result is never kept
whole (not in the step output, not in the events, not in the messages).
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from netrun.spec.mcp import McpServerSpec
from netrun.tools.mcp import McpServers

pytestmark = pytest.mark.anyio

SERVER = '''
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("big")


@server.tool(structured_output=False)
def text(n: int) -> str:
    """n bytes of text."""
    return "é" * (n // 2)


@server.tool()
def rows(n: int) -> dict[str, list[str]]:
    """Structured content of about n bytes."""
    return {"rows": ["x" * 98 for _ in range(n // 100)]}


@server.tool(structured_output=False)
def fail(n: int) -> str:
    """An error of n bytes."""
    raise ToolError("e" * n)  # its message reaches the client


server.run("stdio")
'''


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "big_server.py"
    path.write_text(textwrap.dedent(SERVER))
    return path


def big(script: Path, **fields: Any) -> McpServers:
    spec = TypeAdapter(McpServerSpec).validate_python(
        {"transport": "stdio", "command": sys.executable, "args": [str(script)], **fields}
    )
    return McpServers({"big": spec}, environ={"PATH": os.environ["PATH"]}, base_dir=script.parent)


async def test_a_result_over_max_bytes_is_cut_with_a_note(script: Path) -> None:
    async with big(script, max_bytes=10_000) as servers:
        tools = {t.remote_name: t for t in await servers.tools_for("big")}
        small = await tools["text"].call({"n": 2_000})
        assert small.error is None and small.result == "é" * 1_000  # under the limit: whole, no note
        cut = await tools["text"].call({"n": 200_000})
        assert cut.error is None
        head, note = cut.result.split("\n[truncated by netrun:")
        assert head == "é" * 5_000 and len(head.encode()) == 10_000
        assert "200000 bytes" in note and "10000 bytes" in note and "max_bytes" in note
        structured = await tools["rows"].call({"n": 100_000})
        assert isinstance(structured.result, str), "structured content over the limit comes as cut JSON text"
        assert structured.result.startswith('{"rows": ["xxx') and "[truncated by netrun:" in structured.result
        assert len(structured.result.encode()) < 10_400
        assert isinstance((await tools["rows"].call({"n": 1_000})).result, dict)  # small: as the server sent it
        failed = await tools["fail"].call({"n": 100_000})
        assert failed.result is None and failed.error is not None
        assert len(failed.error.encode()) < 10_400 and "[truncated by netrun:" in failed.error


async def test_the_default_limit_is_one_megabyte_like_http_tools(script: Path) -> None:
    async with big(script) as servers:
        [text] = await servers.tools_for("big", "text")
        cut = await text.call({"n": 3_000_000})
        assert len(cut.result.encode()) < 1_000_400 and cut.result.endswith("Ask the tool for less.]")
        assert "3000000 bytes" in cut.result and "1000000 bytes" in cut.result
        assert len(cut.to_json()["result"].encode()) < 1_000_400  # what is journaled and emitted
