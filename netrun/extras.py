"""What each optional part of netrun needs installed, and the one error that says so.

The distribution ``netrun-agents`` installs only what ``netrun validate``, ``schema``,
``graph`` and ``new`` import (PyYAML, pydantic, Jinja2, click): a pre-commit hook or a CI
lint job pulls no model client, MCP, Inngest, web server or database driver. The rest comes
as extras (pyproject.toml's ``[project.optional-dependencies]``), named here by the
top-level modules netrun imports from them:

    run       httpx, aiohttp, tenacity, jsonschema   ``netrun run`` / ``test`` / ``send``, OpenAI-compatible models
    models    litellm                                every other provider (Anthropic, Gemini, Bedrock ...)
    mcp       mcp                                    networks with ``mcp_servers:``
    inngest   inngest                                ``netrun serve`` against an Inngest server
    serve     fastapi, uvicorn, sse-starlette, ...   ``netrun serve``
    postgres  psycopg                                ``history: {store: postgres}``
    otel      opentelemetry                          traces (``OTEL_*`` set)
    metrics   prometheus_client                      ``/metrics``

netrun imports each of these where it is first needed, so a missing one surfaces as a
``ModuleNotFoundError`` wherever that is. :func:`missing_extra` turns such an error into a
:class:`MissingExtraError` ("netrun serve needs the 'serve' extra (fastapi is not installed):
pip install 'netrun-agents[serve]'"); the command line (netrun/cli/group.py) and a failing run
(netrun/engines/execution.py) both call it, and so does the one import that sits behind a
model call's own error handling (litellm's, netrun/models/litellm_client.py): one message for
every import site.
:func:`require` checks a whole extra up front, before a command starts work.

Imports nothing heavy and nothing from netrun but :mod:`netrun.errors`: every layer may use it.
"""

from __future__ import annotations

import importlib.util

from .errors import NetrunError

DISTRIBUTION = "netrun-agents"
"""The name netrun is published under on PyPI (``netrun`` itself belongs to another project)."""

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "run": ("httpx", "aiohttp", "yarl", "tenacity", "jsonschema", "referencing", "anyio"),
    "models": ("litellm",),
    "mcp": ("mcp", "httpx2"),
    "inngest": ("inngest",),
    "serve": ("fastapi", "starlette", "uvicorn", "sse_starlette", "wsproto", "watchfiles"),
    "postgres": ("psycopg",),
    "otel": ("opentelemetry",),
    "metrics": ("prometheus_client",),
}
"""Extra -> the top-level modules netrun imports from what it installs. ``run`` is also part
of ``models``, ``mcp``, ``inngest`` and ``serve`` (pyproject.toml), so one of them is enough."""

_EXTRA_OF = {module: extra for extra, modules in EXTRA_MODULES.items() for module in modules}


class MissingExtraError(NetrunError, ImportError, phase="cli"):
    """A part of netrun is used whose libraries are not installed; the message names the
    module, the extra that installs it and the command to run (exit 1: the environment, not
    the command line, is at fault)."""

    def __init__(self, module: str, extra: str, needed_by: str = "netrun") -> None:
        super().__init__(f"{needed_by} needs the '{extra}' extra ({module} is not installed): {install_hint(extra)}")
        self.module = module
        self.extra = extra


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'netrun-agents[serve]'``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def extra_of(module: str) -> str | None:
    """The extra that installs top-level (or dotted) ``module``, None for one netrun does not name."""
    return _EXTRA_OF.get(module.split(".")[0])


def missing_extra(exc: BaseException, needed_by: str = "netrun") -> MissingExtraError | None:
    """``exc`` as a :class:`MissingExtraError` when it is a ``ModuleNotFoundError`` for a
    module of one of the extras (searched along its ``__cause__`` and ``__context__``, where a
    library's own import of it may have put it), else None: a bug or another library's missing
    module keeps its own traceback."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MissingExtraError):
            return current
        if isinstance(current, ModuleNotFoundError) and current.name:
            extra = extra_of(current.name)
            if extra is not None:
                return MissingExtraError(current.name.split(".")[0], extra, needed_by)
        current = current.__cause__ or current.__context__
    return None


def require(extra: str, needed_by: str) -> None:
    """Raise :class:`MissingExtraError` naming the first module of ``extra`` that cannot be
    found (located, not imported: the check costs no start-up time)."""
    for module in EXTRA_MODULES[extra]:
        try:
            found = importlib.util.find_spec(module)
        except ValueError:  # in sys.modules as None: an import of it is refused
            found = None
        if found is None:
            raise MissingExtraError(module, extra, needed_by)


__all__ = ["DISTRIBUTION", "EXTRA_MODULES", "MissingExtraError", "extra_of", "install_hint", "missing_extra", "require"]
