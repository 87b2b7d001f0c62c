"""Per-call cost of the model clients against the fake OpenAI-compatible server (its own
process): raw httpx (the floor), netrun's direct ``OpenAIClient``, and ``LitellmClient``;
plain and streamed, with a short prompt and with a 60-message history. Also the import
time of the direct client's module. Prints milliseconds per call and ratios to raw httpx.

    .venv/bin/python bench/model_clients.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def history(n: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "count"}]
    for i in range(n // 3):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "bump", "arguments": '{"by": 1}'}}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": json.dumps({"n": i})},
            {"role": "user", "content": "again"},
        ]
    return messages


async def raw(base: str, messages: list[dict[str, Any]], calls: int, stream: bool) -> float:
    import httpx

    async with httpx.AsyncClient() as client:
        body = {"model": "fake", "messages": messages, "stream": stream}
        started = time.perf_counter()
        for _ in range(calls):
            if stream:
                async with client.stream("POST", f"{base}/chat/completions", json=body) as r:
                    async for _line in r.aiter_lines():
                        pass
            else:
                (await client.post(f"{base}/chat/completions", json=body)).json()
        return time.perf_counter() - started


async def netrun_client(kind: str, base: str, messages: list[dict[str, Any]], calls: int, stream: bool) -> float:
    from netrun.models import close_clients
    from netrun.runtime.model import Request
    from netrun.spec.model import ModelSpec

    spec = ModelSpec(id="openai/fake", api_base=base, api_key="${FAKE_KEY}")
    if kind == "litellm":
        from netrun.models.litellm_client import LitellmClient

        client: Any = LitellmClient(spec, {"FAKE_KEY": "sk-bench"})
    else:
        from netrun.models.openai_client import OpenAIClient

        client = OpenAIClient(spec, {"FAKE_KEY": "sk-bench"})
    request = Request("helper", 0, messages, [])
    on_text = (lambda _t: None) if stream else None
    await client.complete(request, on_text)  # warm: imports, connections
    started = time.perf_counter()
    for _ in range(calls):
        await client.complete(request, on_text)
    spent = time.perf_counter() - started
    await close_clients()
    return spent


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import netrun.models.openai_client; print(time.perf_counter() - t)"
    best = min(
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout)
        for _ in range(5)
    )
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.llm_server", "--port", "0", "--fallback-text", "ok then"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base = server.stdout.readline().split()[-1]
        print(f"import netrun.models.openai_client: {import_time() * 1000:.0f} ms (best of 5, cold process)")
        for label, messages in (("short prompt", history(0)), ("60-message history", history(60))):
            for stream in (False, True):
                floor = min(asyncio.run(raw(base, messages, args.calls, stream)) for _ in range(3))
                row = [f"{label:>18} {'stream' if stream else 'json':>6}: raw httpx {floor / args.calls * 1000:.2f} ms"]
                for kind in ("openai", "litellm"):
                    spent = min(asyncio.run(netrun_client(kind, base, messages, args.calls, stream)) for _ in range(3))
                    row.append(f"{kind} {spent / args.calls * 1000:.2f} ms ({spent / floor:.2f}x)")
                print(" | ".join(row), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
