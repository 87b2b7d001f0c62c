"""Model references: a litellm model id, or a mapping with parameters."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, Tag

from .base import Duration, Spec, Template, by_shape, one_of


class Price(Spec):
    """What a model's tokens cost, in dollars per million tokens (as providers list them)."""

    input: Annotated[float, Field(ge=0)]
    """Dollars per million prompt tokens."""
    output: Annotated[float, Field(ge=0)]
    """Dollars per million completion tokens."""


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
    price: Price | None = None
    """What its calls cost, for ``cost`` limits and the usage a run reports; default:
    litellm's price table (with the ``models`` extra), which knows the hosted models by id
    but not a self-hosted or proxied one. A model with no price known costs $0."""
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


class ModelChoice(Spec):
    """A model chosen per run from the event's data, within an allow-list.

    Only the model id comes from the event: each allowed entry's endpoint, key and
    parameters are the file's, so event data never changes where a request goes."""

    from_: Template = Field(alias="from")
    """The id of the model to use, a template over ``event``, e.g. ``{{ event.data.model }}``.
    Empty or undefined: ``default``. An id outside ``allowed`` fails the run."""
    allowed: Annotated[list[ModelRef], Field(min_length=1)]
    """The models a run may use: model ids, or mappings with ``id`` and call settings."""
    default: str | None = None
    """The id of the allowed model used when the event names none (default: the first)."""

    def ids(self) -> list[str]:
        """The allowed model ids, in order."""
        return [m if isinstance(m, str) else m.id for m in self.allowed]

    def default_id(self) -> str:
        return self.default if self.default is not None else self.ids()[0]


def _model_shape(value: Any) -> str | None:
    if (isinstance(value, dict) and "from" in value) or isinstance(value, ModelChoice):
        return "choice"
    if isinstance(value, BaseModel) and not isinstance(value, ModelSpec):
        return None
    return by_shape(value)


ModelOption = Annotated[
    Annotated[str, Tag("text")] | Annotated[ModelSpec, Tag("map")] | Annotated[ModelChoice, Tag("choice")],
    one_of(
        "a model is a litellm model id ('openai/gpt-4o-mini'), a mapping with 'id', or a choice with 'from' and 'allowed'",
        _model_shape,
    ),
]
"""A network's or an agent's model: a :data:`ModelRef`, or a :class:`ModelChoice` from event data."""
