"""The published JSON Schemas match the models, and agree with them on the examples."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from netrun.schema import render_schemas

from .conftest import NETRUN, REPO


def test_committed_schemas_match_the_models() -> None:
    for name, text in render_schemas().items():
        committed = (REPO / "schemas" / name).read_text(encoding="utf-8")
        assert committed == text, f"schemas/{name} is out of date: run 'netrun schema'"


def test_schema_check_command_detects_drift(netrun_cli, tmp_path) -> None:
    assert netrun_cli("schema", "--check").exit_code == 0
    stale = tmp_path / "schemas"
    stale.mkdir()
    (stale / "network.schema.json").write_text("{}\n")
    result = netrun_cli("schema", "--check", "-o", str(stale))
    assert result.exit_code == 1
    assert "out of date" in result.output


def test_field_docs_reach_the_schema() -> None:
    schema = json.loads(render_schemas()["network.schema.json"])
    assert "LLM router picks agents" in schema["$defs"]["AgentSpec"]["properties"]["description"]["description"]
    assert schema["properties"]["max_iter"]["description"].startswith("At most this many agent turns")
    # Fields inherited from a base class keep their docs.
    assert "model reads this" in schema["$defs"]["HttpTool"]["properties"]["description"]["description"]


@pytest.mark.parametrize(
    "path", sorted(p for p in (REPO / "networks").glob("*.yaml") if not p.name.endswith(".replies.yaml")), ids=lambda p: p.name
)
def test_examples_satisfy_the_json_schema(path) -> None:
    kind = "test" if path.name.endswith(".test.yaml") else "network"
    schema = json.loads((REPO / "schemas" / f"{kind}.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_json_schema_rejects_what_the_models_reject() -> None:
    schema = json.loads((REPO / "schemas" / "network.schema.json").read_text())
    bad = {"name": "x", "agents": {"a": {"system": "hi", "tpye": 1}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "agents": {"a": {"system": "s"}}, "max_iter": 0}, schema)


def test_netrun_schema_writes_files(tmp_path) -> None:
    out = subprocess.run([NETRUN, "schema", "-o", str(tmp_path)], capture_output=True, text=True, check=True)
    assert "wrote" in out.stdout
    assert json.loads((tmp_path / "network.schema.json").read_text())["title"] == "NetworkSpec"


def _undocumented(schema: dict, where: str) -> list[str]:
    missing = []
    for name, prop in schema.get("properties", {}).items():
        if not prop.get("description"):
            missing.append(f"{where}.{name}")
    return missing


@pytest.mark.parametrize("name", ["network.schema.json", "fragment.schema.json", "test.schema.json"])
def test_every_field_is_documented(name: str) -> None:
    schema = json.loads(render_schemas()[name])
    missing = _undocumented(schema, "(top)")
    for model, sub in schema.get("$defs", {}).items():
        missing += _undocumented(sub, model)
        if sub.get("type") == "object" and not sub.get("description"):
            missing.append(f"{model} (the model itself)")
    assert not missing, f"fields without a docstring: {', '.join(missing)}"


CHECK_JSONSCHEMA = str(REPO / ".venv" / "bin" / "check-jsonschema")


def _check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHECK_JSONSCHEMA, "--schemafile", str(REPO / "schemas" / schema), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_jsonschema_rejects_bad_names_and_checks_what_is_under_them() -> None:
    """A name map used to accept any key and check nothing under a key that is no name."""
    bad = REPO / "tests" / "jsonschema" / "bad_names.yaml"
    result = _check_jsonschema("network.schema.json", bad)
    assert result.returncode == 1, result.stdout
    assert "$.agents: 'helper.v2' does not match '^[A-Za-z_][A-Za-z0-9_-]{0,63}$'" in result.stdout
    assert "$.agents['helper.v2']: Additional properties are not allowed ('sytem' was unexpected)" in result.stdout
    assert "$.tools: 'save it' does not match" in result.stdout


def test_check_jsonschema_accepts_the_examples() -> None:
    networks = sorted(p for p in (REPO / "networks").glob("*.yaml") if not p.name.endswith((".test.yaml", ".replies.yaml")))
    fragments = sorted((REPO / "networks").rglob("*.fragment.yaml"))
    for schema, files in (("network.schema.json", networks), ("fragment.schema.json", fragments)):
        result = _check_jsonschema(schema, *files)
        assert result.returncode == 0, result.stdout + result.stderr


def test_name_maps_name_their_keys_and_check_every_value() -> None:
    schema = json.loads(render_schemas()["network.schema.json"])
    for key in ("agents", "tools", "mcp_servers", "state", "prompts"):
        prop = schema["properties"][key]
        assert prop["propertyNames"] == {"pattern": "^[A-Za-z_][A-Za-z0-9_-]{0,63}$"}, key
        assert "patternProperties" not in prop and prop["additionalProperties"], key
