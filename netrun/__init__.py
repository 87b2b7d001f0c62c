"""netrun: AI agent networks declared in YAML, validated, compiled to Inngest functions."""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

# The public API lives in netrun/api.py and loads on first use (PEP 562): `netrun validate`
# imports this package first and must start fast, so `import netrun` loads nothing more.
if TYPE_CHECKING:
    from .api import (
        InvalidInputError,
        InvalidNetworkError,
        Model,
        ModelFunction,
        Network,
        RunResult,
        Runs,
        default_db,
        load_network,
        run,
        run_sync,
    )
    from .asgi import asgi_app, mount
    from .errors import FailRun, NetrunError, RetryStep
    from .runtime.model import Completion, ModelError, Request, ToolRequest
    from .tools.python import CallContext

_LAZY = {
    "asgi_app": "asgi",
    "mount": "asgi",
    "NetrunError": "errors",
    "RetryStep": "errors",
    "FailRun": "errors",
    "CallContext": "tools.python",
    "Completion": "runtime.model",
    "ModelError": "runtime.model",
    "Request": "runtime.model",
    "ToolRequest": "runtime.model",
}
"""Where the names not defined in netrun/api.py live (the model client protocol's types)."""


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY.get(name, 'api')}", __name__), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'netrun' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "CallContext",
    "Completion",
    "FailRun",
    "InvalidInputError",
    "InvalidNetworkError",
    "Model",
    "ModelError",
    "ModelFunction",
    "NetrunError",
    "Network",
    "Request",
    "RetryStep",
    "RunResult",
    "Runs",
    "ToolRequest",
    "__version__",
    "asgi_app",
    "default_db",
    "load_network",
    "mount",
    "run",
    "run_sync",
]
