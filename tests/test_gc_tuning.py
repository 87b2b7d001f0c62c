"""The commands that run networks set the garbage collector for it (netrun/cli/gc_tuning.py);
a Python tool in the run reads the settings from inside the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from netrun.cli.gc_tuning import YOUNGEST

PROBE = '''
import gc

def collector() -> dict:
    """Reports the collector's settings."""
    return {"young": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}
'''
NETWORK = """\
name: probed
model: openai/gpt-4o-mini
max_iter: 1
agents:
  a: {description: probes, system: "Probe.", tools: [probe]}
router:
  rules: [{if: "true", agent: a}]
tools:
  probe: {python: probe:collector}
"""


def _found(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        if "young" in value:
            return value
        value = list(value.values())
    if isinstance(value, list):
        return next((f for f in map(_found, value) if f is not None), None)
    return None


def test_netrun_run_freezes_what_it_imported_and_collects_less_often(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "probed.yaml").write_text(NETWORK)
    (tmp_path / "probed.replies.yaml").write_text("a:\n  - tool_calls: [{name: probe, args: {}}]\n")
    done = subprocess.run(
        [sys.executable, "-m", "netrun", "run", "probed.yaml", "-i", "x", "--replay", "probed.replies.yaml", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NETRUN_DATA_DIR": str(tmp_path / "data")},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = _found(json.loads(done.stdout))
    assert seen is not None and seen["young"] == YOUNGEST and seen["frozen"] > 1000, done.stdout[-2000:]


def test_netrun_serve_sets_the_collector_too(tmp_path: Path, llm: Any) -> None:
    import httpx

    from .conftest import until
    from .fakes.llm_server import Reply, ToolCall
    from .fakes.server_thread import free_port
    from .test_serve_logs import _serve, _stop

    (tmp_path / "probe.py").write_text(PROBE)
    served = NETWORK.replace(
        "model: openai/gpt-4o-mini",
        f'model: {{id: openai/gpt-4o-mini, api_base: "{llm.base_url}", api_key: "${{FAKE_LLM_KEY}}"}}',
    )
    (tmp_path / "probed.yaml").write_text(served)
    llm.set_script([Reply(tool_calls=[ToolCall("probe", {})])])
    port = free_port()
    proc = _serve(tmp_path, port)
    try:
        url = f"http://127.0.0.1:{port}"
        run_id = httpx.post(f"{url}/networks/probed/runs", json={"input": "x"}).json()["run_id"]
        run = until("the run to end", lambda: (r := httpx.get(f"{url}/runs/{run_id}").json())["status"] == "completed" and r)
    finally:
        _stop(proc)
    seen = _found(run)
    assert seen is not None and seen["young"] == YOUNGEST and seen["frozen"] > 1000, run
