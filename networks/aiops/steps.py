"""The AI Ops example's setup step (``setup:`` in ``networks/aiops.yaml``).

It runs once per run, before the router: it finds the workspace the coding agent works on and
lists its files, so the prompts can name them and the sandboxed shell knows where the code is.
A missing workspace is a setup failure the network declares non-retriable: no retry can make
the folder appear, so the run fails at once, naming it.
"""

from __future__ import annotations

from pathlib import Path

WORKSPACE = Path(__file__).resolve().parent / "workspace"


def describe_workspace() -> dict[str, object]:
    """The workspace's absolute path and its files (relative paths, sorted)."""
    if not WORKSPACE.is_dir():
        raise FileNotFoundError(f"the workspace {WORKSPACE} does not exist")
    files = sorted(str(p.relative_to(WORKSPACE)) for p in WORKSPACE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {"path": str(WORKSPACE), "files": files}
