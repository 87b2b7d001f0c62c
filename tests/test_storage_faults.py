"""A full disk under `netrun serve` and `netrun run`: 503s with a JSON reason, runs that stop
cleanly where the journal refused a write, and that go on by themselves once it takes
writes again (no restart).

The disk fills for real as far as SQLite can tell: the server process runs under a file-size
limit (RLIMIT_FSIZE; CPython ignores SIGXFSZ, so a write past it fails with EFBIG and SQLite
reports an I/O error, as it would on a device that refuses writes), and the test lifts the
limit of the running process with prlimit(2), as freeing space would.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx

from .conftest import NETRUN, until
from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.server_thread import free_port

NETWORK = """\
name: noter
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 3
trigger: {{event: app/note, input: "{{{{ event.data.note }}}}"}}
state:
  done: {{type: boolean, default: false}}
agents:
  noter: {{description: notes, system: "Note {{{{ input }}}}", tools: [finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: noter}}]
tools:
  finish:
    parameters: {{answer: {{type: string}}}}
    state: {{done: true}}
"""

ENV = {"FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
FINISH = Reply(text="noted", tool_calls=[ToolCall("finish", {"answer": "ok"})], delay=0.3)
LIMIT = 600_000
"""Bytes any file of the server may grow to until the test lifts the limit."""
BIG = "x" * 40_000
"""An input large enough that a few runs fill the allowed space."""


def _limited(limit: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def _serve(tmp_path: Path, port: int, limit: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [NETRUN, "serve", str(tmp_path), "--port", str(port), "--data-dir", str(tmp_path / "data"), "--no-watch"],
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_limited(limit),
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, proc.communicate()
        try:
            return httpx.get(f"{url}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    until("netrun serve to come up", up, timeout=60)
    return proc


def test_a_full_disk_answers_503_and_stopped_runs_go_on_once_space_returns(tmp_path: Path) -> None:
    with FakeLLM(fallback=lambda body: FINISH) as llm:
        (tmp_path / "noter.yaml").write_text(NETWORK.format(base=llm.base_url))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _serve(tmp_path, port, LIMIT)
        try:
            accepted: list[str] = []
            refused = None
            for _ in range(60):  # runs pile up (each inference takes 0.3 s) until the journal is full
                answer = httpx.post(f"{url}/networks/noter/runs", json={"input": BIG}, timeout=30)
                if answer.status_code == 503:
                    refused = answer
                    break
                assert answer.status_code == 202, answer.text
                accepted.append(answer.json()["run_id"])
            assert refused is not None, "the journal never filled"
            assert refused.headers["content-type"].startswith("application/json")
            assert "cannot store" in refused.json()["detail"] and "disk may be full" in refused.json()["detail"]
            assert refused.headers.get("retry-after")
            assert accepted, "no run was accepted before the disk filled"
            # The runs in flight when it filled stopped where their next write failed, and say so.
            health = until("stopped runs in /healthz", lambda: httpx.get(f"{url}/healthz").json().get("storage"))
            assert health["stalled_runs"] >= 1 and "disk may be full" in health["reason"]
            statuses = {httpx.get(f"{url}/runs/{run_id}").json()["status"] for run_id in accepted}
            assert statuses & {"running", "queued"}, statuses
            # An event that would start a run, while full: refused the same way, not a 500.
            event = httpx.post(f"{url}/events", json={"name": "app/note", "data": {"note": BIG}})
            assert event.status_code == 503 and "cannot store" in event.json()["detail"], event.text

            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space returns

            def all_done() -> list[dict[str, Any]] | None:
                runs = [httpx.get(f"{url}/runs/{run_id}").json() for run_id in accepted]
                return runs if all(r["status"] in ("completed", "failed") for r in runs) else None

            runs = until("the stopped runs to go on", all_done, timeout=60)
            assert [r["status"] for r in runs] == ["completed"] * len(runs), [(r["status"], r.get("error")) for r in runs]
            assert all(r["result"]["state"]["done"] is True for r in runs)
            assert "storage" not in httpx.get(f"{url}/healthz").json()
            again = httpx.post(f"{url}/networks/noter/runs", json={"input": "after"})
            assert again.status_code == 202
            until(
                "a new run to complete", lambda: httpx.get(f"{url}/runs/{again.json()['run_id']}").json()["status"] == "completed"
            )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err[-3000:]
    assert "goes on from its last recorded step" in err and "the journal takes writes again" in err


def test_netrun_run_on_a_full_disk_says_so_without_a_traceback(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [
            NETRUN,
            "run",
            str(root / "networks/quickstart.yaml"),
            "-i",
            "y" * 120_000,
            "--replay",
            str(root / "networks/quickstart.replies.yaml"),
            "--db",
            str(tmp_path / "runs.db"),
        ],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        preexec_fn=_limited(100_000),
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot write {tmp_path / 'runs.db'}" in done.stderr and "the disk may be full" in done.stderr
    # Nothing half-stored: with the limit gone the same journal takes the run.
    again = subprocess.run(
        [
            NETRUN,
            "run",
            str(root / "networks/quickstart.yaml"),
            "-i",
            "short",
            "--replay",
            str(root / "networks/quickstart.replies.yaml"),
            "--db",
            str(tmp_path / "runs.db"),
            "--json",
        ],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr


def test_a_run_stopped_by_a_full_disk_is_named_with_the_command_that_resumes_it(tmp_path: Path) -> None:
    """When the disk fills after the run was created, `netrun run` names the run and the
    `--resume` command; with space back, that command completes it. The file size limit that
    stops a run midway depends on the journal's layout: the test raises it until one does."""
    root = Path(__file__).resolve().parent.parent
    network, replies = root / "networks/quickstart.yaml", root / "networks/quickstart.replies.yaml"
    env = {**os.environ, **ENV}
    for limit in range(100_000, 1_000_001, 25_000):
        db = tmp_path / f"runs-{limit}.db"
        done = subprocess.run(
            [NETRUN, "run", str(network), "-i", "y" * 20_000, "--replay", str(replies), "--db", str(db)],
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=_limited(limit),
            timeout=120,
        )
        assert "Traceback" not in done.stderr
        if done.returncode == 0:
            raise AssertionError(f"no limit up to {limit} bytes stopped the run midway")
        with contextlib.closing(sqlite3.connect(db)) as journal:
            created = [row[0] for row in journal.execute("SELECT id FROM runs")]
        if created:
            break
        assert "--resume" not in done.stderr  # no run to resume: no such hint
    (run_id,) = created
    assert f"once there is space, go on with: netrun run --resume {run_id}" in done.stderr, done.stderr
    resumed = subprocess.run(
        [NETRUN, "run", "--resume", run_id, "--db", str(db), "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "completed"
