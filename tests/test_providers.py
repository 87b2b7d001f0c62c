"""netrun's copy of litellm's provider list (used by validate without importing litellm)."""

from __future__ import annotations

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
