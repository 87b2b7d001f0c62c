"""Start-up shortcuts for the commands that must start fast (``netrun validate``).

pydantic discovers plugins through ``importlib.metadata`` when it builds the first model.
Importing that module alone costs about 30 ms, a tenth of the cold-start budget, even when
``PYDANTIC_DISABLE_PLUGINS`` tells pydantic not to look. netrun's CLI uses no pydantic
plugin, so before pydantic loads, a stand-in for its plugin loader answers ``get_plugins()``
with nothing; any other attribute loads the real module, so a future pydantic that needs
more from it still gets it.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

_LOADER = "pydantic.plugin._loader"


class _NoPlugins(types.ModuleType):
    @staticmethod
    def get_plugins() -> tuple[()]:
        return ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system probing (__path__, ...): not a package
            raise AttributeError(name)
        sys.modules.pop(_LOADER, None)
        return getattr(importlib.import_module(_LOADER), name)


def skip_pydantic_plugins() -> None:
    """Disable pydantic plugin discovery for this process (call before importing pydantic)."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if os.environ["PYDANTIC_DISABLE_PLUGINS"] in ("__all__", "1", "true") and _LOADER not in sys.modules:
        sys.modules[_LOADER] = _NoPlugins(_LOADER)
