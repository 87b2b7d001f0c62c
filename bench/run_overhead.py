"""Benchmark of netrun's orchestration overhead against a plain litellm loop (the floor).

What is measured, and why
-------------------------
netrun adds routing, template rendering, argument checks and a durable journal (a SQLite
commit per step) around each inference and tool call. The question is what that costs
next to the work itself: the same model calls made by a plain script.

1. Sequential: a network of N iterations (N = 10, 50, 200); each iteration is one
   inference (the model asks for one tool call) and that tool call, against the fake
   OpenAI-compatible server with no delay. Printed: netrun's time per iteration, the
   floor script's (litellm.acompletion + the tool in a loop), and their ratio.
   Target: at most 1.5x the floor.
2. Concurrent: 200 runs of a 5-iteration network at once in one process, with a 100 ms
   model delay. Printed: netrun's wall and CPU time, the ideal (5 x 100 ms), two floors of
   200 concurrent plain loops (raw aiohttp requests, the cheapest client there is; and
   litellm), and netrun's peak memory per run. Targets: at most 2x the ideal; at most 2 MB
   peak memory per run. The model here is ``bench/fast_llm.py`` (aiohttp, fixed answers):
   the test fake costs its server about 1 ms of CPU per request, and under 200 concurrent
   runs it, not the client, set the pace (a raw loop took 2.5x the ideal against it). The
   raw floor says what this machine allows: 1,000 requests cost even it about half a
   second of CPU.

Every measurement runs in a fresh subprocess (a clean heap for the memory figure), and the
fake server in another process (so that it does not compete for the GIL).

    .venv/bin/python bench/run_overhead.py            # about 1-2 minutes
    .venv/bin/python bench/run_overhead.py --sizes 10,50 --concurrent 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER = """
import sys, time
from tests.fakes.llm_server import FakeLLM, Reply, ToolCall
server = FakeLLM(fallback=lambda req: Reply(text="step", tool_calls=[ToolCall("step", {"note": "x"})]), delay=float(sys.argv[1]))
server.start()
print(server.base_url, flush=True)
sys.stdin.read()  # until the parent closes the pipe
server.stop()
"""


def network(base: str, iterations: int) -> dict[str, Any]:
    return {
        "name": "overhead",
        # A key from the environment, as real networks hold theirs: each run redacts it.
        "model": {"id": "openai/fake", "api_base": base, "api_key": "${BENCH_API_KEY}"},
        "max_iter": iterations + 1,
        "state": {"count": {"type": "integer", "default": 0}},
        "agents": {"worker": {"description": "works", "system": "Step {{ state.count }} of {{ input }}.", "tools": ["step"]}},
        "router": {"rules": [{"if": f"state.count >= {iterations}", "stop": True}, {"if": "true", "agent": "worker"}]},
        "tools": {"step": {"parameters": {"note": {"type": "string"}}, "state": {"count": "{{ state.count + 1 }}"}}},
    }


TOOL = {
    "type": "function",
    "function": {
        "name": "step",
        "description": "Take a step.",
        "parameters": {"type": "object", "properties": {"note": {"type": "string"}}, "required": ["note"]},
    },
}


async def floor_loop(lib: Any, base: str, iterations: int) -> None:
    """The same calls without netrun: inference, parse the tool call, apply it, repeat."""
    state = {"count": 0}
    history: list[dict[str, Any]] = []
    while state["count"] < iterations:
        messages = [
            {"role": "system", "content": f"Step {state['count']} of {iterations}."},
            {"role": "user", "content": str(iterations)},
            *history,
        ]
        response = await lib.acompletion(
            model="openai/fake", api_base=base, api_key="sk-bench", messages=messages, tools=[TOOL], max_retries=0
        )
        message = response.choices[0].message
        for call in message.tool_calls or []:
            json.loads(call.function.arguments)
            state["count"] += 1
            history.append({"role": "assistant", "content": f"called step -> {state['count']}"})


async def raw_loop(session: Any, base: str, iterations: int) -> None:
    """The floor of floors: the same requests as JSON over one aiohttp session, nothing else."""
    history: list[dict[str, Any]] = []
    for i in range(iterations):
        messages = [{"role": "system", "content": f"Step {i} of {iterations}."}, {"role": "user", "content": str(iterations)}]
        body = {"model": "fake", "messages": messages + history, "tools": [TOOL]}
        async with session.post(f"{base}/chat/completions", json=body) as response:
            reply = await response.json()
        for call in reply["choices"][0]["message"].get("tool_calls") or []:
            json.loads(call["function"]["arguments"])
            history.append({"role": "assistant", "content": f"called step -> {i + 1}"})


async def netrun_runs(base: str, iterations: int, runs: int, db: Path) -> None:
    from netrun.engines.local import Journal
    from netrun.engines.runner import LocalEngine
    from netrun.spec import NetworkSpec

    spec = NetworkSpec.model_validate(network(base, iterations))
    engine = LocalEngine(Journal(db), {"BENCH_API_KEY": os.environ["BENCH_API_KEY"]})
    records = await asyncio.gather(*(engine.start(spec, ROOT, input=str(iterations)) for _ in range(runs)))
    bad = [r for r in records if r.status != "completed" or r.result["state"]["count"] != iterations]
    if bad:
        raise SystemExit(f"{len(bad)} runs did not complete: {bad[0].status} {bad[0].error}")


def child(mode: str, base: str, iterations: int, runs: int) -> None:
    """One measurement, in this fresh process: prints JSON {seconds, maxrss_kb_delta}."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("BENCH_API_KEY", "sk-bench-0123456789abcdef")
    import litellm

    from netrun.models import close_clients
    from netrun.models.litellm_client import _lib

    _lib()  # the same warning filters and settings in both modes

    async def warm() -> None:
        # First calls pay lazy imports (litellm's, and netrun's modules): not what is measured.
        # Both sides get the same one-iteration warm-up.
        await floor_loop(litellm, base, 1)
        if mode == "netrun":
            with tempfile.TemporaryDirectory() as tmp:
                await netrun_runs(base, 1, 1, Path(tmp) / "warm.db")

    async def main() -> float:
        await warm()
        with tempfile.TemporaryDirectory() as tmp:
            baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.perf_counter()
            cpu = time.process_time()
            if mode == "netrun":
                await netrun_runs(base, iterations, runs, Path(tmp) / "runs.db")
            elif mode == "raw":
                import aiohttp

                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                    await asyncio.gather(*(raw_loop(session, base, iterations) for _ in range(runs)))
            else:
                await asyncio.gather(*(floor_loop(litellm, base, iterations) for _ in range(runs)))
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
        await close_clients()
        await litellm.close_litellm_async_clients()
        print(json.dumps({"seconds": seconds, "cpu": cpu, "maxrss_kb_delta": peak, "baseline_kb": baseline}))
        return seconds

    # The process set as `netrun run` and `netrun serve` set theirs (netrun/cli/gc_tuning.py),
    # for every mode alike: the floors' loops get the same collector.
    from netrun.cli.gc_tuning import tune_gc

    tune_gc()
    asyncio.run(main())


