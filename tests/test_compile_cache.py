"""What a run's start does once per definition, not once per run: validating the pinned
definition again, its hash, its ${ENV} references (engines/execution.py, compile.py)."""

from __future__ import annotations

from typing import Any


def test_runs_of_one_definition_share_its_validated_spec_and_hash(tmp_path: Any) -> None:
    """The per-run work a pinned definition needs is done once per definition (engines/execution.py)."""
    from netrun.compile import definition_hash
    from netrun.engines.execution import compile_definition
    from netrun.spec import NetworkSpec

    definition = {
        "name": "shared",
        "model": {"id": "openai/x", "api_key": "${SHARED_KEY}"},
        "agents": {"a": {"description": "a", "system": "hi"}},
    }
    spec = NetworkSpec.model_validate(definition)
    digest = definition_hash(spec)
    assert definition_hash(spec) == digest == definition_hash(NetworkSpec.model_validate(definition))
    made: list[Any] = []
    first = compile_definition(definition, tmp_path, lambda s: made.append(s) or object(), digest)  # type: ignore[func-returns-value]
    again = compile_definition(dict(definition), tmp_path, lambda s: made.append(s) or object(), digest)  # type: ignore[func-returns-value]
    assert first.spec is again.spec and first.hash == again.hash == digest
    assert first.env_names == again.env_names == ("SHARED_KEY",)
    assert len(made) == 2  # model clients are the run's own, made for each
