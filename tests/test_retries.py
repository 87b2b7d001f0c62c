"""Retries mean what they say (issue 11, item 6), against real parts over real processes.

- Models: litellm against the fake OpenAI-compatible server (tests/fakes/llm_server.py),
  through `netrun run` and the local engine: ``function.retries`` bounds the attempts, a
  429's ``Retry-After`` is waited for (up to a cap), a permanent error fails at once with
  the provider's reason. (Inngest's side is in tests/test_serve_inngest.py.)
- MCP: a Python MCP server written here that crashes in the middle of its first call; the
  calls it received are counted in a file it appends to.
- A missing MCP server program fails `netrun run`.

Time is read from when the fake server received each request, never waited for.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from pydantic import TypeAdapter

from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
from netrun.models import close_clients
from netrun.spec import NetworkSpec
from netrun.spec.mcp import McpServerSpec
from netrun.tools.mcp import McpServerMissingError, McpServers

from .fakes.llm_server import FakeLLM, Reply, Responder, ToolCall

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-test-7f3a9c2e51"

NETWORK = """\
name: answers
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_KEY}}"}}
state: {{answer: string}}
agents:
  helper: {{description: answers, system: "Answer {{{{ input }}}}", tools: [save]}}
router:
  rules: [{{if: state.answer, stop: true}}, {{if: "call_count < 3", agent: helper}}]
tools:
  save: {{parameters: {{text: {{type: string}}}}, state: {{answer: "{{{{ args.text }}}}"}}}}