def measure(mode: str, base: str, iterations: int, runs: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, base, str(iterations), str(runs)], capture_output=True, text=True, cwd=ROOT
    )
    if out.returncode != 0:
        raise SystemExit(f"{mode} measurement failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


class Server:
    def __init__(self, delay: float, fast: bool = False) -> None:
        command = [str(ROOT / "bench" / "fast_llm.py")] if fast else ["-c", SERVER]
        self.proc = subprocess.Popen(
            [sys.executable, *command, str(delay)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert self.proc.stdout is not None
        self.base = self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,50,200", help="iterations per sequential run (default 10,50,200)")
    parser.add_argument("--concurrent", type=int, default=200, help="concurrent runs (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="sequential measurements per size, best kept (default 3)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, base, iterations, runs = args.child
        child(mode, base, int(iterations), int(runs))
        return

    print(f"netrun orchestration overhead  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    server = Server(delay=0.0)
    try:
        print(f"Sequential: one inference + one tool call per iteration, no model delay (best of {args.repeat})")
        print(f"  {'N':>5} | {'netrun/iter':>12} | {'floor/iter':>11} | {'ratio':>6}")
        print("  " + "-" * 44)
        for n in (int(x) for x in args.sizes.split(",")):
            ours = min(measure("netrun", server.base, n, 1)["seconds"] for _ in range(args.repeat)) / n
            floor = min(measure("floor", server.base, n, 1)["seconds"] for _ in range(args.repeat)) / n
            print(f"  {n:>5} | {ours * 1000:>9.2f} ms | {floor * 1000:>8.2f} ms | {ours / floor:>5.2f}x")
    finally:
        server.close()

    runs, iterations, delay = args.concurrent, 5, 0.1
    server = Server(delay=delay, fast=True)
    try:
        # Interleaved, best of --repeat: the machine is shared, and each figure is a ratio to
        # floors measured in the same minute.
        rounds = [
            {mode: measure(mode, server.base, iterations, runs) for mode in ("netrun", "raw", "floor")}
            for _ in range(args.repeat)
        ]
    finally:
        server.close()
    best = {mode: min((r[mode] for r in rounds), key=lambda m: m["seconds"]) for mode in ("netrun", "raw", "floor")}
    ours, raw, floor = best["netrun"], best["raw"], best["floor"]
    ideal = iterations * delay
    print(
        f"\nConcurrent: {runs} runs x {iterations} iterations in one process, {delay * 1000:.0f} ms model delay (best of {args.repeat})"
    )
    print(f"  ideal (5 x 100 ms)            {ideal:6.2f} s")
    for label, m in (("raw floor (aiohttp loops)", raw), ("litellm floor (plain loops)", floor), ("netrun", ours)):
        print(f"  {label:<29} {m['seconds']:6.2f} s   {m['seconds'] / ideal:4.1f}x the ideal   CPU {m['cpu']:5.2f} s")
    print(f"  netrun / raw floor            {ours['seconds'] / raw['seconds']:6.2f}x wall   {ours['cpu'] / raw['cpu']:.2f}x CPU")
    print(f"  netrun / litellm floor        {ours['seconds'] / floor['seconds']:6.2f}x wall")
    print(
        f"  netrun peak memory per run    {ours['maxrss_kb_delta'] / runs / 1024:6.2f} MB   (litellm floor: {floor['maxrss_kb_delta'] / runs / 1024:.2f} MB)"
    )


if __name__ == "__main__":
    main()
