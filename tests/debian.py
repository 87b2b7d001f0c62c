"""Debian packages some tests need (PostgreSQL, bubblewrap, Chromium): installed when missing,
as root, as `.ci/run` does on a fresh machine, so that `pytest` alone runs every test there.

The suite runs on several workers (pytest-xdist), each of which may ask at once: a file lock
makes them install one at a time, and each checks again under it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "netrun-tests-apt.lock"


def ensure(packages: Sequence[str], present: Callable[[], bool]) -> bool:
    """Whether ``present()`` holds, after installing ``packages`` with apt-get when it did
    not and this process may (root, on Debian). False: not installed, the caller says why."""
    if present():
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not present():
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env, capture_output=True)
    return present()


def has_bwrap() -> bool:
    return ensure(["bubblewrap"], lambda: shutil.which("bwrap") is not None)


def has_chromium(chromium: str = "/usr/bin/chromium") -> bool:
    return ensure(["chromium", "chromium-driver"], lambda: Path(chromium).exists() and shutil.which("chromedriver") is not None)