"""

SCRIPT = [Reply(text="Thinking. "), Reply(text="Owls hoot.", tool_calls=[ToolCall("save", {"text": "they hoot"})])]


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def network(tmp_path: Path, llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    monkeypatch.setenv("FAKE_KEY", KEY)
    monkeypatch.setenv("NETRUN_DATA_DIR", str(tmp_path / "data"))

    def write(extra: str = "") -> Path:
        path = tmp_path / "answers.yaml"
        path.write_text(NETWORK.format(base=llm.base_url) + extra)
        return path

    return write


def stamped(reply: Reply, times: list[float]) -> Responder:
    """A script item answering ``reply`` that notes when its request arrived."""

    def respond(body: dict[str, Any]) -> Reply:
        times.append(time.monotonic())
        return reply

    return respond


# -- models on the local engine ---------------------------------------------------------------


def test_a_429_retry_after_is_waited_for_then_the_call_succeeds(
    netrun_cli: Any, network: Callable[..., Path], llm: FakeLLM
) -> None:
    times: list[float] = []
    llm.set_script([stamped(r, times) for r in (Reply(status=429, retry_after=2, error="Rate limit reached"), *SCRIPT)])
    result = netrun_cli("run", str(network()), "-i", "owls?", "--json")
    assert json.loads(result.output)["status"] == "completed", result.output
    assert llm.count == 3  # one retry of the rate-limited call, then the two calls
    assert times[1] - times[0] >= 2.0  # as the provider asked (the backoff alone is 0.5 s)


def test_a_retry_after_beyond_the_cap_fails_at_once_saying_so(
    netrun_cli: Any, network: Callable[..., Path], llm: FakeLLM
) -> None:
    llm.set_script([Reply(status=429, retry_after=3600, error="Rate limit reached"), *SCRIPT])
    result = netrun_cli("run", str(network()), "-i", "owls?")
    assert result.exit_code == 1, result.output
    assert "rate limited (HTTP 429, retry after 3600 s)" in result.output
    assert "asks to wait 3600 s before retrying, longer than netrun waits: 60 s" in result.output
    assert llm.count == 1


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (401, "the API key was rejected (HTTP 401)"),
        (403, "access was denied (HTTP 403)"),
        (404, "NotFoundError (HTTP 404)"),
        (400, "BadRequestError (HTTP 400)"),
    ],
)
def test_a_permanent_error_fails_at_once_with_the_providers_reason(
    netrun_cli: Any, network: Callable[..., Path], llm: FakeLLM, status: int, said: str
) -> None:
    llm.set_script([Reply(status=status, error=f"Incorrect API key provided: {KEY}. You can find your key at the dashboard.")])
    started = time.monotonic()
    result = netrun_cli("run", str(network()), "-i", "owls?")
    assert result.exit_code == 1, result.output
    assert llm.count == 1  # not retried
    assert f"failed: model openai/fake: {said}: Incorrect API key provided: ***. You can find your key" in result.output
    assert KEY not in result.output
    assert time.monotonic() - started < 5  # no backoff either (it would be 0.5 + 1 + 2 + 4 s)


@pytest.mark.parametrize("retries", [0, 1])
def test_function_retries_bounds_the_attempts_on_the_local_engine(
    netrun_cli: Any, network: Callable[..., Path], llm: FakeLLM, retries: int
) -> None:
    llm.fallback = lambda body: Reply(status=500, error="the model is overloaded")
    result = netrun_cli("run", str(network(f"function: {{retries: {retries}}}\n")), "-i", "owls?")
    assert result.exit_code == 1, result.output
    assert llm.count == retries + 1
    plural = "s" if retries else ""
    assert f"InternalServerError (HTTP 500): the model is overloaded (after {retries + 1} attempt{plural})" in result.output


def test_without_function_retries_a_step_gets_inngests_default_of_4_retries(tmp_path: Path, llm: FakeLLM) -> None:
    llm.fallback = lambda body: Reply(status=503, error="try later")
    spec = NetworkSpec.model_validate(yaml.safe_load(NETWORK.format(base=llm.base_url)))
    engine = LocalEngine(
        Journal(tmp_path / "runs.db"), {"FAKE_KEY": KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, backoff=0.0, stream=False
    )

    async def run() -> Any:
        try:
            return await engine.start(spec, tmp_path, input="owls?")
        finally:
            await close_clients()  # litellm's HTTP clients belong to this event loop

    record = asyncio.run(run())
    assert record.status == "failed" and "(after 5 attempts)" in (record.error or "")
    assert llm.count == 5


# -- MCP: a call cut short by a crash ---------------------------------------------------------

CRASHY = '''
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

LOG = sys.argv[1]
server = MCPServer("crashy")


def arrived(name: str) -> None:
    with open(LOG, "a") as log:
        log.write(name + "\\n")
    with open(LOG) as log:
        first = len(log.read().splitlines()) == 1
    if first:  # the first call of all dies mid-call: its effect (the line above) happened
        os._exit(1)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def lookup() -> str:
    """Reads."""
    arrived("lookup")
    return "found"


@server.tool(annotations=ToolAnnotations(idempotent_hint=True))
def upsert() -> str:
    """Writes, the same way every time."""
    arrived("upsert")
    return "upserted"


@server.tool()
def charge() -> str:
    """Charges a card."""
    arrived("charge")
    return "charged"


server.run("stdio")
'''

_SPEC: TypeAdapter[Any] = TypeAdapter(McpServerSpec)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def crashy(tmp_path: Path, **fields: Any) -> tuple[Any, Path]:
    script, log = tmp_path / "crashy.py", tmp_path / "calls.log"
    script.write_text(textwrap.dedent(CRASHY))
    return _SPEC.validate_python(
        {"transport": "stdio", "command": sys.executable, "args": [str(script), str(log)], **fields}
    ), log


async def call(spec: Any, tool: str) -> tuple[Any, Any, int]:
    """Call ``tool`` then ``tool`` again; the outcomes and the sessions opened."""
    async with McpServers({"crashy": spec}, environ=dict(os.environ), base_dir=REPO) as m:
        [found] = await m.tools_for("crashy", tool)
        first = await found.call({})
        second = await found.call({})
        return first, second, m.connection("crashy").sessions_opened


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "fields"),
    [
        ("lookup", {}),  # readOnlyHint
        ("upsert", {}),  # idempotentHint
        ("charge", {"idempotent": ["charge"]}),  # declared in the network file
        ("charge", {"idempotent": True}),
    ],
)
async def test_a_call_cut_by_a_crash_is_sent_again_when_it_is_safe_to_repeat(
    tmp_path: Path, tool: str, fields: dict[str, Any]
) -> None:
    spec, log = crashy(tmp_path, **fields)
    first, second, sessions = await call(spec, tool)
    assert first.error is None and second.error is None, (first, second)
    assert log.read_text().split() == [tool, tool, tool]  # crashed, sent again, then the second call
    assert sessions == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "fields"),
    [
        ("charge", {}),  # no annotation
        ("charge", {"idempotent": ["lookup"]}),
        ("lookup", {"idempotent": False}),  # the server's hint is not trusted
    ],
)
async def test_a_call_cut_by_a_crash_is_not_sent_again_and_the_model_is_told(
    tmp_path: Path, tool: str, fields: dict[str, Any]
) -> None:
    spec, log = crashy(tmp_path, **fields)
    first, second, sessions = await call(spec, tool)
    assert first.result is None and "may or may not have run" in first.error
    assert first.error.startswith(
        f"tool '{tool}' of MCP server 'crashy' (stdio: {sys.executable}): the connection was lost during the call"
    )
    assert "it was not sent again" in first.error and "it was restarted" in first.error
    assert second.error is None  # the server was restarted for the calls that follow
    assert log.read_text().split() == [tool, tool]  # the cut call once, the next call once
    assert sessions == 2


# -- a missing MCP server program ------------------------------------------------------------


def test_a_missing_mcp_server_program_fails_the_run(netrun_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRUN_DATA_DIR", str(tmp_path / "data"))
    text = (REPO / "networks" / "timekeeper.yaml").read_text()
    assert "command: mcp-server-time" in text
    path = tmp_path / "timekeeper.yaml"
    path.write_text(text.replace("command: mcp-server-time", "command: netrun-no-such-mcp-server"))
    replies = REPO / "networks" / "timekeeper.replies.yaml"
    result = netrun_cli("run", str(path), "-i", "What time is it in Tokyo?", "--replay", str(replies))
    assert result.exit_code == 1, result.output
    assert (
        "failed: MCP server 'time' (stdio: netrun-no-such-mcp-server) cannot start: "
        "the command 'netrun-no-such-mcp-server' was not found"
    ) in result.output
    assert "done" not in result.output


@pytest.mark.anyio
async def test_asking_for_the_tools_of_a_server_whose_program_is_missing_raises(tmp_path: Path) -> None:
    spec = _SPEC.validate_python({"transport": "stdio", "command": "netrun-no-such-mcp-server"})
    async with McpServers({"gone": spec}, environ=dict(os.environ), base_dir=tmp_path) as m:
        assert (await m.connect())["gone"] is not None  # warming up never raises
        for ref in ("gone.*", "gone.echo"):
            with pytest.raises(McpServerMissingError, match="the command 'netrun-no-such-mcp-server' was not found"):
                await m.resolve([ref])
    await anyio.lowlevel.checkpoint()


def test_the_wait_a_provider_asks_for_is_read_from_either_header() -> None:
    from email.utils import format_datetime

    from netrun.runtime.retry_after import retry_after_headers

    assert retry_after_headers({"Retry-After-Ms": "1500", "retry-after": "9"}) == 1.5  # the finer one wins
    assert retry_after_headers({"retry-after": "3"}) == 3.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_headers({"retry-after": later}) or 0) <= 30
    assert retry_after_headers({"retry-after-ms": "soon", "retry-after": "2"}) == 2.0
    assert retry_after_headers({"retry-after": "whenever"}) is None and retry_after_headers({}) is None


def test_a_zone_less_retry_after_date_is_read_as_utc() -> None:
    """HTTP dates are GMT: one written without a zone is not local time (the litellm client's
    own parser read it so, off by the machine's UTC offset)."""
    import email.utils
    from datetime import UTC, datetime, timedelta

    from netrun.runtime.retry_after import retry_after_seconds

    when = datetime.now(UTC) + timedelta(seconds=30)
    zoneless = email.utils.format_datetime(when.replace(tzinfo=None))  # "Wed, 02 Dec 2026 03:40:00 -0000"
    seconds = retry_after_seconds(zoneless.replace(" -0000", ""))
    assert seconds is not None and 25 <= seconds <= 31, seconds
