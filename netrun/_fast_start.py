"""Start-up shortcuts for the commands that must start fast (``netrun validate``, ``run``,
``serve``): stand-ins for modules that libraries import eagerly and netrun never uses.

pydantic discovers plugins through ``importlib.metadata`` when it builds the first model.
Importing that module alone costs about 30 ms, a tenth of the cold-start budget, even when
``PYDANTIC_DISABLE_PLUGINS`` tells pydantic not to look. netrun's CLI uses no pydantic
plugin, so before pydantic loads, a stand-in for its plugin loader answers ``get_plugins()``
with nothing; any other attribute loads the real module, so a future pydantic that needs
more from it still gets it.

httpx imports its command line (``httpx._main``: click, rich and pygments, a quarter of
``netrun run``'s start) whenever click is installed, only to re-export ``httpx.main``. Its
stand-in loads the real module when ``main`` (or anything else) is asked of it.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

_LOADER = "pydantic.plugin._loader"
_HTTPX_CLI = "httpx._main"


def _real(name: str) -> types.ModuleType:
    """The real module behind a stand-in: the stand-in leaves ``sys.modules``, the module loads."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


class _NoPlugins(types.ModuleType):
    @staticmethod
    def get_plugins() -> tuple[()]:
        return ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system probing (__path__, ...): not a package
            raise AttributeError(name)
        return getattr(_real(_LOADER), name)


class _LazyHttpxCli(types.ModuleType):
    @staticmethod
    def main() -> None:  # httpx's console script, as httpx._main.main
        _real(_HTTPX_CLI).main()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_real(_HTTPX_CLI), name)


def skip_pydantic_plugins() -> None:
    """Disable pydantic plugin discovery for this process (call before importing pydantic)."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if os.environ["PYDANTIC_DISABLE_PLUGINS"] in ("__all__", "1", "true") and _LOADER not in sys.modules:
        sys.modules[_LOADER] = _NoPlugins(_LOADER)


def skip_httpx_cli() -> None:
    """Import httpx without its command line (call before importing httpx)."""
    if "httpx" not in sys.modules and _HTTPX_CLI not in sys.modules:
        sys.modules[_HTTPX_CLI] = _LazyHttpxCli(_HTTPX_CLI)


def fast_start() -> None:
    """Every shortcut above, for a command about to run (call before pydantic and httpx load)."""
    skip_pydantic_plugins()
    skip_httpx_cli()
