"""netrun as people install it: the wheel built from this checkout, installed in fresh
virtual environments outside the repository, slim (``pip install netrun-agents``) and full
(``netrun-agents[all]``), and the published metadata (name, extras, bounds, version).

The two installs take most of this module's minute or two (pip resolves from its cache,
with constraints.txt as CI installs); each is one test, so that pytest-xdist never builds
an environment twice. ``-m "not packaging"`` leaves them out of a quick local run.
"""

from __future__ import annotations

import ast
import email.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

import netrun
from netrun.extras import missing_extra, require

from .conftest import REPO
from .fakes.server_thread import free_port

QUICKSTART = ["networks/quickstart.yaml", "-i", "How do I give analysts read-only access?"]
REPLAY = ["--replay", "networks/quickstart.replies.yaml"]
EXTRA_LIBRARIES = (
    "litellm",
    "mcp",
    "inngest",
    "fastapi",
    "uvicorn",
    "httpx",
    "aiohttp",
    "psycopg",
    "watchfiles",
    "opentelemetry",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = out.glob("netrun_agents-*.whl")
    return built


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def _venv(where: Path, wheel: Path, extras: str = "") -> tuple[Path, float, int]:
    """A fresh virtual environment with the wheel installed: its bin folder, the seconds the
    install took and the size of its site-packages in bytes."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    started = time.monotonic()
    subprocess.run(
        [str(where / "bin" / "pip"), "install", "--quiet", "-c", str(REPO / "constraints.txt"), f"{wheel}{extras}"],
        check=True,
        capture_output=True,
        timeout=240,
    )
    took = time.monotonic() - started
    (site,) = where.glob("lib/python3*/site-packages")
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    return where / "bin", took, size


def _project(tmp_path: Path) -> Path:
    """A user's folder with a copy of the examples: nothing of the repository on the path."""
    folder = tmp_path / "project"
    shutil.copytree(REPO / "networks", folder / "networks", ignore=shutil.ignore_patterns("__pycache__", ".netrun"))
    (folder / "node_modules").symlink_to(REPO / "node_modules")  # the npm MCP servers examples start (`npm ci`)
    return folder


def _run(bin_dir: Path, cwd: Path, *args: str, timeout: float = 120, **env_added: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"NETRUN_DATA_DIR": str(cwd / ".netrun"), **env_added}
    return subprocess.run([str(bin_dir / "netrun"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_published_metadata(wheel: Path) -> None:
    meta = _metadata(wheel)
    assert meta["Name"] == "netrun-agents"
    assert meta["Version"] == netrun.__version__ == importlib.metadata.version("netrun-agents")
    assert meta["License-Expression"] == "Apache-2.0"
    requires = meta.get_all("Requires-Dist") or []
    assert not [r for r in requires if "==" in r.split(";")[0]], "exact pins belong in constraints.txt"
    base = sorted(re.split(r"[<>=!\[; ]", r)[0].lower() for r in requires if "extra ==" not in r)
    assert base == ["click", "jinja2", "pydantic", "pydantic-core", "pyyaml"]
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"run", "models", "mcp", "inngest", "serve", "postgres", "otel", "metrics", "all", "dev"} <= extras
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
    with zipfile.ZipFile(wheel) as archive:
        assert any(n.endswith("licenses/LICENSE") for n in archive.namelist())


def test_every_library_netrun_imports_is_declared(wheel: Path) -> None:
    """A module imported by netrun/ comes from a distribution the metadata names (base or an
    extra, ``all``): one pulled in only by another library's requirements may go away."""
    declared = {
        re.split(r"[<>=!\[; ]", r)[0].lower().replace("_", "-")
        for r in _metadata(wheel).get_all("Requires-Dist") or []
        if "extra ==" not in r or "extra == 'all'" in r
    }
    owners = importlib.metadata.packages_distributions()
    missing: dict[str, str] = {}
    for path in (REPO / "netrun").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "netrun":
                    continue
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                if not dists & declared:
                    missing[top] = str(path.relative_to(REPO))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_a_missing_optional_module_names_its_extra() -> None:
    found = missing_extra(ModuleNotFoundError("No module named 'fastapi'", name="fastapi.responses"), "netrun serve")
    assert str(found) == "netrun serve needs the 'serve' extra (fastapi is not installed): pip install 'netrun-agents[serve]'"
    assert missing_extra(ModuleNotFoundError("No module named 'nope'", name="nope")) is None  # a bug keeps its traceback
    assert missing_extra(ValueError("x")) is None
    try:  # where a library's own import of it put it: the context of another error
        try:
            raise ModuleNotFoundError("No module named 'litellm'", name="litellm")
        except ModuleNotFoundError:
            raise RuntimeError("wrapped") from None
    except RuntimeError as exc:
        # Found even behind `from None`: a library that re-raises its own error hides nothing here.
        assert (behind := missing_extra(exc)) is not None and behind.extra == "models"
    chained = RuntimeError("wrapped")
    chained.__cause__ = ModuleNotFoundError("No module named 'psycopg'", name="psycopg")
    assert (found := missing_extra(chained)) is not None and found.extra == "postgres"


def test_a_command_whose_extra_is_missing_says_which_in_one_line(netrun_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # Python refuses `import fastapi`, as when it is not installed
    with pytest.raises(ImportError):
        require("serve", "netrun serve")
    result = netrun_cli("serve", "networks", "--no-watch")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: netrun serve needs the 'serve' extra (fastapi is not installed): pip install 'netrun-agents[serve]'"
    )


@pytest.mark.packaging
def test_slim_install_validates_and_names_the_extras_it_lacks(wheel: Path, tmp_path: Path) -> None:
    bin_dir, took, size = _venv(tmp_path / "venv", wheel)
    print(f"slim install: {took:.1f} s, {size / 1e6:.1f} MB of site-packages")
    project = _project(tmp_path)
    version = _run(bin_dir, project, "--version")
    assert version.stdout.strip() == f"netrun, version {netrun.__version__}"
    installed = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])",
            *EXTRA_LIBRARIES,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.strip() == "[]"  # a validate-only install pulls no client, server or driver
    valid = _run(bin_dir, project, "validate", "--strict", "networks")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert re.fullmatch(r"\d+ files valid\n", valid.stdout)
    assert _run(bin_dir, project, "graph", "networks/quickstart.yaml").returncode == 0
    schema = _run(bin_dir, project, "schema")
    assert schema.returncode == 0 and (project / "schemas" / "network.schema.json").is_file()
    scaffolded = _run(bin_dir, project, "new", "demo")
    assert scaffolded.returncode == 0, scaffolded.stderr
    written = re.findall(r"^wrote (\S+\.yaml)$", scaffolded.stdout, re.M)
    assert _run(bin_dir, project, "validate", written[0]).returncode == 0
    for args, extra in (
        (("serve", "networks"), "serve"),
        (("run", *QUICKSTART, *REPLAY), "run"),
        (("test", "networks"), "run"),
    ):
        done = _run(bin_dir, project, *args)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert re.fullmatch(
            rf"Error: netrun {args[0]} needs the '{extra}' extra \(\w+ is not installed\): pip install 'netrun-agents\[{extra}\]'",
            done.stderr.strip(),
        ), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    # With the `run` extra only, a network that needs another extra fails its run naming it.
    subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", "-c", str(REPO / "constraints.txt"), f"{wheel}[run]"],
        check=True,
        capture_output=True,
        timeout=240,
    )
    timekeeper = _run(
        bin_dir, project, "run", "networks/timekeeper.yaml", "-i", "time?", "--replay", "networks/timekeeper.replies.yaml"
    )
    assert timekeeper.returncode == 1
    assert "this network needs the 'mcp' extra" in timekeeper.stdout + timekeeper.stderr
    (project / "claude.yaml").write_text(
        "name: claude\nmodel: anthropic/claude-3-5-haiku-latest\nagents:\n  a:\n    description: d\n    system: hi\n"
    )
    claude = _run(bin_dir, project, "run", "claude.yaml", "-i", "hi", ANTHROPIC_API_KEY="sk-ant-test")
    assert claude.returncode == 1
    assert "needs the 'models' extra (litellm is not installed): pip install 'netrun-agents[models]'" in claude.stdout


@pytest.mark.packaging
def test_full_install_tests_runs_and_serves(wheel: Path, tmp_path: Path) -> None:
    bin_dir, took, size = _venv(tmp_path / "venv", wheel, "[all]")
    print(f"full install: {took:.1f} s, {size / 1e6:.1f} MB of site-packages")
    project = _project(tmp_path)
    tested = _run(bin_dir, project, "test", "networks", timeout=180)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    ran = _run(bin_dir, project, "run", *QUICKSTART, *REPLAY)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "INNGEST_DEV", "INNGEST_SIGNING_KEY")}
    server = subprocess.Popen(
        [str(bin_dir / "netrun"), "serve", "networks", "--port", str(port), "--no-watch", "--data-dir", str(project / "data")],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "netrun serve did not answer /healthz"
            time.sleep(0.1)
    finally:
        server.terminate()
        server.communicate(timeout=30)  # closes its stderr pipe
