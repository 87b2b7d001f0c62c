"""The cost of a call without importing litellm: litellm's own bundled price table
(``model_prices_and_context_window_backup.json`` in the installed package, found without
running litellm's ``__init__``), read once on first use, priced the way
``litellm.completion_cost`` prices a chat completion's prompt and completion tokens.
``tests/test_prices.py`` compares the two for a handful of models.
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from ..spec.model import Price

_TABLE = "model_prices_and_context_window_backup.json"
_ABOVE = re.compile(r"^input_cost_per_token_above_(\d+)(k?)_tokens$")


@cache
def table() -> dict[str, dict[str, Any]]:
    """litellm's price entries by key; empty when litellm is not installed."""
    spec = importlib.util.find_spec("litellm")  # locates the package; does not import it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / _TABLE
        if path.is_file():
            data = json.loads(path.read_bytes())
            return {k: v for k, v in data.items() if isinstance(v, dict)}
    return {}


def entry(model_id: str) -> dict[str, Any] | None:
    """The price entry of ``provider/model`` as litellm finds it: the full id, else the
    bare model name when that entry belongs to the same provider (``gpt-4o-mini`` is
    ``openai``'s), else, for a router's ``vendor/model`` (``openrouter/openai/gpt-4o``),
    the vendor's own entry of the model."""
    prices = table()
    provider, _, model = model_id.partition("/")
    found = prices.get(model_id)
    if found is not None:
        return found
    vendor, _, bare = model.rpartition("/")
    for key, owners in ((model, {provider}), (bare, {provider, vendor.split("/")[-1]})):
        found = prices.get(key)
        if found is not None and _provider(found) in owners:
            return found
    return None


def _provider(entry: dict[str, Any]) -> str:
    name = str(entry.get("litellm_provider") or "")
    return "openai" if name == "text-completion-openai" else name


def declared(price: Price | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Dollars for the call at the model's own ``price:`` (per million tokens), if it has one."""
    if price is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000


def cost(
    model_id: str, prompt_tokens: int, completion_tokens: int, answered_by: str | None = None, price: Price | None = None
) -> float:
    """Dollars for the call: at the model's declared ``price``, else litellm's table; 0 when
    no price is known (cost limits then count nothing: the run says so once, see
    :mod:`netrun.runtime.inference`). ``answered_by``: the model name the provider answered
    with, tried when the id itself has no price (an alias such as ``openrouter/auto``)."""
    own = declared(price, prompt_tokens, completion_tokens)
    if own is not None:
        return own
    found = entry(model_id)
    if found is None and answered_by:
        found = entry(f"{model_id.split('/', 1)[0]}/{answered_by}")
    if found is None:
        return 0.0
    rate_in = float(found.get("input_cost_per_token") or 0.0)
    rate_out = float(found.get("output_cost_per_token") or 0.0)
    # Long prompts cost more on some models: the highest threshold the prompt passes sets
    # both rates for all its tokens (litellm's _get_token_base_cost).
    passed = 0
    for key in found:
        match = _ABOVE.match(key)
        if match:
            limit = int(match[1]) * (1000 if match[2] else 1)
            if prompt_tokens > limit and limit > passed:
                passed = limit
                rate_in = float(found[key] or 0.0)
                out_key = key.replace("input_", "output_", 1)
                rate_out = float(found.get(out_key) or rate_out)
    return prompt_tokens * rate_in + completion_tokens * rate_out
