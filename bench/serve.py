"""Benchmark of `netrun serve`: the Inngest protocol's cost per step, and a load run.

What is measured, and why
-------------------------
1. Through the Inngest protocol: a 20-iteration network (each iteration one inference that
   asks for one tool call, and that tool call: 40 steps, plus the step that pins the
   definition) runs in a `netrun serve` process (INNGEST_DEV mode), driven over HTTP by the
   stand-in executor of the tests (tests/fakes/inngest_executor.py), which plays Inngest:
   one request per step, each replaying the memoized steps before it. Printed: the number
   of requests (target: at most steps + 1), the inferences the model server received
   (target: exactly 20: nothing asked again on replay), the total time, and the overhead
   per step against the same network run by the same server on its local engine.
2. Load: 200 runs started at once through `POST /networks/{name}/runs` on the local engine
   (a 3-iteration network, 50 ms model delay), each followed through its SSE stream.
   Printed: throughput, p50 and p99 run latency (from the POST to `run.completed`), and
   lost runs (target: none; 200 of 200 complete).

The fake model server runs in its own process, `netrun serve` in another.

    .venv/bin/python bench/serve.py              # about a minute
    .venv/bin/python bench/serve.py --runs 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_overhead import Server as ModelServer  # noqa: E402 - after the path is set
from bench.run_overhead import network as overhead_network  # noqa: E402
from tests.fakes.server_thread import free_port  # noqa: E402

NETRUN = str(Path(sys.executable).parent / "netrun")


def model_count(base: str) -> int:
    """How many requests the fake model server received."""
    return int(httpx.get(base.removesuffix("/v1") + "/_log").json()["count"])


def network(name: str, base: str, iterations: int) -> dict[str, Any]:
    """run_overhead's network (one inference and one tool call per iteration) as a file:
    the key must be an ${ENV} reference there."""
    return {
        **overhead_network(base, iterations),
        "name": name,
        "model": {"id": "openai/fake", "api_base": base, "api_key": "${BENCH_KEY}"},
    }


class NetrunServer:
    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [NETRUN, "serve", str(folder), "--port", str(self.port), "--data-dir", str(folder / "data"), "--no-watch"],
            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "BENCH_KEY": "sk-bench", **env},
            stdout=subprocess.DEVNULL,
            stderr=(folder / "serve.log").open("w"),
            text=True,
        )
        self.log = folder / "serve.log"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"netrun serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("netrun serve did not start")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)
        problems = [line for line in self.log.read_text().splitlines() if "error" in line.lower() or "Traceback" in line]
        if problems:
            print("   netrun serve logged:", *problems[:10], sep="\n     ")


async def follow(http: httpx.AsyncClient, url: str, name: str, body: dict[str, Any]) -> tuple[str, float]:
    """Start a run and read its SSE stream to the end: (final status, seconds from the POST)."""
    started = time.perf_counter()
    answer = await http.post(f"{url}/networks/{name}/runs", json=body)
    if answer.status_code != 202:
        return f"http {answer.status_code}", time.perf_counter() - started
    run_id = answer.json()["run_id"]
    status = "lost"
    async with http.stream("GET", f"{url}/runs/{run_id}/events") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event: run."):
                kind = line.split(".", 1)[1].strip()
                if kind in ("completed", "failed"):
                    status = kind
                    break
    return status, time.perf_counter() - started


async def start_and_poll(
    http: httpx.AsyncClient, url: str, name: str, bodies: list[dict[str, Any]], every: float = 0.25
) -> list[tuple[str, float]]:
    """Start runs without watching them; one loop polls ``GET /runs/{id}`` (every 250 ms by
    default: polling 200 runs faster would load the server more than the runs do)."""
    started = time.perf_counter()
    answers = await asyncio.gather(*(http.post(f"{url}/networks/{name}/runs", json=b) for b in bodies))
    pending = {a.json()["run_id"]: i for i, a in enumerate(answers) if a.status_code == 202}
    outcomes: list[tuple[str, float]] = [("http error", 0.0)] * len(bodies)
    while pending:
        await asyncio.sleep(every)
        records = await asyncio.gather(*(http.get(f"{url}/runs/{run_id}") for run_id in pending))
        for record in records:
            run = record.json()
            if run["status"] in ("completed", "failed"):
                outcomes[pending.pop(run["run_id"])] = (run["status"], time.perf_counter() - started)
    return outcomes


def local_run_seconds(url: str, name: str, repeat: int) -> float:
    async def main() -> float:
        times = []
        async with httpx.AsyncClient(timeout=120) as http:
            await start_and_poll(http, url, name, [{"input": "warm-up"}])  # the server imports litellm on its first call (~2 s)
            for _ in range(repeat):  # polled, not streamed: the executor streams nothing either
                ((status, seconds),) = await start_and_poll(http, url, name, [{"input": "go"}], every=0.002)
                assert status == "completed", status
                times.append(seconds)
        return statistics.median(times)

    return asyncio.run(main())


def bench_protocol(iterations: int, repeat: int) -> None:
    from tests.fakes.inngest_executor import StandInExecutor

    llm = ModelServer(0.0)
    with tempfile.TemporaryDirectory() as tmp, StandInExecutor() as executor:
        folder = Path(tmp)
        (folder / "steps.yaml").write_text(yaml.safe_dump(network("steps", llm.base, iterations)))
        env = {"INNGEST_DEV": "1", "INNGEST_API_BASE_URL": executor.url, "INNGEST_EVENT_API_BASE_URL": executor.url}
        server = NetrunServer(folder, env)
        try:
            executor.sync(f"{server.url}/api/inngest")
            fn_id = "netrun-steps"
            totals, requests, inferences = [], [], []
            executor.run(fn_id, {"name": "netrun/steps.run", "data": {"input": "warm-up"}})  # litellm's import, once per process
            for _ in range(repeat):
                before_calls, before_llm = len(executor.requests), model_count(llm.base)
                started = time.perf_counter()
                run = executor.run(fn_id, {"name": "netrun/steps.run", "data": {"input": "go"}})
                totals.append(time.perf_counter() - started)
                assert run.status == "completed", run.error
                requests.append(len(executor.requests) - before_calls)
                inferences.append(model_count(llm.base) - before_llm)
                steps = len(run.stack)
        finally:
            server.close()
        local = NetrunServer(folder, {})
        try:
            local_seconds = local_run_seconds(local.url, "steps", repeat)
        finally:
            local.close()
    llm.close()
    inngest_seconds = statistics.median(totals)
    print(f"1. Inngest protocol: {iterations} iterations, one tool call each ({steps} steps incl. the definition pin)")
    print(f"   requests per run: {requests} (target <= steps + 1 = {steps + 1})")
    print(f"   inferences per run: {inferences} (target: exactly {iterations}, none repeated on replay)")
    print(
        f"   total time per run: {inngest_seconds * 1000:.0f} ms over the protocol vs {local_seconds * 1000:.0f} ms on the local engine"
    )
    print(
        f"   overhead per step: {(inngest_seconds - local_seconds) / steps * 1000:.2f} ms "
        f"({inngest_seconds / local_seconds:.2f}x the local engine's run time)"
    )


def bench_load(runs: int, delay: float, iterations: int) -> None:
    llm = ModelServer(delay)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "load.yaml").write_text(yaml.safe_dump(network("load", llm.base, iterations)))
        server = NetrunServer(folder, {})

        async def main(watch: bool) -> tuple[list[tuple[str, float]], float]:
            # No connection reuse: under this load a pooled connection may have idled past the
            # server's keep-alive timeout, and a request sent on it fails (a client's problem).
            limits = httpx.Limits(max_connections=runs * 2 + 10, max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=300, limits=limits) as http:
                await follow(http, server.url, "load", {"input": "warm-up"})
                started = time.perf_counter()
                bodies = [{"input": f"run {i}"} for i in range(runs)]
                if watch:
                    outcomes = list(await asyncio.gather(*(follow(http, server.url, "load", b) for b in bodies)))
                else:
                    outcomes = await start_and_poll(http, server.url, "load", bodies)
                return outcomes, time.perf_counter() - started

        try:
            watched = asyncio.run(main(True))
            polled = asyncio.run(main(False))
        finally:
            server.close()
    llm.close()
    print(
        f"2. Load: {runs} runs at once on the local engine, {iterations} inferences + {iterations} tool calls each, {delay * 1000:.0f} ms model delay"
    )
    report_load("each followed through its SSE stream (the model's text streams: text.delta)", runs, iterations, *watched)
    report_load("polled with GET /runs/{id}, nobody streaming (plain model calls)", runs, iterations, *polled)
    print(
        f"   (ideal run latency {iterations * delay * 1000:.0f} ms: {iterations} sequential model calls; "
        f"the CPU of netrun's loop and model calls on 2 cores is the bound)"
    )


def report_load(how: str, runs: int, iterations: int, outcomes: list[tuple[str, float]], wall: float) -> None:
    completed = [s for status, s in outcomes if status == "completed"]
    lost = len(outcomes) - len(completed)
    latencies = sorted(completed)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    print(f"   {how}:")
    print(
        f"     completed {len(completed)} of {runs}; lost or failed: {lost} {sorted({s for s, _ in outcomes} - {'completed'}) or ''}"
    )
    print(
        f"     wall time {wall:.2f} s; throughput {len(completed) / wall:.1f} runs/s ({len(completed) * iterations / wall:.0f} inferences/s); "
        f"run latency p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--load-iterations", type=int, default=3)
    parser.add_argument("--only", choices=["protocol", "load"])
    args = parser.parse_args()
    if args.only != "load":
        bench_protocol(args.iterations, args.repeat)
    if args.only != "protocol":
        bench_load(args.runs, args.delay, args.load_iterations)


if __name__ == "__main__":
    main()
