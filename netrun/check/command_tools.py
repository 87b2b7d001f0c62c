"""Check phase, ``command`` tools: argv's shape against ``shell``, the working directory, and
what a sandbox needs (bubblewrap on this machine, read-only folders it can mount).

Templates (``argv``, ``stdin``, ``env``) are checked through the scope table with every tool
kind's (:mod:`.tools`); unknown fields and bad values come from the spec. The folders are
looked at as they are now: a missing one is a warning, since a run may make it first; a
missing ``bwrap`` is a warning too (validation may run on another machine than the runs),
and a sandboxed call made without it gets an error result saying so.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from .. import envrefs
from ..diagnostics import YamlPath
from ..spec.tools import SANDBOX_WORK, CommandTool, SandboxSpec, sandbox_mount_clash
from .spec_errors import show

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_A_NAME = "is not an environment variable name (letters, digits and '_', not starting with a digit)"

if TYPE_CHECKING:
    from .network import NetworkChecker

"""Where the sandbox mounts its work folder (:data:`netrun.tools.sandbox.WORK`: validation
does not import the run side)."""


def check(c: NetworkChecker) -> None:
    """Each ``command`` tool of the network."""
    base_dir = Path(c.doc.file).parent if c.doc.file else None
    for name, tool in c.spec.tools.items():
        if isinstance(tool, CommandTool):
            _command(c, ("tools", name, "command"), tool, base_dir)


def _command(c: NetworkChecker, p: YamlPath, tool: CommandTool, base_dir: Path | None) -> None:
    call = tool.command
    if isinstance(call.argv, str) and not call.shell:
        c.report(
            (*p, "argv"),
            "argv is a list of arguments, each one template ([grep, -rn, '{{ args.pattern }}']); "
            "one string is a shell script, run only with shell: true",
            "command-not-list",
        )
    elif isinstance(call.argv, list) and call.shell:
        c.report(
            (*p, "shell"),
            "shell: true runs argv as one string (the script, its inserted values shell-quoted); "
            "write argv as one string, or drop shell: true to pass the list as arguments",
            "shell-with-list",
            key=True,
        )
    elif isinstance(call.argv, list) and not call.argv[0].strip():
        c.report((*p, "argv", 0), "argv[0] is empty: it names the program to run", "empty-program")
    elif isinstance(call.argv, list) and ("{{" in call.argv[0] or "{%" in call.argv[0]):
        c.warn(
            (*p, "argv", 0),
            "argv[0] is a template: whoever writes its values (the model) chooses the program to run; "
            "write the program literally and pass values as arguments",
            "templated-program",
            key=False,
        )
    elif isinstance(call.argv, str) and not call.argv.strip():
        c.report((*p, "argv"), "argv is an empty script", "empty-program")
    elif isinstance(call.argv, str) and envrefs.names(call.argv):
        c.report(
            (*p, "argv"),
            "a shell script may not hold ${ENV} references (the shell would read their values as code): "
            'set them in env (env: {TOKEN: ${TOKEN}}) and write "$TOKEN" in the script',
            "env-in-shell",
        )
    for key in call.env:
        if not _ENV_NAME.fullmatch(key):
            c.report((*p, "env", key), f"{show(key)} {_NOT_A_NAME}", "bad-env-name", key=True)
    for i, key in enumerate(call.env_pass):
        if not _ENV_NAME.fullmatch(key):
            c.report((*p, "env_pass", i), f"{show(key)} {_NOT_A_NAME}", "bad-env-name")
    box = None if call.sandbox is False else SandboxSpec() if call.sandbox is True else call.sandbox
    if call.cwd is not None:
        if box is not None:
            c.report(
                (*p, "cwd"),
                f"a sandboxed command runs in its work folder, {SANDBOX_WORK}: cwd is not used with sandbox "
                "(mount more folders with sandbox.read_only)",
                "cwd-with-sandbox",
                key=True,
            )
        elif base_dir is not None and not (base_dir / call.cwd).is_dir():
            c.warn(
                (*p, "cwd"), f"cwd {show(call.cwd)} is not a folder (relative to the network file) yet", "missing-cwd", key=False
            )
    if box is None:
        return
    if shutil.which("bwrap") is None:
        c.warn(
            (*p, "sandbox"),
            "sandbox needs bubblewrap (bwrap), which is not installed here: install it where the network runs "
            "(apt install bubblewrap), or its calls get an error result",
            "no-bubblewrap",
        )
    for i, entry in enumerate(box.read_only):
        folder = Path(entry) if base_dir is None else (base_dir / entry)
        text = str(folder.resolve()) if base_dir is not None or folder.is_absolute() else entry
        at: YamlPath = (*p, "sandbox", "read_only", i)
        clash = sandbox_mount_clash(text)
        if clash is not None:
            c.report(at, f"{show(entry)} ({text}) {clash}: mount a folder beside it", "sandbox-overlap")
        elif folder.is_absolute() and not folder.is_dir():
            c.warn(at, f"{show(entry)} is not a folder", "missing-folder", key=False)
        else:
            exposed = [name for name in (".env", ".netrun") if (folder / name).exists()]
            if exposed:
                c.warn(
                    at,
                    f"{show(entry)} holds {' and '.join(exposed)}, which the sandboxed command could read (secrets; "
                    "netrun's journal and other runs' work folders): mount a folder that holds only what it needs",
                    "sandbox-exposes",
                    key=False,
                )
