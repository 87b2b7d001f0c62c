"""netrun's reading of litellm's price table agrees with ``litellm.completion_cost``
(the drift test), and reading it imports no litellm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from .fakes.llm_server import FakeLLM

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


PRICED = """\
name: priced
model: {{id: openai/local-llama, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"{price}}}
limits: {{cost: 0.001}}
state: {{n: {{type: integer, default: 0}}}}
agents:
  worker: {{description: works, system: "Work.", tools: [bump]}}
router:
  rules: [{{if: "state.n >= 3", stop: true}}, {{if: "true", agent: worker}}]
tools:
  bump: {{state: {{n: "{{{{ state.n + 1 }}}}"}}}}
"""


def _run_priced(tmp_path: Path, llm: FakeLLM, price: str) -> subprocess.CompletedProcess[str]:
    from .fakes.llm_server import Reply, ToolCall

    llm.set_script([Reply(text="step", tool_calls=[ToolCall("bump", {})])] * 3)
    network = tmp_path / "priced.yaml"
    network.write_text(PRICED.format(base=llm.base_url, price=price))
    env = {**os.environ, "FAKE_LLM_KEY": "sk-test", "NETRUN_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, "-m", "netrun", "run", str(network), "-i", "go", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_declared_price_counts_toward_cost_limits(tmp_path: Path, llm: FakeLLM) -> None:
    # $100 per million prompt tokens, $200 per million completion tokens: one call passes $0.001
    done = _run_priced(tmp_path, llm, ", price: {input: 100, output: 200}")
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads(done.stdout)
    usage = run["result"]["usage"]
    assert usage["cost"] == pytest.approx((usage["prompt_tokens"] * 100 + usage["completion_tokens"] * 200) / 1e6)
    assert run["result"]["stop_reason"] == "cost" and llm.count == 1  # the limit stopped it after one call
    assert "no known price" not in done.stderr


def test_a_cost_limit_over_a_model_with_no_price_says_so_once(tmp_path: Path, llm: FakeLLM) -> None:
    done = _run_priced(tmp_path, llm, "")
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads(done.stdout)
    assert run["result"]["usage"]["cost"] == 0 and run["result"]["stop_reason"] == "router" and llm.count == 3
    warned = [line for line in done.stderr.splitlines() if "no known price" in line]
    assert len(warned) == 1 and "openai/local-llama" in warned[0] and "price:" in warned[0], done.stderr[-2000:]


def test_a_price_is_dollars_per_million_tokens_and_never_negative() -> None:
    from pydantic import ValidationError

    from netrun.spec.model import ModelSpec

    spec = ModelSpec.model_validate({"id": "openai/x", "price": {"input": 0.15, "output": 0.6}})
    assert prices.cost("openai/x", 2_000_000, 1_000_000, price=spec.price) == pytest.approx(0.9)
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({"id": "openai/x", "price": {"input": -1, "output": 0}})
