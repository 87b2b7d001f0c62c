"""netrun's reading of litellm's price table agrees with ``litellm.completion_cost``
(the drift test), and reading it imports no litellm."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from netrun.models import prices

MODELS = [
    "openai/gpt-4o-mini",
    "openai/gpt-4o",
    "openai/gpt-4.1-nano",
    "groq/llama-3.3-70b-versatile",
    "openrouter/openai/gpt-4o",
    "deepseek/deepseek-chat",
    "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "openai/no-such-model",
]
USAGES = [(1000, 200), (300_000, 500)]  # the second passes the long-prompt thresholds

LITELLM_COSTS = """
import json, sys
import litellm
out = {}
for model in json.loads(sys.argv[1]):
    for prompt, completion in json.loads(sys.argv[2]):
        usage = litellm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        response = litellm.ModelResponse(model=model.split("/", 1)[1], usage=usage)
        try:
            cost = litellm.completion_cost(completion_response=response, model=model)
        except Exception:  # litellm has no price: netrun's clients count 0
            cost = 0.0
        out[f"{model} {prompt} {completion}"] = cost
print(json.dumps(out))
"""


def test_costs_match_litellms_completion_cost() -> None:
    # litellm in a subprocess: it takes seconds to import and changes global state.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    args = [sys.executable, "-c", LITELLM_COSTS, json.dumps(MODELS), json.dumps(USAGES)]
    expected = json.loads(subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout)
    ours = {f"{m} {p} {c}": prices.cost(m, p, c) for m in MODELS for p, c in USAGES}
    assert ours == pytest.approx(expected, rel=1e-9)
    priced = sum(1 for v in expected.values() if v > 0)
    assert priced >= 10  # the comparison is not one of zeros


def test_the_table_is_read_without_importing_litellm() -> None:
    code = "import sys\nfrom netrun.models import prices\nprint(prices.cost('openai/gpt-4o-mini', 1000, 0), 'litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert float(out[0]) > 0 and out[1] == "False"
