"""Which models speak OpenAI's chat completions, and where: one table of the providers whose
API is OpenAI's, with the default endpoint and the key variables litellm uses for each (read
from litellm 1.106's ``get_llm_provider_logic.py`` and ``llms/<provider>/chat``), so a model
called directly reaches the same place with the same key as through litellm.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import envrefs
from ..runtime.model import ModelError
from ..spec.model import ModelSpec


@dataclass(frozen=True)
class Provider:
    base_envs: tuple[str, ...]
    """Variables that override the endpoint, in litellm's order."""
    base: str | None
    """The default endpoint; None: the model must name one (``api_base`` or a variable)."""
    key_envs: tuple[str, ...]
    """Variables holding the key, in litellm's order."""
    default_key: str | None = None
    """The key sent when none is set (local servers: litellm sends ``fake-api-key``)."""


PROVIDERS: dict[str, Provider] = {
    "openai": Provider(("OPENAI_BASE_URL", "OPENAI_API_BASE"), "https://api.openai.com/v1", ("OPENAI_API_KEY",)),
    "openrouter": Provider(("OPENROUTER_API_BASE",), "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY", "OR_API_KEY")),
    "groq": Provider(("GROQ_API_BASE",), "https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
    "together_ai": Provider(
        ("TOGETHER_AI_API_BASE",),
        "https://api.together.ai/v1",
        ("TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN"),
    ),
    "deepseek": Provider(("DEEPSEEK_API_BASE",), "https://api.deepseek.com/beta", ("DEEPSEEK_API_KEY",)),
    "xai": Provider(("XAI_API_BASE",), "https://api.x.ai/v1", ("XAI_API_KEY",)),
    "fireworks_ai": Provider(
        ("FIREWORKS_API_BASE",),
        "https://api.fireworks.ai/inference/v1",
        ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"),
    ),
    "cerebras": Provider(("CEREBRAS_API_BASE",), "https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",)),
    "nebius": Provider(("NEBIUS_API_BASE",), "https://api.studio.nebius.ai/v1", ("NEBIUS_API_KEY",)),
    "hosted_vllm": Provider(("HOSTED_VLLM_API_BASE",), None, ("HOSTED_VLLM_API_KEY",), "fake-api-key"),
    "lm_studio": Provider(("LM_STUDIO_API_BASE",), None, ("LM_STUDIO_API_KEY",), "fake-api-key"),
}
"""Providers called directly by default. Ollama's and other servers' ``/v1`` endpoints are
reached as ``openai/<model>`` with their ``api_base`` (litellm's ``ollama/`` speaks Ollama's
own API, so it stays with litellm)."""


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


def endpoint(spec: ModelSpec, environ: Mapping[str, str]) -> Endpoint:
    """Where and with which key ``spec`` is called; a missing setting is a permanent error."""
    provider_name, _, model = spec.id.partition("/")
    provider = PROVIDERS.get(provider_name, Provider((), None, (f"{provider_name.upper()}_API_KEY",)))
    base = _resolve(spec, spec.api_base, environ) or _first(provider.base_envs, environ) or provider.base
    if not base:
        raise ModelError(
            f"model {spec.id}: no endpoint: set model.api_base" + (f" or {provider.base_envs[0]}" if provider.base_envs else ""),
            retriable=False,
        )
    key = _resolve(spec, spec.api_key, environ) or _first(provider.key_envs, environ) or provider.default_key
    return Endpoint(base.rstrip("/") + "/chat/completions", model, key, provider_name in PROVIDERS)


def _first(names: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    return next((environ[n] for n in names if environ.get(n)), None)


def _resolve(spec: ModelSpec, text: str | None, environ: Mapping[str, str]) -> str | None:
    if text is None:
        return None
    try:
        return envrefs.resolve(text, environ)
    except envrefs.MissingEnvError as exc:
        raise ModelError(f"model {spec.id}: {exc}", retriable=False) from None
