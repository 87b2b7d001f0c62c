"""Model clients by model spec: ``scripted/FILE`` models answer from a replies file, the
others are called through litellm (imported only when one is made)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..compile import ModelFactory
from ..runtime.model import ModelClient
from ..spec.model import ModelSpec
from .scripted import ScriptedClient, load_replies


def default_model_factory(base_dir: Path, environ: Mapping[str, str], prefix: str = "") -> ModelFactory:
    """Clients for real models (litellm) and ``scripted/FILE`` ones; ``prefix`` keeps a
    child run's scripted callers apart from its parent's."""

    def make(spec: ModelSpec) -> ModelClient:
        provider, _, rest = spec.id.partition("/")
        if provider == "scripted":
            path = base_dir / rest
            return ScriptedClient(load_replies(path), str(path), prefix)
        from .litellm_client import LitellmClient

        return LitellmClient(spec, environ)

    return make
