"""netrun against Inngest AgentKit 0.13.2 (TypeScript), on one fake model server, as whole processes.

What is measured, and why
-------------------------
The same network in both: one agent with one tool that bumps a counter in state, and a code
router (netrun: a state rule) that runs the agent until the counter reaches N, then stops.
Each iteration is one inference (the fake OpenAI-compatible server asks for one tool call)
and that tool call; the history grows by one assistant turn and one tool result per
iteration. Both sides run as whole processes (`netrun run FILE`, `node agentkit.mjs N`), so
start-up counts, interleaved (netrun, AgentKit, the floors, netrun, ...), best of --rounds.

Printed, per side:
- T(N), the best wall time of the whole process at each N;
- per-iteration cost as (T(N) - T(N0)) / (N - N0) for every N above the smallest N0 (the
  issue's figures: (T(200) - T(10)) / 190 and (T(50) - T(10)) / 40, or from N0 = 5 with
  --sizes 5,50,200), which cancels start-up;
- start-up: process start to the first model request (the server stamps each arrival), best
  of all runs, and the T(N) intercept T(N0) - N0 x per-iteration;
- the ratio netrun / AgentKit of each;
- the same table for the processes' CPU time (user + system, from their rusage), which load
  from other work on the machine skews far less than wall time; and the spread of T(N) over
  the rounds, to tell how noisy a figure is;
- inside each process (from the server's stamps): the median time between two model
  requests, an iteration's cost in its steady state with no start-up in it, and the time from
  the last request to the exit (AgentKit's process lingers ~70 ms after a 10-iteration run and
  hardly at all after a 50-iteration one, which lowers its T(50) - T(10));
- the size of the history each side sent in its last request.

The floors are plain loops, each in a fresh Python process doing the same N iterations with
the same growing history (assistant `tool_calls` + `tool` messages): raw httpx, raw aiohttp
(the client netrun's direct path uses, in an asyncio loop), the openai SDK and litellm
(LITELLM_LOCAL_MODEL_COST_MAP=True). The bench fails loudly if any side made
other than N model requests, or ended with a counter other than N.

AgentKit is installed from npm (registry only) into a cache folder that reruns reuse:
~/.cache/netrun-bench/peer (or --cache), with the peer dependencies it declares (zod 4,
inngest >= 3.43.1).

    .venv/bin/python bench/peer.py              # N = 10, 50, 200, best of 3: about 5 minutes
    .venv/bin/python bench/peer.py --quick      # N = 10, 50, best of 2: about a minute
    .venv/bin/python bench/peer.py --sizes 5,50,200 --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "peer"
FLOORS = ("httpx", "aiohttp", "openai", "litellm")  # the loops of bench/peer/floors.py

AGENTKIT = "0.13.2"
# What AgentKit 0.13.2 declares as peers: inngest >= 3.43.1, zod >= 4 < 5 (4.24.0 is the
# version checked to install offline here).
NPM_PACKAGES = [f"@inngest/agent-kit@{AGENTKIT}", "inngest@4.24.0", "zod@^4"]
API_KEY = "sk-bench-0123456789abcdef"

# The fake server in its own process (so it does not share a GIL or an event loop with what
# is measured). Its fallback asks for one tool call each time and stamps the arrival; a line
# on stdin asks for the stamps since the last line and the size of the last request (the
# history each side sends), and forgets them.
SERVER = """
import json, sys, time
from tests.fakes.llm_server import FakeLLM, Reply, ToolCall
stamps, last = [], [{}]
def reply(body):
    stamps.append(time.time())
    last[0] = body
    return Reply(text="step", tool_calls=[ToolCall("step", {"note": "x"})])
server = FakeLLM(fallback=reply).start()
print(server.base_url, flush=True)
for _line in sys.stdin:
    body = last[0]
    seen = {"stamps": list(stamps), "messages": len(body.get("messages", [])), "bytes": len(json.dumps(body))}
    stamps[:], last[0] = [], {}
    print(json.dumps(seen), flush=True)
server.stop()
"""


class Server:
    """The fake OpenAI-compatible server (tests/fakes/llm_server.py) as a subprocess."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.base = self.stdout.readline().strip()
        if not self.base.startswith("http://127.0.0.1:"):
            raise SystemExit(f"the fake model server did not start (said {self.base!r})")

    def seen(self) -> dict[str, Any]:
        """Since the last call: request arrival times (time.time()), and the last request's size."""
        self.stdin.write("\n")
        self.stdin.flush()
        return json.loads(self.stdout.readline())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=30)


