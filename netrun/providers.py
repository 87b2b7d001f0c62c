"""The model providers litellm knows, so that validation can check model ids without
importing litellm (which takes over 2 s). ``tests/test_providers.py`` fails when this list
drifts from the installed litellm's ``provider_list``; regenerate it with
``python -m netrun.providers``. Also the providers whose API is OpenAI's (:data:`PROVIDERS`),
called directly rather than through litellm.
"""

from __future__ import annotations

from dataclasses import dataclass

LITELLM_PROVIDERS: frozenset[str] = frozenset(
    {
        "a2a",
        "a2a_agent",
        "ai21",
        "ai21_chat",
        "aiml",
        "aiohttp_openai",
        "amazon_nova",
        "anthropic",
        "anthropic_text",
        "apertis",
        "assemblyai",
        "auto_router",
        "aws_polly",
        "aws_textract",
        "azure",
        "azure_ai",
        "azure_speech",
        "azure_text",
        "baseten",
        "bedrock",
        "bedrock_mantle",
        "black_forest_labs",
        "bytez",
        "cerebras",
        "charity_engine",
        "chatgpt",
        "chutes",
        "clarifai",
        "cloudflare",
        "codestral",
        "cognition",
        "cohere",
        "cohere_chat",
        "cometapi",
        "compactifai",
        "cortecs",
        "cursor",
        "custom",
        "custom_openai",
        "darkbloom",
        "dashscope",
        "databricks",
        "datarobot",
        "deepgram",
        "deepinfra",
        "deepseek",
        "docker_model_runner",
        "dotprompt",
        "edenai",
        "elevenlabs",
        "empower",
        "fal_ai",
        "featherless_ai",
        "fireworks_ai",
        "friendliai",
        "galadriel",
        "gdc",
        "gemini",
        "gigachat",
        "github",
        "github_copilot",
        "gradient_ai",
        "groq",
        "helicone",
        "heroku",
        "hosted_vllm",
        "huggingface",
        "humanloop",
        "hyperbolic",
        "inception",
        "infinity",
        "jina_ai",
        "lambda_ai",
        "langflow",
        "langfuse",
        "langgraph",
        "lemonade",
        "libertai",
        "litellm_agent",
        "litellm_proxy",
        "llamafile",
        "lm_studio",
        "manus",
        "maritalk",
        "meta",
        "meta_llama",
        "milvus",
        "minimax",
        "mistral",
        "modelscope",
        "mongodb",
        "moonshot",
        "morph",
        "nadir",
        "nano-gpt",
        "nebius",
        "neosantara",
        "nlp_cloud",
        "novita",
        "nscale",
        "nvidia_nim",
        "nvidia_riva",
        "oci",
        "ollama",
        "ollama_chat",
        "oobabooga",
        "openai",
        "openai_like",
        "openrouter",
        "ovhcloud",
        "parasail",
        "perplexity",
        "petals",
        "pg_vector",
        "pinstripes",
        "poe",
        "predibase",
        "prism",
        "publicai",
        "qwen_ai_platform",
        "qwencloud",
        "ragflow",
        "recraft",
        "reducto",
        "reka",
        "replicate",
        "runwayml",
        "s3_vectors",
        "sagemaker",
        "sagemaker_chat",
        "sagemaker_nova",
        "sail",
        "sambanova",
        "sap",
        "scaleway",
        "scx-ai",
        "snowflake",
        "soniox",
        "stability",
        "strands_decider",
        "synthetic",
        "tencent",
        "tensormesh",
        "text-completion-codestral",
        "text-completion-inception",
        "text-completion-openai",
        "together_ai",
        "topaz",
        "transcribe",
        "triton",
        "typesafe",
        "v0",
        "valkey",
        "vercel_ai_gateway",
        "vertex_ai",
        "vertex_ai_beta",
        "vllm",
        "volcengine",
        "voyage",
        "wandb",
        "watsonx",
        "watsonx_text",
        "xai",
        "xiaomi_mimo",
        "xinference",
        "zai",
    }
)


# -- the providers whose API is OpenAI's chat completions -------------------------------------
# Called directly (netrun.models.openai_client), with the default endpoint and the key
# variables litellm uses for each (read from litellm 1.106's get_llm_provider_logic.py and
# llms/<provider>/chat), so a model reaches the same place with the same key as through
# litellm. Kept here, with the names, so that validation can tell them apart cheaply.


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


def _regenerate() -> None:  # pragma: no cover - a maintenance helper
    import os
    import pathlib
    import re

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    names = sorted({str(getattr(p, "value", p)) for p in litellm.provider_list})
    path = pathlib.Path(__file__)
    text = path.read_text()
    body = "\n".join(f'        "{n}",' for n in names)
    path.write_text(
        re.sub(
            r"frozenset\(\n    \{\n.*?\n    \}\n\)",
            "frozenset(\n    {\n" + body.replace("\\", "\\\\") + "\n    }\n)",
            text,
            flags=re.S,
        )
    )


if __name__ == "__main__":  # pragma: no cover
    _regenerate()
