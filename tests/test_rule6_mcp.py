"""Durability rule 6 for MCP tools: a ``netrun run`` killed with -9 while an MCP tool call is
in flight, then resumed. A tool the server does not annotate ``idempotentHint`` or
``readOnlyHint`` (and the network does not declare ``idempotent``) is not called again, and
the model is told the call may have run; an annotated one is called again.

Real parts: a stdio MCP server (the ``mcp`` package's MCPServer) whose ``effect`` tool
appends to ``effect.txt`` and then waits while ``block`` exists; the fake model over HTTP;
real ``netrun run`` processes (tests/interrupted.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .interrupted import kill_during_effect_then_resume

SERVER = '''
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("effects")
HINTS = ToolAnnotations(idempotentHint=True) if {idempotent} else ToolAnnotations(destructiveHint=False)


@server.tool(structured_output=False, annotations=HINTS)
def effect() -> str:
    """Append to effect.txt, then wait while `block` exists."""
    with open("effect.txt", "a") as out:
        out.write("ran\\n")
    while Path("block").exists():
        time.sleep(0.05)
    return "effect done"


server.run("stdio")
'''

NETWORK = """\
name: mcp6
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 2
agents:
  a: {{description: d, system: go, tools: [first, fx.effect]}}
router: {{rules: [{{if: "call_count >= 2", stop: true}}, {{if: "true", agent: a}}]}}
tools:
  first: {{command: {{argv: [/bin/sh, -c, "echo ran >> first.txt; echo first done"], idempotent: true}}}}
mcp_servers:
  fx: {{transport: stdio, command: "{python}", args: [server.py]}}
"""

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


@pytest.mark.parametrize("idempotent", [False, True])
def test_kill_9_during_an_mcp_call_then_resume(tmp_path: Path, idempotent: bool) -> None:
    (tmp_path / "server.py").write_text(SERVER.replace("{idempotent}", str(idempotent)))
    (tmp_path / "block").touch()
    script = [Reply(tool_calls=[ToolCall("first", {}), ToolCall("fx__effect", {})]), Reply(text="done")]
    with FakeLLM(script) as llm:
        (tmp_path / "mcp6.yaml").write_text(NETWORK.format(base=llm.base_url, python=sys.executable))
        result, requests = kill_during_effect_then_resume(tmp_path, llm, "mcp6.yaml", script, ENV)

    assert result["status"] == "completed", result
    assert (tmp_path / "first.txt").read_text() == "ran\n"  # a completed step is never repeated
    call = result["result"]["results"][0]["tool_calls"][1]
    told = [m["content"] for m in requests[-1]["messages"] if m["role"] == "tool"]
    if idempotent:
        assert (tmp_path / "effect.txt").read_text() == "ran\nran\n"  # called again: the server says it is safe
        assert call["error"] is None, call
    else:
        assert (tmp_path / "effect.txt").read_text() == "ran\n"  # never called twice
        assert call["error"].startswith("the call of 'fx__effect' was interrupted"), call
        assert any("may or may not have run" in text for text in told)  # and the model is told
