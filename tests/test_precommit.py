"""The pre-commit hook (.pre-commit-hooks.yaml) with the real pre-commit, and the
`netrun validate --include-dependents` it runs: staged files and what they can break.

pre-commit installs the hook from a git repository holding this checkout's package (its
own virtual environment, `language: python`, pip against the package index), as a user's
`repo:` entry would; each case stages files in a scratch repository and runs the hook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import NETRUN, REPO

PRE_COMMIT = str(Path(sys.executable).parent / "pre-commit")

NETWORK = """name: {name}
model: openai/gpt-4o-mini
include: [shared/common.fragment.yaml]
agents:
  a:
    description: d
    system: hi
    tools: [finish]
"""
FRAGMENT = "tools:\n  finish:\n    description: Call when done.\n    state: {done: true}\nstate:\n  done: {type: boolean, default: false}\n"
CALLER = """name: caller
model: openai/gpt-4o-mini
agents:
  a:
    description: d
    system: hi
    tools: [ask]
tools:
  ask:
    description: Ask the helper network.
    network: {name}
"""


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A git repository of this checkout's package and hook definitions (what a `repo:`
    entry clones), and its commit."""
    repo = tmp_path_factory.mktemp("hook-repo")
    for name in ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml"):
        shutil.copy2(REPO / name, repo / name)
    shutil.copytree(REPO / "netrun", repo / "netrun", ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "hook")
    return repo, _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit cache for the module: the hook's environment is built once."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def project(
    tmp_path: Path, hook_repo: tuple[Path, str], pre_commit_home: Path
) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """A user's repository with networks committed and the hook configured; calling the
    fixture runs `pre-commit run` on what is staged."""
    repo = tmp_path / "project"
    (repo / "networks" / "shared").mkdir(parents=True)
    (repo / "networks" / "shared" / "common.fragment.yaml").write_text(FRAGMENT)
    (repo / "networks" / "one.yaml").write_text(NETWORK.format(name="one"))
    (repo / "networks" / "two.yaml").write_text(
        "name: two\nmodel: openai/gpt-4o-mini\nagents:\n  a:\n    description: d\n    system: hi\n"
    )
    (repo / ".github").mkdir()
    (repo / ".github" / "ci.yml").write_text("on: [push]\njobs: {}\n")  # YAML that is no network
    path, rev = hook_repo
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {path}\n    rev: {rev}\n    hooks:\n      - id: netrun-validate\n        args: [--search, networks]\n"
    )
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "networks")

    def run() -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PRE_COMMIT_HOME": str(pre_commit_home)}
        return subprocess.run(
            [PRE_COMMIT, "run", "netrun-validate", "--color", "never"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )

    run.repo = repo  # type: ignore[attr-defined]
    yield run


def test_a_staged_fragment_that_breaks_an_including_network_fails_the_hook(project) -> None:
    repo: Path = project.repo
    # The fragment is valid on its own; the network that lists `finish` among its tools is not.
    fragment = repo / "networks" / "shared" / "common.fragment.yaml"
    fragment.write_text(FRAGMENT.replace("finish:", "finished:"))
    _git(repo, "add", str(fragment))
    done = project()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "networks/one.yaml" in done.stdout
    assert "unknown tool 'finish'" in done.stdout
    assert "two.yaml" not in done.stdout  # it includes nothing: not validated


def test_broken_files_nobody_staged_do_not_fail_the_hook(project) -> None:
    repo: Path = project.repo
    # Committed broken (say with --no-verify), and a broken edit left unstaged: neither is this commit's.
    (repo / "networks" / "old.yaml").write_text("name: old\nagents: {}\n")
    _git(repo, "add", "networks/old.yaml")
    _git(repo, "commit", "-q", "--no-verify", "-m", "broken")
    (repo / "networks" / "one.yaml").write_text("name: one\nagents: {}\n")
    two = repo / "networks" / "two.yaml"
    two.write_text(two.read_text().replace("system: hi", "system: hello"))
    (repo / ".github" / "ci.yml").write_text("on: [push, pull_request]\njobs: {}\n")
    _git(repo, "add", "networks/two.yaml", ".github/ci.yml")
    done = project()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout
    # The same staged file broken fails it (the hook does run on staged networks).
    two.write_text("name: two\nagents: {}\n")
    _git(repo, "add", "networks/two.yaml")
    failed = project()
    assert failed.returncode == 1
    assert "networks/two.yaml" in failed.stdout and "old.yaml" not in failed.stdout


def _validate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NETRUN, "validate", "--include-dependents", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_a_renamed_network_fails_the_networks_that_call_it(tmp_path: Path) -> None:
    folder = tmp_path / "networks"
    (folder / "shared").mkdir(parents=True)
    (folder / "shared" / "common.fragment.yaml").write_text(FRAGMENT)
    (folder / "helper.yaml").write_text(NETWORK.format(name="helper"))
    (folder / "caller.yaml").write_text(CALLER.format(name="helper"))
    (folder / "unrelated.yaml").write_text("name: unrelated\nagents: {}\n")  # broken, never named
    ok = _validate(tmp_path, "networks/helper.yaml")
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.strip() == "2 files valid"  # helper and its caller; not the broken one
    (folder / "helper.yaml").write_text(NETWORK.format(name="helped"))
    broken = _validate(tmp_path, "networks/helper.yaml")
    assert broken.returncode == 1
    assert "networks/caller.yaml" in broken.stdout and "'helper'" in broken.stdout
    assert "unrelated.yaml" not in broken.stdout
    # Through a fragment: the fragment's edit reaches helper, and helper's callers.
    both = _validate(tmp_path, "networks/shared/common.fragment.yaml", "--search", "networks")
    assert both.returncode == 1
    assert "networks/caller.yaml" in both.stdout


def test_files_outside_the_search_folders_or_not_networks_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "networks").mkdir()
    (tmp_path / "networks" / "a.test.yaml").write_text("cases: nope\n")
    (tmp_path / "ci.yml").write_text("on: [push]\n")
    done = _validate(tmp_path, "ci.yml", "networks/a.test.yaml", "--search", "networks")
    assert done.returncode == 0 and done.stdout == ""


def test_a_renamed_or_deleted_fragment_fails_the_networks_that_include_it(tmp_path: Path) -> None:
    folder = tmp_path / "networks"
    (folder / "shared").mkdir(parents=True)
    old = folder / "shared" / "common.fragment.yaml"
    old.write_text(FRAGMENT)
    (folder / "helper.yaml").write_text(NETWORK.format(name="helper"))
    (folder / "unrelated.yaml").write_text("name: unrelated\nagents: {}\n")  # broken, never named
    new = folder / "shared" / "base.fragment.yaml"
    old.rename(new)  # what pre-commit passes for a rename: the new name only
    renamed = _validate(tmp_path, "networks/shared/base.fragment.yaml")
    assert renamed.returncode == 1, renamed.stdout
    assert "networks/helper.yaml" in renamed.stdout and "common.fragment.yaml" in renamed.stdout
    assert "unrelated.yaml" not in renamed.stdout
    new.unlink()  # deleted, and passed by a caller that passes a diff's deleted paths
    deleted = _validate(tmp_path, "networks/shared/common.fragment.yaml")
    assert deleted.returncode == 1, deleted.stdout
    assert "networks/helper.yaml" in deleted.stdout and "unrelated.yaml" not in deleted.stdout
