from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from netrun.cli import main

REPO = Path(__file__).resolve().parents[1]
NETRUN = str(Path(sys.executable).parent / "netrun")
"""The installed console script, in the same environment as the tests."""


def until(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll ``check`` until it returns something truthy (and return that), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def netrun_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``netrun ARGS`` in-process from the repository root, as a user would."""
    monkeypatch.chdir(REPO)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(main, list(args), catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"netrun {' '.join(args)} raised {result.exception!r}\n{result.output}") from result.exception
        return result

    return invoke


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a file under a temporary directory and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def _postgres_bin() -> Path:
    """Debian's PostgreSQL server binaries; the test setup installs the package when they
    are missing (as `.ci/run` does on a fresh machine)."""
    import glob

    from . import debian

    debian.ensure(["postgresql"], lambda: bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")))
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (Debian's package), then run the tests again")
    return Path(found[-1]).parent


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 (a free port), with a password, for this session."""
    import shutil
    import subprocess
    import tempfile

    from .fakes.server_thread import free_port

    bindir = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="netrun-pg-"))
    data = root / "data"
    password = "pg-" + os.urandom(8).hex()
    (root / "pw").write_text(password)
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        for path in (root, root / "pw"):
            shutil.chown(path, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "netrun",
            "--auth=scram-sha-256",
            f"--pwfile={root / 'pw'}",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
    subprocess.run(
        [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://netrun:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_llm() -> Iterator[Any]:
    """One fake OpenAI-compatible server per test module (starting one takes ~0.1 s)."""
    from .fakes.llm_server import FakeLLM

    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def receiver() -> Iterator[Any]:
    """A real OTLP/HTTP receiver (tests/otlp_receiver.py) for the module's traced runs."""
    from .otlp_receiver import OtlpReceiver

    with OtlpReceiver() as server:
        yield server


@pytest.fixture
def llm(shared_llm: Any) -> Any:
    """The module's fake model server, with an empty script and log (a module may define
    its own ``llm`` instead)."""
    shared_llm.reset()
    return shared_llm


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``served(**env)``: a ``netrun serve`` app (the local engine, the networks of ``tmp_path``,
    its data in ``tmp_path/data``) on uvicorn on 127.0.0.1, with the fake model's key set and
    ``env`` added; stopped after the test. A test file may define its own ``served``."""
    from netrun.serve.app import create_app
    from netrun.serve.settings import ServeSettings

    from .fakes.served import Served

    started: list[Served] = []

    def serve(**env: str) -> Served:
        environ = {**os.environ, "FAKE_LLM_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env}
        server = Served(
            lambda port: create_app(
                ServeSettings.from_env(environ, (tmp_path,), engine="local", data_dir=tmp_path / "data", port=port)
            )
        ).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


def error_lines(result: Result) -> list[str]:
    """The ``file:line:col: error: ...`` lines ``netrun validate`` printed."""
    return [line for line in result.output.splitlines() if ": error: " in line]
