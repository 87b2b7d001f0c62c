"""A ``netrun run`` killed with -9 while a tool call is in flight, then resumed (durability
rule 6): the one flow the python and command tool tests share.

The network's first turn calls ``first`` (which finishes) and ``effect`` (which writes
``effect.txt`` and then waits while ``block`` exists); the process is killed once the effect
ran and ``first`` is journaled, ``block`` is removed, and ``netrun run --resume`` finishes the
run with the rest of ``script``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netrun.engines.local import Journal

from .conftest import NETRUN, until
from .fakes.llm_server import FakeLLM, Reply


def netrun_process(args: list[str], db: Path, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """``netrun ARGS --db DB --json`` in its own session (so that -9 takes its children too)."""
    return subprocess.Popen(
        [NETRUN, *args, "--db", str(db), "--json"],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_during_effect_then_resume(
    folder: Path, llm: FakeLLM, network_file: str, script: list[Reply], env: Mapping[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``network_file`` (in ``folder``, whose ``block`` file holds the effect), kill it in the
    effect, resume it; returns the resumed run's JSON and the model requests made."""
    db = folder / "runs.db"
    proc = netrun_process(["run", network_file, "-i", "go"], db, folder, env)
    until(
        "the effect runs and the first call is journaled",
        lambda: (
            proc.poll() is None
            and (folder / "effect.txt").exists()
            and "turn.0.a.tool.0.first" in Journal(db).step_ids(Journal(db).runs("running")[0])
        ),
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    (folder / "block").unlink()
    (run_id,) = Journal(db).runs("running")
    llm.set_script(script[1:])
    resumed = netrun_process(["run", "--resume", run_id], db, folder, env)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    return json.loads(out), llm.requests
