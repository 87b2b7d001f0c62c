"""The ``command`` tool kind: one program run per call, its argv built from templates.

::

    tools:
      grep:
        command:
          argv: [grep, -rn, "{{ args.pattern }}", src]   # each item exactly one argument
          cwd: repo                                      # relative to the network file
          timeout: 20s
          ok_codes: [0, 1]                               # grep's "no match" is a result
        parameters: {pattern: {type: string}}
        approval: required

Why it is built this way:

* **No shell unless asked.** ``argv`` is a list; each item renders to exactly one argument,
  passed to ``execve`` as it is: model text such as ``; rm -rf /`` or ``$(id)`` is a literal
  argument. With ``shell: true``, ``argv`` is one string run by ``/bin/sh -c``; the text the
  file writes is the script, and every value a ``{{ }}`` inserts reaches it through an
  environment variable the script reads (:func:`shell_script`;
  :meth:`~netrun.runtime.render.Renderer.render_pieces` tells text and values apart), so a
  value is never code and, unquoted, always one word.
* **Secrets.** ``${ENV}`` references (in ``argv``, ``stdin``, ``env``) are swapped for
  placeholders before rendering and revealed after (:class:`netrun.runtime.outbound.CallEnv`,
  as HTTP tools do): a value never passes through the template engine, and text a template
  inserts is never env-resolved. Every value taken is redacted from the result and error.
* **Environment.** The command sees only the variables named in ``env_pass`` (default
  ``PATH``) taken from netrun's environment, plus ``env``: never netrun's API keys.
* **Bounded.** stdout and stderr are read as they come; past ``max_bytes`` each is dropped
  (still read, so the command is not blocked), and the result says how much was cut. Past
  ``timeout`` the command's whole process group is killed (it runs in a session of its own).
* **Durability rule 6.** ``idempotent: false`` (the default): a call cut off by a crash is not
  run again on resume; the model is told it may have run (:func:`netrun.runtime.tooling.run_tool`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import tempfile
from pathlib import Path
from typing import Any

from ..data_dir import data_dir
from ..envrefs import MissingEnvError
from ..runtime.args import call_args, parameters_schema
from ..runtime.outbound import CallEnv
from ..runtime.render import Renderer, RenderError
from ..runtime.tooling import ToolContext, ToolOutcome
from ..spec import NetworkSpec, scopes
from ..spec.base import parse_duration
from ..spec.tools import CommandTool, SandboxSpec
from . import sandbox as sb

_CHUNK = 65536
_TAIL = 2000
"""The characters of stdout and of stderr an error result quotes (their ends: where errors are)."""


class CommandToolImpl:
    """A ``command`` tool: renders argv, stdin and env from the spec, runs the program."""

    def __init__(self, name: str, spec: CommandTool) -> None:
        self.name = name
        self.call_spec = spec.command
        self.parameters = parameters_schema(spec.parameters)
        argv = self.call_spec.argv
        shown = argv if isinstance(argv, str) else shlex.join(argv)
        self.description = spec.description or f"Run: {shown}"
        self.timeout = parse_duration(self.call_spec.timeout).total_seconds()
        self.idempotent = self.call_spec.idempotent
        """Read by the loop (durability rule 6): False, an interrupted call is not run again."""
        box = self.call_spec.sandbox
        self.sandbox: SandboxSpec | None = SandboxSpec() if box is True else (box or None)

    async def call(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        args, problem = call_args(self.name, args, self.parameters)
        if problem is not None:
            return ToolOutcome.failure(problem)
        env = CallEnv(ctx.environ)
        try:
            argv, stdin, environ = self._render(ctx.renderer, ctx.variables(args, scopes.TOOL_COMMAND), env, ctx)
        except MissingEnvError as exc:
            return ToolOutcome.failure(str(exc))  # names the variable only
        except RenderError as exc:
            return env.redact_outcome(ToolOutcome.failure(str(exc)))
        return env.redact_outcome(await self._run(argv, stdin, environ, ctx))

    def _render(
        self, renderer: Renderer, variables: dict[str, Any], env: CallEnv, ctx: ToolContext
    ) -> tuple[list[str], bytes | None, dict[str, str]]:
        call = self.call_spec

        def text(source: str) -> str:
            return env.reveal(renderer.render(env.protect(source), variables))

        passed: dict[str, str] = {}
        if isinstance(call.argv, str):  # shell: true (validate refuses a string without it)
            pieces = renderer.render_pieces(env.protect(call.argv), variables)
            script, passed = shell_script([(env.reveal(p), inserted) for p, inserted in pieces])
            argv = ["/bin/sh", "-c", script]
        else:
            argv = [text(item) for item in call.argv]
        for i, item in enumerate(argv):
            if "\x00" in item:
                raise RenderError(f"argv[{i}] holds a NUL character, which no argument can")
        stdin = None if call.stdin is None else text(call.stdin).encode()
        environ = {k: ctx.environ[k] for k in call.env_pass if k in ctx.environ}
        for name, value in environ.items():  # a passed token is as secret as a ${ENV} one
            if name not in PLAIN_VARIABLES and not name.startswith("LC_"):
                env.secrets.add(value)
        if "PATH" in call.env_pass and "PATH" not in environ:
            environ["PATH"] = os.defpath
        environ.update({k: text(v) for k, v in call.env.items()})
        for name, value in passed.items():
            if "\x00" in value:
                raise RenderError(f"a value inserted into the script holds a NUL character ({name})")
        environ.update(passed)
        return argv, stdin, environ

    async def _run(self, argv: list[str], stdin: bytes | None, environ: dict[str, str], ctx: ToolContext) -> ToolOutcome:
        box = self.sandbox
        if box is None:
            cwd = (ctx.base_dir / self.call_spec.cwd) if self.call_spec.cwd else ctx.base_dir
            if not cwd.is_dir():
                return ToolOutcome.failure(f"cwd {self.call_spec.cwd!r} is not a folder (relative to the network file)")
            return await self._spawn(argv, stdin, environ, cwd)
        bwrap = sb.find_bwrap(ctx.environ)
        if bwrap is None:
            return ToolOutcome.failure(sb.MISSING)
        read_only = sb.read_only_folders(box, ctx.base_dir)
        problem = sb.conflict(read_only)
        if problem:
            return ToolOutcome.failure(problem)
        if box.work == "call":
            with tempfile.TemporaryDirectory(prefix="netrun-work-") as fresh:
                return await self._spawn(sb.wrap(bwrap, box, Path(fresh), read_only, argv), stdin, environ, Path(fresh))
        work = sb.run_folder(ctx.data_dir or data_dir(ctx.environ), ctx.run_id)
        return await self._spawn(sb.wrap(bwrap, box, work, read_only, argv), stdin, environ, work)

    async def _spawn(self, argv: list[str], stdin: bytes | None, environ: dict[str, str], cwd: Path) -> ToolOutcome:
        call = self.call_spec
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=environ,
                start_new_session=True,  # its own process group: a timeout kills all it started
            )
        except OSError as exc:
            return ToolOutcome.failure(f"cannot run {argv[0]!r}: {exc.strerror or exc}")
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _Capped(call.max_bytes), _Capped(call.max_bytes)
        readers = [asyncio.ensure_future(out.drain(proc.stdout)), asyncio.ensure_future(err.drain(proc.stderr))]
        if stdin is not None:
            readers.append(asyncio.ensure_future(_feed(proc, stdin)))
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(*readers)
                code = await proc.wait()
        except TimeoutError:
            _kill_group(proc.pid)
            for reader in readers:
                reader.cancel()
            await proc.wait()
            return ToolOutcome(
                result=self._result(proc.returncode, out, err),
                error=f"the command did not finish within {self.timeout:g} s: it was killed" + _tails(out, err),
            )
        except BaseException:  # the run is stopping: leave nothing behind
            _kill_group(proc.pid)
            raise
        _kill_group(proc.pid)  # what it left running in the background, holding no pipe
        result = self._result(code, out, err)
        if code in call.ok_codes:
            return ToolOutcome(result=result)
        if code < 0:
            with contextlib.suppress(ValueError):
                return ToolOutcome(
                    result=result, error=f"the command was killed by {signal.Signals(-code).name}" + _tails(out, err)
                )
        return ToolOutcome(result=result, error=f"the command exited with code {code}" + _tails(out, err))

    @staticmethod
    def _result(code: int | None, out: _Capped, err: _Capped) -> dict[str, Any]:
        return {"exit_code": code, "stdout": out.text(), "stderr": err.text()}


class _Capped:
    """One output stream, read to its end; the first ``limit`` bytes kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.size = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            self.size += len(chunk)
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    def text(self) -> str:
        text = self.kept.decode("utf-8", errors="replace")
        if self.size > len(self.kept):
            text += f"\n[... {self.size - len(self.kept)} more bytes cut: the output cap (max_bytes) is {self.limit}]"
        return text


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it need not read it all
        proc.stdin.write(data)
        await proc.stdin.drain()
    proc.stdin.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tails(out: _Capped, err: _Capped) -> str:
    parts = [f"\n{name} (end):\n{stream.text()[-_TAIL:]}" for name, stream in (("stderr", err), ("stdout", out)) if stream.size]
    return "".join(parts)


