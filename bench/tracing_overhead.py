"""What tracing costs a run: bench/run_overhead.py's scenarios with OpenTelemetry off, and on
(OTLP/HTTP to the tests' receiver, tests/otlp_receiver.py, in this process), as ratios.

1. Sequential: one run of N iterations (one inference asking for one tool call, then that
   tool, per iteration), no model delay: per-iteration time, best of ``--repeat``.
2. Concurrent: ``--concurrent`` runs of 5 iterations at once with a 100 ms model (the fast
   aiohttp model of bench/fast_llm.py): wall and CPU time.

Each measurement is a fresh subprocess that calls ``netrun.tracing.configure()`` (a no-op
when off) and runs run_overhead.py's ``netrun_runs``; the time to flush the spans at the end
(``tracing.shutdown()``) is reported on its own, since a CLI process pays it once at exit.

    .venv/bin/python bench/tracing_overhead.py                  # about a minute
    .venv/bin/python bench/tracing_overhead.py --sizes 50 --concurrent 50 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _run_overhead() -> ModuleType:
    """bench/run_overhead.py (its scenario and model servers), loaded by path."""
    spec = importlib.util.spec_from_file_location("run_overhead", ROOT / "bench" / "run_overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def child(base: str, iterations: int, runs: int) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("BENCH_API_KEY", "sk-bench-0123456789abcdef")
    from netrun import tracing

    traced = tracing.configure()
    scenario = _run_overhead()

    async def main() -> dict[str, Any]:
        from netrun.models import close_clients

        with tempfile.TemporaryDirectory() as tmp:
            await scenario.netrun_runs(base, 1, 1, Path(tmp) / "warm.db")  # lazy imports, first connections
            start, cpu = time.perf_counter(), time.process_time()
            await scenario.netrun_runs(base, iterations, runs, Path(tmp) / "runs.db")
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        await close_clients()
        return {"seconds": seconds, "cpu": cpu}

    from netrun.cli.gc_tuning import tune_gc

    tune_gc()  # as `netrun serve` sets its process
    measured = asyncio.run(main())
    flushing = time.perf_counter()
    tracing.shutdown()
    measured["flush"] = time.perf_counter() - flushing
    measured["traced"] = traced
    print(json.dumps(measured))


def measure(base: str, iterations: int, runs: int, env: dict[str, str]) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", base, str(iterations), str(runs)]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"measurement failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="50,200", help="iterations of the sequential run (default 50,200)")
    parser.add_argument("--concurrent", type=int, default=200, help="concurrent 5-iteration runs (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per case, best kept (default 3)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    sys.path.insert(0, str(ROOT))
    from tests.otlp_receiver import OtlpReceiver

    scenario = _run_overhead()
    plain = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {"PYTHONPATH": str(ROOT)}
    with OtlpReceiver() as receiver:
        traced = plain | {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "bench"}

        def best(base: str, iterations: int, runs: int, env: dict[str, str]) -> dict[str, Any]:
            return min((measure(base, iterations, runs, env) for _ in range(args.repeat)), key=lambda m: m["seconds"])

        print(f"tracing overhead (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {args.repeat})\n")
        print("Sequential: one inference + one tool call per iteration, no model delay")
        print(f"  {'N':>5} | {'off/iter':>9} | {'on/iter':>9} | {'on/off':>6} | {'flush at exit':>13} | spans")
        server = scenario.Server(0.0)
        try:
            for n in [int(s) for s in args.sizes.split(",") if s]:
                off, before = best(server.base, n, 1, plain), len(receiver.spans)
                on = best(server.base, n, 1, traced)
                assert on["traced"] and not off["traced"]
                spans = (len(receiver.spans) - before) // args.repeat
                print(
                    f"  {n:>5} | {off['seconds'] / n * 1000:>6.2f} ms | {on['seconds'] / n * 1000:>6.2f} ms | "
                    f"{on['seconds'] / off['seconds']:>5.2f}x | {on['flush'] * 1000:>10.0f} ms | {spans}"
                )
        finally:
            server.close()
        runs = args.concurrent
        print(f"\nConcurrent: {runs} runs x 5 iterations, 100 ms model")
        server = scenario.Server(0.1, fast=True)
        try:
            off = best(server.base, 5, runs, plain)
            on = best(server.base, 5, runs, traced)
        finally:
            server.close()
        print(f"  off  {off['seconds']:6.2f} s wall  {off['cpu']:6.2f} s CPU")
        print(f"  on   {on['seconds']:6.2f} s wall  {on['cpu']:6.2f} s CPU   flush at exit {on['flush'] * 1000:.0f} ms")
        print(f"  on/off  {on['seconds'] / off['seconds']:.2f}x wall  {on['cpu'] / off['cpu']:.2f}x CPU")


if __name__ == "__main__":
    main()
