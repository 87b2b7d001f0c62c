"""Which models speak OpenAI's chat completions, and where: the endpoint and key of a model
called directly, from its spec, the environment and the table of such providers
(:data:`netrun.providers.PROVIDERS`: the same places and keys as through litellm).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..providers import PROVIDERS, Provider
from ..runtime.model import ModelError
from ..spec.model import ModelSpec
from .settings import resolved


def is_direct(spec: ModelSpec) -> bool:
    """Whether ``spec`` is called as OpenAI chat completions rather than through litellm."""
    if spec.api is not None:
        return spec.api == "openai"
    return spec.id.split("/", 1)[0] in PROVIDERS


@dataclass(frozen=True)
class Endpoint:
    url: str
    """``{base}/chat/completions``."""
    model: str
    """The model name the provider knows (the id without its provider prefix)."""
    key: str | None
    needs_key: bool
    """Whether the provider refuses calls without a key (a self-hosted server may not)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers of the provider's own beyond the key (OpenAI's organization and project)."""


def endpoint(spec: ModelSpec, environ: Mapping[str, str]) -> Endpoint:
    """Where and with which key ``spec`` is called; a missing setting is a permanent error."""
    provider_name, _, model = spec.id.partition("/")
    provider = PROVIDERS.get(provider_name, Provider((), None, (f"{provider_name.upper()}_API_KEY",)))
    base = resolved(spec, spec.api_base, environ) or _first(provider.base_envs, environ) or provider.base
    if not base:
        raise ModelError(
            f"model {spec.id}: no endpoint: set model.api_base" + (f" or {provider.base_envs[0]}" if provider.base_envs else ""),
            retriable=False,
        )
    key = resolved(spec, spec.api_key, environ) or _first(provider.key_envs, environ) or provider.default_key
    headers = {}
    if provider_name == "openai":  # as the openai SDK sends them (a key may serve several)
        headers = {h: environ[v] for h, v in _OPENAI_HEADERS.items() if environ.get(v)}
    return Endpoint(base.rstrip("/") + "/chat/completions", model, key, provider_name in PROVIDERS, headers)


_OPENAI_HEADERS = {"OpenAI-Organization": "OPENAI_ORG_ID", "OpenAI-Project": "OPENAI_PROJECT_ID"}


def _first(names: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    return next((environ[n] for n in names if environ.get(n)), None)
