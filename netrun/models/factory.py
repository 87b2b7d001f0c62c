"""Model clients by model spec: ``scripted/FILE`` models answer from a replies file,
OpenAI-compatible ones are called directly (:mod:`.openai_compat` says which), the others
through litellm (imported only when one is made); fallbacks wrap the chain."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..compile import ModelFactory
from ..runtime.model import ModelClient
from ..spec.model import ModelSpec
from .scripted import ScriptedClient, load_replies


def default_model_factory(base_dir: Path, environ: Mapping[str, str], prefix: str = "") -> ModelFactory:
    """Clients for real models and ``scripted/FILE`` ones; ``prefix`` keeps a child run's
    scripted callers apart from its parent's."""

    def make(spec: ModelSpec) -> ModelClient:
        provider, _, rest = spec.id.partition("/")
        if provider == "scripted":
            path = base_dir / rest
            return ScriptedClient(load_replies(path), str(path), prefix)
        if not spec.fallbacks:
            return model_client(spec, environ)
        from .fallbacks import Fallbacks

        chain = [spec.model_copy(update={"fallbacks": []})] + [fallback(spec, fb) for fb in spec.fallbacks]
        return Fallbacks([model_client(s, environ) for s in chain])

    return make


def fallback(spec: ModelSpec, model_id: str) -> ModelSpec:
    """The fallback ``model_id`` of ``spec``: its call parameters and timeout, and, for a
    model of the same provider, its endpoint, key and ``api``. Another provider's model
    gets its own provider's endpoint and key: the model's key must never reach it."""
    same = model_id.split("/", 1)[0] == spec.id.split("/", 1)[0]
    kept = {} if same else {"api": None, "api_base": None, "api_key": None}
    return spec.model_copy(update={"id": model_id, "fallbacks": [], **kept})


def model_client(spec: ModelSpec, environ: Mapping[str, str]) -> ModelClient:
    """The client of one real model, without fallbacks."""
    from .openai_compat import is_direct

    if is_direct(spec):
        from .openai_client import OpenAIClient

        return OpenAIClient(spec, environ)
    from .litellm_client import LitellmClient

    return LitellmClient(spec, environ)