def install_agentkit(cache: Path) -> Path:
    """AgentKit and its peers in ``cache`` (installed once), with the bench script beside them."""
    manifest = cache / "node_modules" / "@inngest" / "agent-kit" / "package.json"
    installed = json.loads(manifest.read_text(encoding="utf-8")).get("version") if manifest.exists() else None
    if installed != AGENTKIT:
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise SystemExit("bench/peer.py needs node and npm on PATH to install AgentKit")
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "package.json").write_text('{"name": "netrun-bench-peer", "private": true}\n', encoding="utf-8")
        print(f"installing {' '.join(NPM_PACKAGES)} into {cache} ...", flush=True)
        out = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", *NPM_PACKAGES], cwd=cache, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise SystemExit(f"npm install failed:\n{out.stderr[-3000:]}")
    # ESM resolves packages from the script's own folder (NODE_PATH is ignored): copy it there.
    script = cache / "agentkit.mjs"
    shutil.copyfile(HERE / "agentkit.mjs", script)
    return script


def netrun_network(base: str, n: int) -> dict[str, Any]:
    """The network of bench/run_overhead.py: a state rule stops it once the tool has run N times."""
    return {
        "name": "overhead",
        # A key from the environment, as real networks hold theirs.
        "model": {"id": "openai/fake", "api_base": base, "api_key": "${BENCH_API_KEY}"},
        "max_iter": n + 5,  # the rule stops the run; this only guards against a runaway loop
        "state": {"count": {"type": "integer", "default": 0}},
        "agents": {"worker": {"description": "works", "system": "Step {{ state.count }} of {{ input }}.", "tools": ["step"]}},
        "router": {"rules": [{"if": f"state.count >= {n}", "stop": True}, {"if": "true", "agent": "worker"}]},
        "tools": {
            "step": {
                "description": "Take a step.",
                "parameters": {"note": {"type": "string"}},
                "state": {"count": "{{ state.count + 1 }}"},
            }
        },
    }


Check = Callable[[str], int]  # a side's stdout -> the counter it ended with


def netrun_side(base: str, n: int, tmp: Path, run: int) -> tuple[list[str], Check]:
    path = tmp / f"net{n}.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(netrun_network(base, n), sort_keys=False), encoding="utf-8")
    cmd = [str(ROOT / ".venv" / "bin" / "netrun"), "run", str(path), "--input", str(n), "--json"]
    cmd += ["--db", str(tmp / f"runs{run}.db")]  # a fresh journal per run: no run pays for the last

    def check(out: str) -> int:
        record = json.loads(out)
        if record.get("status") != "completed":
            raise SystemExit(f"netrun run ended {record.get('status')}: {record.get('error')}")
        return int(record["result"]["state"]["count"])

    return cmd, check


def agentkit_side(script: Path, base: str, n: int) -> tuple[list[str], Check]:
    node = shutil.which("node") or "node"
    return [node, str(script), str(n), base], lambda out: int(json.loads(out.strip().splitlines()[-1])["count"])


def floor_side(name: str, base: str, n: int) -> tuple[list[str], Check]:
    return [sys.executable, str(HERE / "floors.py"), name, str(n), base], lambda out: int(out.strip().splitlines()[-1])


def snapshot(tmp: Path) -> Path:
    """A compiled copy of netrun's sources, put first on PYTHONPATH for every netrun run.

    Why: in a checkout others edit, each edit makes the next netrun process recompile what
    changed (and may catch a file half-written); a snapshot measures one version of the code
    in every round, with no compile time in any run.
    """
    src = tmp / "src"
    shutil.copytree(ROOT / "netrun", src / "netrun", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "netrun"], capture_output=True, text=True)
    changes = len(dirty.stdout.splitlines())
    print(f"  netrun: a snapshot of {ROOT / 'netrun'} (HEAD {head.stdout.strip() or '?'}, {changes} changed file(s))")
    return src


def sides_at(sides: list[str], n: int, base: str, script: Path, tmp: Path, run: int) -> dict[str, tuple[list[str], Check]]:
    """The command line and the output check of each side at N, in the order they run."""
    made: dict[str, tuple[list[str], Check]] = {}
    for side in sides:
        if side == "netrun":
            made[side] = netrun_side(base, n, tmp, run)
        elif side == "agentkit":
            made[side] = agentkit_side(script, base, n)
        else:
            made[side] = floor_side(side, base, n)
    return made


@dataclass
class Run:
    wall: float  # wall time of the whole process
    cpu: float  # its CPU time (user + system, with its own children): what machine load skews least
    first: float  # from its start to its first model request
    messages: int  # messages in its last model request: the history it sends
    kb: float  # size of that request body
    gap: float  # the median time between two of its model requests (the server's arrival stamps)
    tail: float  # from its last model request to its exit
    last: float  # from its start to its last model request


