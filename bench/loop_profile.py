"""netrun's own cost per iteration (loop and journal), with a scripted model: no HTTP.

The network is bench/run_overhead.py's (one inference asking for one tool call, then that
tool, per iteration; a state rule stops it), with its model replaced by a replies file, so
what is timed is netrun's loop, its journal and its redaction alone, as the process's CPU
time. Each measurement runs in a fresh process; per-iteration cost is (T(N) - T(10)) /
(N - 10), best of ``--repeat``.

Then 200 concurrent runs of 5 iterations in one process, with a model that answers after
100 ms (an in-process client, no HTTP): wall time against the ideal 0.5 s, and peak memory
per run (the growth of the process's maximum RSS, divided by the runs).

    .venv/bin/python bench/loop_profile.py                 # N = 50 and 200, best of 3
    .venv/bin/python bench/loop_profile.py --profile 200   # cProfile of one run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_overhead import network  # noqa: E402 - after the path is set


def scripted(folder: Path, iterations: int) -> dict[str, Any]:
    """run_overhead's network on a replies file of ``iterations`` tool calls."""
    replies = {"worker": [{"tool_calls": [{"name": "step", "args": {"note": "x"}}]}] * iterations}
    (folder / "replies.yaml").write_text(yaml.safe_dump(replies), encoding="utf-8")
    spec = network("http://127.0.0.1:9/v1", iterations)
    spec["model"] = "scripted/replies.yaml"
    return spec


async def one_run(iterations: int, folder: Path, db: Path) -> float:
    from netrun.engines.local import Journal
    from netrun.engines.runner import LocalEngine
    from netrun.spec import NetworkSpec

    spec = NetworkSpec.model_validate(scripted(folder, iterations))
    engine = LocalEngine(Journal(db), {"BENCH_API_KEY": "sk-bench-0123456789abcdef"}, stream=False)
    # Process CPU time, not wall time: on a shared machine other processes stretch the wall
    # clock, while a scripted run is all CPU (its journal's writes are system time).
    start = time.process_time()
    record = await engine.start(spec, folder, input=str(iterations))
    seconds = time.process_time() - start
    if record.status != "completed" or record.result is None or record.result["state"]["count"] != iterations:
        raise SystemExit(f"the run did not complete: {record.status} {record.error}")
    return seconds


class DelayedModel:
    """Answers every call after ``delay`` seconds with one call of the tool ``step``."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def complete(self, request: Any, on_text: Any = None) -> Any:
        from netrun.runtime.model import Completion, ToolRequest

        await asyncio.sleep(self.delay)
        return Completion(tool_calls=[ToolRequest(f"call_{request.turn}", "step", '{"note": "x"}')], model="delayed")


async def concurrent_runs(runs: int, iterations: int, delay: float, db: Path) -> float:
    from netrun.engines.local import Journal
    from netrun.engines.runner import LocalEngine
    from netrun.spec import NetworkSpec

    # run_overhead's network as it is, its ${BENCH_API_KEY} a secret every run redacts.
    spec = NetworkSpec.model_validate(network("http://127.0.0.1:9/v1", iterations))
    model = DelayedModel(delay)
    engine = LocalEngine(Journal(db), {"BENCH_API_KEY": "sk-bench-0123456789abcdef"}, stream=False, models=lambda _: model)
    start = time.perf_counter()
    records = await asyncio.gather(*(engine.start(spec, ROOT, input=str(iterations)) for _ in range(runs)))
    seconds = time.perf_counter() - start
    bad = [r for r in records if r.status != "completed" or r.result is None or r.result["state"]["count"] != iterations]
    if bad:
        raise SystemExit(f"{len(bad)} runs did not complete: {bad[0].status} {bad[0].error}")
    return seconds


def concurrent_child(runs: int) -> None:
    import resource

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(concurrent_runs(1, 1, 0.0, Path(tmp) / "warm.db"))
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        seconds = asyncio.run(concurrent_runs(runs, 5, 0.1, Path(tmp) / "runs.db"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
    print(json.dumps({"seconds": seconds, "kb_per_run": peak / runs}))


def child(iterations: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        asyncio.run(one_run(1, folder, folder / "warm.db"))  # lazy imports: not what is measured
        if profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            asyncio.run(one_run(iterations, folder, folder / "runs.db"))
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(60)
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            return
        print(json.dumps({"seconds": asyncio.run(one_run(iterations, folder, folder / "runs.db"))}))


def measure(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"measurement failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="50,200")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrent", type=int, default=200, help="concurrent 5-iteration runs (0: none)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrent-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.concurrent_child is not None:
        concurrent_child(args.concurrent_child)
        return
    if args.child is not None or args.profile is not None:
        child(args.child if args.child is not None else args.profile, profile=args.profile is not None)
        return
    base = min(measure("--child", "10")["seconds"] for _ in range(args.repeat))
    print(f"netrun loop, scripted model, CPU time (python {sys.version.split()[0]}); best of {args.repeat}")
    print(f"  {'N':>5} | {'T(N)':>9} | {'per iter (T(N)-T(10))/(N-10)':>30} | {'T(N)/N':>9}")
    for n in (int(x) for x in args.sizes.split(",")):
        total = min(measure("--child", str(n))["seconds"] for _ in range(args.repeat))
        print(f"  {n:>5} | {total * 1000:>6.0f} ms | {(total - base) / (n - 10) * 1000:>27.2f} ms | {total / n * 1000:>6.2f} ms")
    if args.concurrent:
        found = min((measure("--concurrent-child", str(args.concurrent)) for _ in range(args.repeat)), key=lambda m: m["seconds"])
        print(f"\n{args.concurrent} concurrent runs x 5 iterations, a 100 ms in-process model (ideal 0.50 s)")
        print(
            f"  wall {found['seconds']:.2f} s ({found['seconds'] / 0.5:.2f}x the ideal), peak memory {found['kb_per_run'] / 1024:.2f} MB per run"
        )


if __name__ == "__main__":
    main()