PLAIN_VARIABLES = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME", "SHELL", "PWD", "TMPDIR"})
"""Variables ``env_pass`` may pass whose values are not redacted from the output (every other
passed value is, like a ``${ENV}`` value: ``MY_TOKEN`` is as secret as ``${MY_TOKEN}``)."""

SHELL_VALUE = "NETRUN_VALUE_"
"""The environment variables that carry a shell script's inserted values (``NETRUN_VALUE_0``...)."""


def shell_script(pieces: list[tuple[str, bool]]) -> tuple[str, dict[str, str]]:
    """A ``shell: true`` script whose inserted values are never part of its text: each
    ``{{ }}`` becomes a reference to an environment variable that holds the value (the
    returned mapping), so no value is read as code, inside double quotes, a here-document or
    backticks alike. Unquoted it is written ``"${NETRUN_VALUE_0}"`` (one word, no globbing);
    inside double quotes ``${NETRUN_VALUE_0}``; inside single quotes, where nothing expands,
    it is refused. (Quoting each value with ``shlex.quote`` was not enough: inside ``"..."``
    its single quotes are plain characters and ``$(...)`` in the value ran.)"""
    out: list[str] = []
    values: dict[str, str] = {}
    quote: str | None = None
    for text, inserted in pieces:
        if not inserted:
            out.append(text)
            quote = _quoting_after(text, quote)
            continue
        if quote == "'":
            raise RenderError(
                "a {{ }} inside '...' in a shell script cannot be passed safely: write it outside the quotes or inside \"...\""
            )
        name = f"{SHELL_VALUE}{len(values)}"
        values[name] = text
        out.append(f"${{{name}}}" if quote == '"' else f'"${{{name}}}"')
    return "".join(out), values


def _quoting_after(text: str, quote: str | None) -> str | None:
    """The quotes open after the shell reads ``text`` (None, ``'`` or ``"``), starting in ``quote``."""
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = None
    return quote


def build(name: str, spec: CommandTool, network: NetworkSpec) -> CommandToolImpl:
    return CommandToolImpl(name, spec)


__all__ = ["CommandToolImpl", "build"]
