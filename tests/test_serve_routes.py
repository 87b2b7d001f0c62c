"""The REST API as FastAPI routers (issue 13): every route reaches the server and the token
check through dependencies an embedding app or a test can override, and the OpenAPI
document names the answers' shapes."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from netrun.serve.app import create_app
from netrun.serve.routes import deps
from netrun.serve.settings import ServeSettings

from .fakes.served import Served

NETWORK = """\
name: gate
model: scripted/gate.replies
agents:
  helper: {description: helps, system: "Help."}
"""


def _app(tmp_path: Path, **env: str) -> ServeSettings:
    (tmp_path / "gate.yaml").write_text(NETWORK)
    (tmp_path / "gate.replies").write_text("helper:\n  - {text: done}\n")
    return ServeSettings.from_env({**os.environ, **env}, (tmp_path,), engine="local", data_dir=tmp_path / "data", port=0)


def test_the_token_dependency_guards_every_route_and_can_be_overridden(tmp_path: Path) -> None:
    settings = _app(tmp_path, NETRUN_API_TOKEN="secret-token-1")
    app = create_app(settings)
    with Served(lambda port: app) as served:
        for method, path in [
            ("GET", "/networks"),
            ("GET", "/runs/x"),
            ("POST", "/runs/x/cancel"),
            ("POST", "/runs/x/retry"),
            ("GET", "/runs/x/events"),
            ("GET", "/threads"),
            ("GET", "/threads/t"),
            ("DELETE", "/threads/t"),
        ]:
            assert httpx.request(method, f"{served.url}{path}").status_code == 401, path
        assert httpx.post(f"{served.url}/events", json={"name": "x"}).status_code == 401
        assert httpx.get(f"{served.url}/healthz").status_code == 200  # never behind the token
        app.dependency_overrides[deps.authorized] = lambda: None  # an embedding app with its own auth
        assert httpx.get(f"{served.url}/networks").json()["networks"][0]["name"] == "gate"
        assert httpx.get(f"{served.url}/runs/nope").status_code == 404


def test_the_openapi_document_names_the_answers(tmp_path: Path) -> None:
    app = create_app(_app(tmp_path))
    with Served(lambda port: app) as served:
        spec = httpx.get(f"{served.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {
        "RunSummary",
        "RunAction",
        "NetworkList",
        "ThreadPage",
        "ThreadMessages",
        "ThreadDeleted",
        "RunRequest",
        "EventRequest",
    } <= set(schemas)
    assert spec["paths"]["/runs/{run_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RunSummary"
    )
    assert set(schemas["RunSummary"]["required"]) >= {"run_id", "status", "network", "input"}
    assert {tag for path in spec["paths"].values() for op in path.values() for tag in op.get("tags", [])} >= {
        "runs",
        "events",
        "threads",
    }
