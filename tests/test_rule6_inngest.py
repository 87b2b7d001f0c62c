"""Durability rule 6 on Inngest: a call of a tool that is not idempotent, whose answer Inngest
never got, is not repeated by Inngest's retry of its step; the model is told it may have run.

Real parts: ``netrun serve`` on uvicorn, driven by the stand-in Inngest executor (the wire
protocol of inngest-py), the fake OpenAI-compatible model over HTTP, real commands. Between
the executor and the app sits a real HTTP proxy that drops the connection instead of passing
on the answer of the call that ran the tool (the command's effect is done, its outcome lost:
what a crash or a network cut after the effect looks like to Inngest), so Inngest retries
that step.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .fakes.inngest_executor import StandInExecutor
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .test_serve_inngest import serve

CALL = "turn.0.a.tool.0.deploy"
"""The step id of the model's one tool call."""


class LosingProxy:
    """Forwards the executor's calls to the app; the first answer that reports the step
    ``lose`` as run is dropped (the connection closes with no response)."""

    def __init__(self, lose: str) -> None:
        self.target = ""
        """The app's URL (set once it is started)."""
        self.lose = hashlib.sha1(lose.encode()).hexdigest()
        self.lost = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                res = httpx.post(proxy.target + self.path, content=body, headers=headers, timeout=60)
                ops = res.json() if res.status_code == 206 else []
                if not proxy.lost and any(op.get("id") == proxy.lose and op.get("op") == "StepRun" for op in ops):
                    proxy.lost += 1
                    self.close_connection = True  # the effect happened; its answer never arrives
                    return
                self.send_response(res.status_code)
                for key, value in res.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(res.content)))
                self.end_headers()
                self.wfile.write(res.content)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LosingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_lost_answer_of_a_command_is_not_repeated_on_inngest_unless_idempotent(tmp_path: Path, idempotent: bool) -> None:
    effects = tmp_path / "effects.txt"
    with StandInExecutor() as executor, FakeLLM([Reply(tool_calls=[ToolCall("deploy", {})]), Reply(text="done")]) as llm:
        spec = {
            "name": "r6",
            "model": {"id": "openai/fake", "api_base": llm.base_url, "api_key": "${FAKE_LLM_KEY}"},
            "max_iter": 2,
            "function": {"retries": 2},
            "agents": {"a": {"description": "deploys", "system": "Deploy.", "tools": ["deploy"]}},
            "router": {"rules": [{"if": "call_count >= 1", "stop": True}, {"if": "true", "agent": "a"}]},
            "tools": {"deploy": {"command": {"argv": ["/bin/sh", "-c", f"echo x >> {effects}"], "idempotent": idempotent}}},
        }
        (tmp_path / "r6.yaml").write_text(yaml.safe_dump(spec))
        with LosingProxy(CALL) as proxy:
            # The app registers the proxy as where Inngest reaches it (however often it syncs).
            server = serve(tmp_path, executor, INNGEST_SERVE_ORIGIN=proxy.url)
            proxy.target = server.url
            try:
                executor.sync(f"{server.url}/api/inngest")
                assert executor.functions["netrun-r6"]["steps"]["step"]["runtime"]["url"].startswith(proxy.url)
                run = executor.run("netrun-r6", {"name": "netrun/r6.run", "data": {"input": "go"}})
                lost = proxy.lost
            finally:
                server.stop()
    assert lost == 1, (run.status, run.error)  # the call's answer was lost once, and Inngest retried the step
    assert run.status == "completed", run.error
    (call,) = run.output["results"][0]["tool_calls"]  # what the model was given as the call's result
    if idempotent:  # safe to repeat: it ran again
        assert effects.read_text() == "x\nx\n"
        assert call["error"] is None
    else:
        assert effects.read_text() == "x\n"  # not repeated
        assert "was interrupted" in call["error"] and "may or may not have run" in call["error"]