def measure(server: Server, side: str, cmd: list[str], check: Check, n: int, cwd: Path, env: dict[str, str]) -> Run:
    """One whole process, checked: it made exactly N model requests and its counter is N."""
    server.seen()  # forget anything before this run
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0, start = time.time(), time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seen = server.seen()
    if out.returncode != 0:
        raise SystemExit(f"{side} at N = {n} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    count, stamps = check(out.stdout), seen["stamps"]
    if len(stamps) != n or count != n:
        raise SystemExit(f"{side} at N = {n}: {len(stamps)} model requests and counter {count}, expected {n} and {n}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    median = statistics.median(gaps) if gaps else 0.0
    tail, last = wall0 + wall - stamps[-1], stamps[-1] - wall0
    return Run(wall, cpu, stamps[0] - wall0, seen["messages"], seen["bytes"] / 1024, median, tail, last)


def over(
    seen: dict[str, dict[int, list[Run]]], field: str, pick: Callable[[list[float]], float] = min
) -> dict[str, dict[int, float]]:
    """One figure of the runs, by side and N: the best (``min``) or the worst (``max``) over the rounds."""
    return {side: {n: pick([getattr(r, field) for r in runs]) for n, runs in by_n.items()} for side, by_n in seen.items()}


def slope(times: dict[int, float]) -> dict[int, float]:
    """Per-iteration cost from the smallest N: (T(N) - T(N0)) / (N - N0)."""
    n0 = min(times)
    return {n: (t - times[n0]) / (n - n0) for n, t in times.items() if n != n0}


def ratio(a: float, b: float) -> str:
    return f"{a / b:6.2f}x" if b > 0 else "   n/a"


def table(
    title: str, best: dict[str, dict[int, float]], worst: dict[str, dict[int, float]], starts: dict[str, float] | None
) -> None:
    sizes = sorted(next(iter(best.values())))
    n0 = sizes[0]
    print(f"\n{title}; per iteration = (T(N) - T({n0})) / (N - {n0})\n")
    cols = [f"T({n})".rjust(8) for n in sizes] + [f"/it {n0}->{n}".rjust(10) for n in sizes[1:]]
    if starts is not None:
        cols += ["first req".rjust(9), "intercept".rjust(9)]
    cols.append(f"spread T({sizes[-1]})")  # (worst - best) / best over the rounds: how noisy it was
    print(f"  {'side':<9} | " + " | ".join(cols))
    print("  " + "-" * (12 + sum(len(c) + 3 for c in cols)))
    slopes = {side: slope(times) for side, times in best.items()}
    for side, times in best.items():
        cells = [f"{times[n]:>7.3f}s" for n in sizes] + [f"{slopes[side][n] * 1000:>7.2f} ms" for n in sizes[1:]]
        if starts is not None:
            cells += [f"{starts[side]:>8.3f}s", f"{times[n0] - n0 * slopes[side][sizes[-1]]:>8.3f}s"]
        cells.append(f"{(worst[side][sizes[-1]] / times[sizes[-1]] - 1) * 100:>10.0f}%")
        print(f"  {side:<9} | " + " | ".join(cells))
    if "netrun" in best and "agentkit" in best:
        print(
            "  netrun / AgentKit: "
            + ", ".join(
                [f"per iteration {n0}->{n} {ratio(slopes['netrun'][n], slopes['agentkit'][n]).strip()}" for n in sizes[1:]]
                + [f"T({n}) {ratio(best['netrun'][n], best['agentkit'][n]).strip()}" for n in sizes]
                + ([f"start to first request {ratio(starts['netrun'], starts['agentkit']).strip()}"] if starts else [])
            )
        )


def gap_table(
    gaps: dict[str, dict[int, float]], tails: dict[str, dict[int, float]], lasts: dict[str, dict[int, float]], rounds: int
) -> None:
    """Each side's time from one model request to the next inside one process (the median
    gap between the server's arrival stamps): the cost of an iteration in its steady state,
    with no start-up and no warm-up in it; and the time from the last request to the exit.
    A process that lingers after a short run (a timer set at start-up) has a larger T(10),
    which makes T(N) - T(10) smaller than what its iterations cost: this says how much, and
    the per-iteration cost from start to the last request (L(N) - L(10)) / (N - 10) leaves it out."""
    sizes = sorted(next(iter(gaps.values())))
    print(
        f"\nInside one process, best of {rounds}: the median time between two model requests, and from the last one to the exit\n"
    )
    n0 = sizes[0]
    cols = [f"gap N={n}".rjust(10) for n in sizes] + [f"exit N={n}".rjust(10) for n in sizes]
    cols += [f"L/it {n0}->{n}".rjust(10) for n in sizes[1:]]
    print(f"  {'side':<9} | " + " | ".join(cols))
    print("  " + "-" * (12 + 13 * len(cols)))
    slopes = {side: slope(times) for side, times in lasts.items()}
    for side in gaps:
        cells = [f"{gaps[side][n] * 1000:>7.2f} ms" for n in sizes] + [f"{tails[side][n] * 1000:>7.1f} ms" for n in sizes]
        cells += [f"{slopes[side][n] * 1000:>7.2f} ms" for n in sizes[1:]]
        print(f"  {side:<9} | " + " | ".join(cells))
    if "netrun" in gaps and "agentkit" in gaps:
        cells = [f"time between requests N = {n} {ratio(gaps['netrun'][n], gaps['agentkit'][n]).strip()}" for n in sizes]
        cells += [f"to last request {n0}->{n} {ratio(slopes['netrun'][n], slopes['agentkit'][n]).strip()}" for n in sizes[1:]]
        print("  netrun / AgentKit: " + ", ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", help="iterations per run (default 10,50,200; --quick: 10,50)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds, best kept (default 3; --quick: 2)")
    parser.add_argument("--quick", action="store_true", help="N = 10, 50 and 2 rounds: about a minute")
    parser.add_argument("--floors", default=",".join(FLOORS), help=f"plain loops (default {','.join(FLOORS)}; '' for none)")
    parser.add_argument("--live", action="store_true", help="run netrun from the checkout, not from a snapshot")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "netrun-bench" / "peer")
    args = parser.parse_args()
    sizes = sorted(int(x) for x in (args.sizes or ("10,50" if args.quick else "10,50,200")).split(","))
    rounds = args.rounds or (2 if args.quick else 3)
    floors = [f for f in args.floors.split(",") if f]
    if unknown := set(floors) - set(FLOORS):
        parser.error(f"unknown floor(s) {', '.join(sorted(unknown))}; known: {', '.join(FLOORS)}")
    if len(set(sizes)) < 2 or sizes[0] < 1:
        parser.error("--sizes needs two or more positive sizes (per-iteration cost is a difference)")

    script = install_agentkit(args.cache)
    node = subprocess.run([shutil.which("node") or "node", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"netrun vs AgentKit {AGENTKIT}  (python {sys.version.split()[0]}, node {node}, {os.cpu_count()} CPUs)")
    print(f"  load average before: {os.getloadavg()[0]:.2f} (others' work on the machine skews wall times)")
    sides = ["netrun", "agentkit", *floors]
    seen: dict[str, dict[int, list[Run]]] = {side: {} for side in sides}  # every run, by side and N
    shape: dict[str, Run] = {}
    server = Server()
    try:
        with tempfile.TemporaryDirectory(prefix="netrun-peer-") as tmp_name:
            tmp, runs = Path(tmp_name), 0
            env = {**os.environ, "BENCH_API_KEY": API_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_COLOR": "1"}
            if not args.live:
                env["PYTHONPATH"] = str(snapshot(tmp))
            # One unrecorded run each first: the first netrun process after an edit of its
            # sources recompiles them (.pyc), and disk caches warm up: not what is measured.
            for side, (cmd, check) in sides_at(sides, sizes[0], server.base, script, tmp, 0).items():
                measure(server, side, cmd, check, sizes[0], tmp, env)
            for r in range(rounds):
                for n in sizes:
                    runs += 1
                    # interleaved: drifts in machine load hit every side alike
                    for side, (cmd, check) in sides_at(sides, n, server.base, script, tmp, runs).items():
                        run = measure(server, side, cmd, check, n, tmp, env)
                        seen[side].setdefault(n, []).append(run)
                        shape[side] = run  # the last one run is at the largest N
                print(f"  round {r + 1}/{rounds} done (load average {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        server.close()
    starts = {side: min(r.first for runs_at in by_n.values() for r in runs_at) for side, by_n in seen.items()}
    table(f"Wall time of whole processes, best of {rounds}", over(seen, "wall"), over(seen, "wall", max), starts)
    table(f"CPU time of the same processes (user + system), best of {rounds}", over(seen, "cpu"), over(seen, "cpu", max), None)
    gap_table(over(seen, "gap"), over(seen, "tail"), over(seen, "last"), rounds)
    print(f"\nThe history each side sent in its last request at N = {sizes[-1]}:")
    for side, run in shape.items():
        print(f"  {side:<9} {run.messages:>5} messages, {run.kb:8.1f} KB")


if __name__ == "__main__":
    main()
