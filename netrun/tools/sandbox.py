"""The bubblewrap sandbox of ``command`` tools: where a call's work folder is, and the
``bwrap`` command line that runs the command inside it.

What the sandbox gives the command, and why:

* A root of its own (a tmpfs) with only the system folders bound read-only (``/usr``,
  ``/bin``, ``/sbin``, ``/lib*``, ``/etc``) plus the folders the tool lists in
  ``read_only``: the host's other files (the journal, other runs' work folders, a ``.env``)
  are not there to read, let alone write.
* One writable folder, the work folder, mounted at :data:`WORK` and used as the working
  directory; a private ``/tmp``, ``/dev`` and ``/proc``.
* ``--unshare-all``: no network (not even the host's 127.0.0.1: a namespace of its own)
  unless ``network: true`` (``--share-net``), and its own pid namespace, so that when the
  ``bwrap`` process is killed (a timeout) everything inside dies with it.
* ``--die-with-parent``: a netrun killed with ``kill -9`` takes its sandboxed commands along;
  ``--new-session``: a command cannot push keystrokes into netrun's terminal (TIOCSTI).

Work folders (``work: run``) are ``DATA/work/RUN_ID`` where DATA is the engine's data
directory, beside its journal (``$NETRUN_DATA_DIR``, else ``.netrun``: :mod:`netrun.data_dir`):
the same path for every call of a run and after a resume, a different one for each run, and
a ``netrun test`` run's in its scratch folder. They are kept after the run (what a coding
agent wrote is its output); delete them when done.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from ..spec.tools import SANDBOX_WORK, SandboxSpec, sandbox_mount_clash

WORK = SANDBOX_WORK
"""Where the work folder is mounted inside the sandbox."""
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")
"""Host folders every sandbox reads (bound read-only where they exist)."""
MISSING = (
    "the command asks for a sandbox, but bubblewrap (bwrap) is not installed on the machine that runs it "
    "(install it: apt install bubblewrap)"
)
"""The error result of a sandboxed call where ``bwrap`` cannot be found."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def find_bwrap(environ: Mapping[str, str]) -> str | None:
    """The ``bwrap`` program on the run's ``PATH`` (None: bubblewrap is not installed)."""
    return shutil.which("bwrap", path=environ.get("PATH") or None)


def run_folder(data: Path, run_id: str) -> Path:
    """The work folder of run ``run_id`` (``work: run``) in the data directory ``data``, made on first use."""
    name = _UNSAFE.sub("_", run_id).lstrip(".") or "_"
    folder = (data / "work" / name).resolve()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def read_only_folders(spec: SandboxSpec, base_dir: Path) -> list[Path]:
    """The tool's extra read-only folders, absolute (relative ones are the network file's)."""
    return [(base_dir / entry).resolve() for entry in spec.read_only]


def wrap(bwrap: str, spec: SandboxSpec, work: Path, read_only: list[Path], argv: list[str]) -> list[str]:
    """The ``bwrap`` command line that runs ``argv`` with ``work`` as its writable folder."""
    line = [bwrap, "--tmpfs", "/"]
    for system in SYSTEM:
        line += ["--ro-bind-try", system, system]
    line += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--bind", str(work), WORK]
    for folder in read_only:  # after /tmp and /work: a folder inside them is mounted over them
        line += ["--ro-bind", str(folder), str(folder)]
    line += ["--chdir", WORK]
    line += ["--unshare-all", *(["--share-net"] if spec.network else []), "--die-with-parent", "--new-session"]
    # No capabilities inside: run as root (a CI machine), bwrap would otherwise keep nearly all
    # of them, and the command could remount the read-only folders writable, or mount a disk.
    line += ["--cap-drop", "ALL"]
    return [*line, "--", *argv]


def conflict(read_only: list[Path]) -> str | None:
    """Why the read-only folders cannot be mounted as asked (one would hide ``/work``,
    ``/tmp``, ``/dev`` or ``/proc``, or sit in the last two, or is not a folder), or None.
    A folder inside ``/tmp`` or ``/work`` is mounted there, over the sandbox's own."""
    for folder in read_only:
        text = str(folder)
        clash = sandbox_mount_clash(text)
        if clash is not None:
            return f"sandbox.read_only: {text} {clash}: mount a folder beside it"
        if not folder.is_dir():
            return f"sandbox.read_only: {text} is not a folder"
    return None


__all__ = ["MISSING", "SYSTEM", "WORK", "conflict", "find_bwrap", "read_only_folders", "run_folder", "wrap"]
