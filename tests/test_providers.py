"""netrun's copy of litellm's provider list (used by validate without importing litellm)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from netrun.providers import LITELLM_PROVIDERS


def test_provider_list_matches_the_installed_litellm() -> None:
    # In a subprocess: importing litellm takes seconds and changes global state.
    code = "import litellm\nprint('\\n'.join(sorted({str(getattr(p, 'value', p)) for p in litellm.provider_list})))\n"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert set(out.stdout.split()) == set(LITELLM_PROVIDERS), "run 'python -m netrun.providers' to refresh the list"


DIRECT = """
import json, os, sys
for name in list(os.environ):
    if name.endswith(("_API_KEY", "_API_BASE", "_BASE_URL", "_TOKEN")):
        del os.environ[name]
import litellm
out = {}
for provider, (base_env, key_env) in json.loads(sys.argv[1]).items():
    _, _, _, default = litellm.get_llm_provider(f"{provider}/m")
    os.environ[base_env], os.environ[key_env] = "http://base.invalid/v1", "key-" + provider
    _, _, key, base = litellm.get_llm_provider(f"{provider}/m")
    del os.environ[base_env], os.environ[key_env]
    out[provider] = [default, base, key]
print(json.dumps(out))
"""


def test_the_direct_providers_endpoints_and_keys_are_litellms() -> None:
    """Each provider the direct client calls has litellm's default endpoint, and litellm
    reads the same variables for its endpoint and key. ``openai``'s and ``openrouter``'s
    are read in litellm's call handler (``main.py``), not by ``get_llm_provider``."""
    from netrun.models.openai_compat import PROVIDERS

    table = {p: (v.base_envs[0], v.key_envs[0]) for p, v in PROVIDERS.items() if p not in ("openai", "openrouter")}
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run([sys.executable, "-c", DIRECT, json.dumps(table)], capture_output=True, text=True, check=True, env=env)
    seen = json.loads(out.stdout)
    expected = {p: [PROVIDERS[p].base, "http://base.invalid/v1", "key-" + p] for p in table}
    assert seen == expected
