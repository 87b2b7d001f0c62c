"""Model references: a litellm model id, or a mapping with parameters."""

from typing import Annotated, Any, Literal

from pydantic import Tag

from .base import Duration, Spec, by_shape, one_of


class ModelSpec(Spec):
    """A model with call parameters, endpoint, key and fallbacks."""

    id: str
    """The litellm model id, ``provider/model`` (e.g. ``openai/gpt-4o-mini``)."""
    params: dict[str, Any] = {}
    """Call parameters sent with each request: temperature, max_tokens, top_p, ..."""
    api_base: str | None = None
    """The endpoint, for self-hosted or proxied models; may use ``${ENV}`` references."""
    api_key: str | None = None
    """The API key, as an ``${ENV}`` reference (a literal key is refused: it would end up in git)."""
    fallbacks: list[str] = []
    """Model ids tried in order when this one fails."""
    timeout: Duration | None = None
    """How long one inference call may take."""
    api: Literal["openai", "litellm"] | None = None
    """How the model is called: ``openai`` = directly, as OpenAI chat completions at
    ``api_base`` (any OpenAI-compatible server: vLLM, Ollama's or LM Studio's ``/v1``, a
    proxy); ``litellm`` = through litellm. Default: directly for ``openai/`` and the other
    providers whose API is OpenAI's (openrouter, groq, together_ai, deepseek, xai,
    fireworks_ai, cerebras, nebius, hosted_vllm, lm_studio), litellm for the rest."""


ModelRef = Annotated[
    Annotated[str, Tag("text")] | Annotated[ModelSpec, Tag("map")],
    one_of("a model is a litellm model id ('openai/gpt-4o-mini') or a mapping with 'id'", by_shape),
]
"""A litellm model id, or a mapping with ``id`` and call settings."""
