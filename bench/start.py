"""Benchmark of start-up: how soon ``netrun run`` makes its first model request, and how
soon ``netrun serve`` answers ``/healthz``.

What is measured, and why
-------------------------
A run's first model call waits for the interpreter, netrun's validation of the file and
whatever the engine imports; a server's first request waits for the same plus FastAPI and
uvicorn. Both are paid on every ``netrun run`` in a script and on every deploy or restart.

* ``run -> 1st request``: from just before the ``netrun run`` subprocess is spawned to the
  arrival of its first chat completion at the fake OpenAI-compatible server
  (tests/fakes/llm_server.py, in this process, so both times are read from the same
  monotonic clock). The network's model is ``openai/x`` with ``api_base`` at that server.
  Target: <= 1.0 s.
* ``run, whole``: the wall time of the whole ``netrun run`` process on that network, and on
  a network of ``scripted/`` models (no HTTP at all).
* ``serve -> /healthz``: from just before ``netrun serve`` (local engine) is spawned to the
  first HTTP 200 of ``GET /healthz`` (polled every 5 ms). Target: <= 1.5 s.

Each figure is the best of ``--repeat`` runs (the least disturbed by other processes on
the machine), with the median beside it. Then each command runs once more under
``-X importtime`` and the heavy packages it imported are listed (those that should appear
only when a network needs them: litellm, mcp, inngest, fastapi, ...), with the slowest
top-level imports.

Run it with the venv's interpreter::

    .venv/bin/python bench/start.py              # best of 5
    .venv/bin/python bench/start.py --repeat 9
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.llm_server import FakeLLM, Reply  # noqa: E402
from tests.fakes.server_thread import free_port  # noqa: E402
from tests.fakes.small_networks import DIRECT, OFFLINE, REPLIES  # noqa: E402

HEAVY = ("litellm", "openai", "mcp", "inngest", "fastapi", "starlette", "uvicorn", "sse_starlette", "rich", "tenacity")
"""Packages whose presence in a process says what it paid for at start."""


class Arrivals:
    """The fake server's answer to every request, noting when each arrived."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.times.append(time.perf_counter())
        return Reply(text="ok")

    def first_after(self, start: float) -> float | None:
        with self._lock:
            later = [t for t in self.times if t >= start]
        return min(later) - start if later else None


def _env(data: Path) -> dict[str, str]:
    return {**os.environ, "FAKE_KEY": "sk-bench", "NETRUN_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}


def _netrun(*args: str, flags: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, *flags, "-m", "netrun", *args]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_run(network: Path, arrivals: Arrivals | None, data: Path) -> tuple[float, float | None, float]:
    """(whole process, time to the first model request, CPU seconds) of one ``netrun run``."""
    cpu = _cpu()
    start = time.perf_counter()
    done = subprocess.run(
        _netrun("run", str(network), "-i", "hi", "--json"), capture_output=True, text=True, env=_env(data), cwd=network.parent
    )
    whole = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"netrun run {network.name} failed:\n{done.stderr[-2000:]}")
    return whole, arrivals.first_after(start) if arrivals is not None else None, _cpu() - cpu


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def time_serve(folder: Path, data: Path, flags: tuple[str, ...] = (), stderr: Any = subprocess.DEVNULL) -> float:
    """Seconds from spawning ``netrun serve`` (local engine) to its first 200 on /healthz."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    start = time.perf_counter()
    server = subprocess.Popen(
        _netrun("serve", str(folder), "--port", str(port), "--engine", "local", flags=flags),
        env=_env(data),
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        while not _healthy(url):
            if server.poll() is not None:
                raise SystemExit(f"netrun serve exited with {server.returncode} before answering /healthz")
            if time.perf_counter() - start > 60:
                raise SystemExit("netrun serve did not answer /healthz within 60 s")
            time.sleep(0.005)
        return time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)


def imported(stderr: str) -> tuple[list[str], list[tuple[float, str]]]:
    """The heavy packages in an ``-X importtime`` log, and the slowest top-level imports."""
    heavy: set[str] = set()
    top: list[tuple[float, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, cumulative, name = line.split("|")
        module = name.strip()
        if module.split(".")[0] in HEAVY:
            heavy.add(module.split(".")[0])
        if not name.startswith("  "):  # a module imported by no other: its cumulative time is its own cost
            top.append((int(cumulative) / 1e6, module))
    return sorted(heavy), sorted(top, reverse=True)[:6]


def _figure(label: str, values: list[float], target: float | None = None) -> None:
    best = min(values)
    verdict = "" if target is None else f"  (target <= {target:.1f} s: {'met' if best <= target else 'MISSED'})"
    print(f"  {label:<24} best {best:6.3f} s   median {statistics.median(values):6.3f} s{verdict}")


def _imports(label: str, stderr: str) -> None:
    heavy, top = imported(stderr)
    print(f"  {label}: heavy packages: {', '.join(heavy) or 'none'}")
    print("    slowest top-level imports: " + ", ".join(f"{m} {t:.3f}s" for t, m in top))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement; the best is reported")
    args = parser.parse_args(argv)
    arrivals = Arrivals()
    with FakeLLM(fallback=arrivals) as llm, tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "direct").mkdir()
        (root / "offline").mkdir()
        direct = root / "direct" / "direct.yaml"
        direct.write_text(DIRECT.format(base=llm.base_url))
        offline = root / "offline" / "offline.yaml"
        offline.write_text(OFFLINE)
        (root / "offline" / "offline.replies.yaml").write_text(REPLIES)
        data = root / "data"
        first: list[float] = []
        whole: list[float] = []
        cpu: list[float] = []
        scripted: list[float] = []
        scripted_cpu: list[float] = []
        serve: list[float] = []
        for _ in range(args.repeat):  # interleaved, so a slow moment of the machine hits every figure alike
            w, f, c = time_run(direct, arrivals, data)
            if f is None:
                raise SystemExit("netrun run made no model request")
            whole.append(w)
            first.append(f)
            cpu.append(c)
            w, _, c = time_run(offline, None, data)
            scripted.append(w)
            scripted_cpu.append(c)
            serve.append(time_serve(root / "direct", data))
        print(f"netrun start-up, best of {args.repeat} ({sys.executable} -c pass is the floor):")
        _figure("run -> 1st request", first, 1.0)
        _figure("run, whole (openai/x)", whole)
        _figure("run, whole (scripted)", scripted)
        # CPU time is what the process itself spent: steadier than wall time on a busy machine.
        _figure("run, CPU (openai/x)", cpu)
        _figure("run, CPU (scripted)", scripted_cpu)
        _figure("serve -> /healthz 200", serve, 1.5)
        env = _env(data)
        for label, network in (("run openai/x", direct), ("run scripted", offline)):
            done = subprocess.run(
                _netrun("run", str(network), "-i", "hi", "--json", flags=("-X", "importtime")),
                capture_output=True,
                text=True,
                env=env,
                cwd=network.parent,
            )
            _imports(label, done.stderr)
        log = root / "serve-imports.txt"
        with log.open("w") as stderr:
            time_serve(root / "direct", data, ("-X", "importtime"), stderr)
        _imports("serve (local)", log.read_text())


if __name__ == "__main__":
    main()
