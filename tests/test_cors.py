"""CORS for the origins a deployment names (``--cors-origin``, ``NETRUN_CORS_ORIGINS``):
browsers on those origins may call the API and open streams; none by default."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings, SettingsError

from .fakes.llm_server import FakeLLM
from .fakes.served import Served
from .test_serve_local import settings, write_network

CONSOLE = "https://console.example.com"


def _origins(value: str) -> tuple[str, ...]:
    return ServeSettings.from_env({"NETRUN_CORS_ORIGINS": value}, (Path("."),), engine="local").cors_origins


def test_the_variable_names_origins_normalized_and_none_by_default() -> None:
    assert _origins("") == ()
    assert _origins(" https://Console.Example.com , http://localhost:5173/,https://console.example.com") == (
        CONSOLE,
        "http://localhost:5173",
    )
    assert _origins("http://[::1]:8080") == ("http://[::1]:8080",)
    # A default port is left out, as a browser's Origin header leaves it (kept, none matched).
    assert _origins("https://console.example.com:443,http://localhost:80,https://x.example:8443") == (
        CONSOLE,
        "http://localhost",
        "https://x.example:8443",
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("console.example.com", "is not an origin: expected http:// or https://"),
        ("ftp://console.example.com", "is not an origin"),
        ("https://console.example.com/app", "scheme, host and port only"),
        ("https://user:pw@console.example.com", "scheme, host and port only"),
        ("https://console.example.com:99999", "port that is not a number"),
        ("https://console.example.com?x=1", "scheme, host and port only"),
    ],
)
def test_a_bad_origin_is_refused_with_its_reason(value: str, why: str) -> None:
    with pytest.raises(SettingsError, match=why) as caught:
        _origins(value)
    assert str(caught.value).startswith("NETRUN_CORS_ORIGINS: ")
    assert ":pw@" not in str(caught.value)  # a password in the value is never echoed


def test_the_cli_exits_2_for_a_bad_origin(netrun_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    result = netrun_cli("serve", "--cors-origin", "https://ok.example.com", "--cors-origin", "console.example.com", "networks")
    assert result.exit_code == 2, result.output
    assert "--cors-origin: the CORS origin 'console.example.com' is not an origin" in result.output
    monkeypatch.setenv("NETRUN_CORS_ORIGINS", "https://ok.example.com,https://x.example.com/path")
    result = netrun_cli("serve", "networks")
    assert result.exit_code == 2, result.output
    assert "NETRUN_CORS_ORIGINS: the CORS origin 'https://x.example.com/path' must be scheme, host and port only" in result.output


@pytest.fixture(scope="module")
def cors_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Served]]:
    """One server allowing CONSOLE (behind a token), one allowing none."""
    folder, other = tmp_path_factory.mktemp("cors"), tmp_path_factory.mktemp("cors-none")
    with FakeLLM() as llm:
        write_network(folder, llm)
        write_network(other, llm)
        allowed = Served(lambda port: create_app(settings(folder, port, NETRUN_CORS_ORIGINS=CONSOLE, NETRUN_API_TOKEN="tok")))
        closed = Served(lambda port: create_app(settings(other, port)))
        with allowed, closed:
            yield allowed, closed


def _preflight(url: str, origin: str, method: str = "GET", headers: str = "authorization, last-event-id") -> httpx.Response:
    return httpx.options(
        f"{url}/runs/r1/events",
        headers={"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers},
    )


def test_a_named_origin_passes_the_preflight_with_the_headers_a_stream_needs(cors_served: tuple[Served, Served]) -> None:
    allowed, _ = cors_served
    answer = _preflight(allowed.url, CONSOLE)
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == CONSOLE
    granted = answer.headers["access-control-allow-headers"].lower()
    assert all(h in granted for h in ("authorization", "last-event-id", "content-type"))
    post = _preflight(allowed.url, CONSOLE, "POST", "authorization, content-type")
    assert post.status_code == 200 and "POST" in post.headers["access-control-allow-methods"]


def test_another_origin_gets_no_grant(cors_served: tuple[Served, Served]) -> None:
    allowed, closed = cors_served
    answer = _preflight(allowed.url, "https://evil.example.com")
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers
    simple = httpx.get(f"{allowed.url}/healthz", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in simple.headers
    # none by default: not even the origin the other server names
    assert "access-control-allow-origin" not in _preflight(closed.url, CONSOLE).headers
    assert "access-control-allow-origin" not in httpx.get(f"{closed.url}/healthz", headers={"Origin": CONSOLE}).headers


def test_answers_to_the_named_origin_carry_the_grant_errors_too(cors_served: tuple[Served, Served]) -> None:
    allowed, _ = cors_served
    refused = httpx.get(f"{allowed.url}/runs", headers={"Origin": CONSOLE})
    assert refused.status_code == 401  # the page can read why
    assert refused.headers["access-control-allow-origin"] == CONSOLE
    listed = httpx.get(f"{allowed.url}/runs", headers={"Origin": CONSOLE, "Authorization": "Bearer tok"})
    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == CONSOLE
