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

        # A fallback keeps the model's settings, as litellm's did; how it is called is its own
        # provider's unless it is of the same provider as the model.
        chain = [spec.model_copy(update={"fallbacks": []})] + [
            spec.model_copy(update={"id": fb, "fallbacks": [], "api": spec.api if fb.split("/")[0] == provider else None})
            for fb in spec.fallbacks
        ]
        return Fallbacks([model_client(s, environ) for s in chain])

    return make


def model_client(spec: ModelSpec, environ: Mapping[str, str]) -> ModelClient:
    """The client of one real model, without fallbacks."""
    from .openai_compat import is_direct

    if is_direct(spec):
        from .openai_client import OpenAIClient

        return OpenAIClient(spec, environ)
    from .litellm_client import LitellmClient

    return LitellmClient(spec, environ)
