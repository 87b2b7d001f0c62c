"""A wait_for_event call is counted once, by the execution that resumes the run with its
answer (the one that parks ends its span by the park, which counts nothing), on the local
engine and on Inngest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from .fakes.llm_server import FakeLLM, Reply, ToolCall
from .fakes.served import Served
from .test_metrics import AUTH, TOKEN, scrape, value, wait_status
from .test_serve_inngest import synced

ASKING = """\
name: asking
model: {{id: openai/gpt-4o-mini, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
state: {{done: {{type: boolean, default: false}}}}
agents:
  asker: {{description: asks, system: "Ask about {{{{ input }}}}", tools: [ask, finish]}}
router:
  rules: [{{if: state.done, stop: true}}, {{if: "true", agent: asker}}]
tools:
  ask: {{wait_for_event: {{event: app/answered, timeout: 1h}}, parameters: {{q: {{type: string}}}}}}
  finish: {{state: {{done: true}}}}
"""
SCRIPT = [Reply(tool_calls=[ToolCall("ask", {"q": "which?"})]), Reply(tool_calls=[ToolCall("finish", {})])]


def _asked(samples: dict) -> tuple[float, float]:  # type: ignore[type-arg]
    return (
        value(samples, "netrun_tool_calls_total", tool="ask", kind="wait_for_event"),
        value(samples, "netrun_tool_seconds_count", tool="ask"),
    )


def test_a_wait_is_counted_once_when_its_answer_resumes_the_run(
    tmp_path: Path, llm: FakeLLM, served: Callable[..., Served]
) -> None:
    llm.set_script(SCRIPT)
    (tmp_path / "asking.yaml").write_text(ASKING.format(base=llm.base_url))
    server = served(NETRUN_API_TOKEN=TOKEN)
    run_id = httpx.post(f"{server.url}/networks/asking/runs", json={"input": "x"}, headers=AUTH).json()["run_id"]
    wait_status(server.url, run_id, "waiting")
    assert _asked(scrape(server.url, headers=AUTH)) == (0, 0)  # parked: not a call that has ended
    sent = httpx.post(
        f"{server.url}/events", json={"name": "app/answered", "data": {"pick": "a"}, "run_id": run_id}, headers=AUTH
    )
    assert sent.status_code == 202 and sent.json()["resumed"] == [run_id], sent.text
    wait_status(server.url, run_id, "completed")
    done = scrape(server.url, headers=AUTH)
    assert _asked(done) == (1, 1)
    assert value(done, "netrun_tool_calls_total", tool="finish") == 1
    assert value(done, "netrun_tool_errors_total") == 0


def test_on_inngest_a_wait_is_counted_once_however_many_calls_replay_it(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script(SCRIPT)
    (tmp_path / "asking.yaml").write_text(ASKING.format(base=llm.base_url))
    with synced(tmp_path) as (executor, server):
        (run_id,) = executor.send({"name": "netrun/asking.run", "data": {"input": "x"}})
        run = executor.runs[run_id]
        assert run.status == "waiting", run.error
        assert _asked(scrape(server.url)) == (0, 0)
        executor.send({"name": "app/answered", "data": {"pick": "a"}})
        assert run.status == "completed", run.error
        samples = scrape(server.url)
        calls = len([c for c in executor.requests if c.run_id == run_id])
    assert calls >= 4  # the wait's answer was read by more than one call
    assert _asked(samples) == (1, 1)
    assert value(samples, "netrun_tool_calls_total", tool="finish") == 1
