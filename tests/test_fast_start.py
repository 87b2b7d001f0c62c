"""Fast starts: `netrun validate` discovers no pydantic plugins; `netrun run` and `netrun
serve` import only what the networks at hand use (checked in ``-X importtime`` logs of real
subprocesses; the figures are bench/start.py's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import REPO, until
from .fakes.llm_server import FakeLLM, Reply
from .fakes.server_thread import free_port
from .fakes.small_networks import DIRECT, OFFLINE, REPLIES


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return out.stdout.strip()


def test_validate_does_not_load_importlib_metadata() -> None:
    code = (
        "import sys\nfrom netrun.cli import main\n"
        "try:\n    main(['validate', 'networks'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print('importlib.metadata' in sys.modules, type(sys.modules['pydantic.plugin._loader']).__name__)\n"
    )
    assert _run(code).splitlines()[-1] == "False _NoPlugins"


def test_the_stand_in_loads_the_real_loader_for_anything_else() -> None:
    code = (
        "from netrun._fast_start import skip_pydantic_plugins\nskip_pydantic_plugins()\n"
        "import sys\nimport pydantic.plugin\nloader = sys.modules['pydantic.plugin._loader']\n"
        "assert tuple(loader.get_plugins()) == ()\n"
        "group = loader.PYDANTIC_ENTRY_POINT_GROUP\n"  # not on the stand-in: the real module loads
        "print(group, type(sys.modules['pydantic.plugin._loader']).__name__)\n"
    )
    assert _run(code) == "pydantic module"


# -- `netrun run` and `netrun serve` import only what the networks at hand use -------------

RUN_NEVER = ("litellm", "openai", "mcp", "inngest", "fastapi", "starlette", "uvicorn", "rich")
"""Packages a run of scripted or OpenAI-compatible models has no use for (rich: httpx's CLI)."""

SERVE_NEVER = ("litellm", "openai", "mcp", "inngest", "rich")
"""Packages `netrun serve` on the local engine has no use for when no network declares MCP."""


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "FAKE_KEY": "sk-test-1", "NETRUN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}


def _packages(importtime: str) -> set[str]:
    """The top-level packages an ``-X importtime`` log shows imported."""
    return {
        line.split("|")[-1].strip().split(".")[0]
        for line in importtime.splitlines()
        if line.startswith("import time:") and "imported package" not in line
    }


def _run_imports(network: Path, tmp_path: Path) -> set[str]:
    args = [sys.executable, "-X", "importtime", "-m", "netrun", "run", str(network), "-i", "hi", "--json"]
    done = subprocess.run(args, capture_output=True, text=True, env=_env(tmp_path), cwd=network.parent, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["status"] == "completed"
    return _packages(done.stderr)


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(fallback=lambda body: Reply(text="ok")) as server:
        yield server


def test_a_run_of_an_openai_compatible_model_imports_no_sdk_server_or_mcp(llm: FakeLLM, tmp_path: Path) -> None:
    network = tmp_path / "direct.yaml"
    network.write_text(DIRECT.format(base=llm.base_url))
    before = llm.count
    imported = _run_imports(network, tmp_path)
    assert llm.count == before + 1  # the run did call the model, over HTTP
    assert "aiohttp" in imported  # the log is complete: the direct client's own dependency is in it
    assert not imported & set(RUN_NEVER), sorted(imported & set(RUN_NEVER))


def test_a_run_of_scripted_models_imports_no_http_client_at_all(tmp_path: Path) -> None:
    network = tmp_path / "offline.yaml"
    network.write_text(OFFLINE)
    (tmp_path / "offline.replies.yaml").write_text(REPLIES)
    imported = _run_imports(network, tmp_path)
    assert "pydantic" in imported
    assert not imported & {*RUN_NEVER, "httpx", "httpcore", "aiohttp"}, sorted(
        imported & {*RUN_NEVER, "httpx", "httpcore", "aiohttp"}
    )


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_on_the_local_engine_imports_no_inngest_mcp_or_litellm(llm: FakeLLM, tmp_path: Path) -> None:
    folder = tmp_path / "networks"
    folder.mkdir()
    (folder / "direct.yaml").write_text(DIRECT.format(base=llm.base_url))
    port = free_port()
    log = tmp_path / "importtime.txt"
    env = {k: v for k, v in _env(tmp_path).items() if not k.startswith("INNGEST_")}
    args = [sys.executable, "-X", "importtime", "-m", "netrun", "serve", str(folder), "--port", str(port), "--engine", "local"]
    with log.open("w") as stderr:
        server = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            until("/healthz", lambda: server.poll() is not None or _healthy(f"http://127.0.0.1:{port}/healthz"), timeout=60)
            assert server.poll() is None, log.read_text()[-2000:]
        finally:
            server.terminate()
            server.wait(timeout=30)
    imported = _packages(log.read_text())
    assert {"fastapi", "uvicorn"} <= imported  # what a server needs is there: the log is complete
    assert not imported & set(SERVE_NEVER), sorted(imported & set(SERVE_NEVER))


def test_the_httpx_cli_stand_in_loads_the_real_cli_when_asked() -> None:
    code = (
        "from netrun._fast_start import fast_start\nfast_start()\n"
        "import sys\nimport httpx\nassert 'rich' not in sys.modules\n"
        "from httpx._main import print_response\n"  # not on the stand-in: the real module loads
        "print(callable(httpx.main), callable(print_response), 'rich' in sys.modules)\n"
    )
    assert _run(code) == "True True True"
