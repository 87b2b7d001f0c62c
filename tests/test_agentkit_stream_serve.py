"""Thread and user streams: ``GET /threads/{id}/events`` and ``GET /users/{user}/events``
carry the chunks of every run of the thread (the user), however it started (REST, an
event), live, in one stream; they resume after ``Last-Event-ID`` (a cursor monotonic
across runs), after a restart too; secrets stay redacted in every chunk.

Real ``netrun serve`` (uvicorn in a thread, restarted on the same data directory), the
fake OpenAI-compatible model server through litellm, a real SSE client (httpx).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.serve.app import create_app
from netrun.serve.settings import ServeSettings

from .fakes.llm_server import FakeLLM, Reply
from .fakes.served import Served
from .test_run_events import Event, read_sse

SECRET = "sk-h16a-0123456789abcdef"
CHAT = """\
name: chat
trigger:
  event: app/chat.requested
  input: "{{{{ event.data.message }}}}"
  thread: "{{{{ event.data.threadId }}}}"
  user: "{{{{ event.data.userId }}}}"
model: {{id: openai/fake, api_base: "{llm}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 2
agents:
  helper: {{description: helps, system: "Help with {{{{ input }}}}"}}
router:
  rules: [{{if: last_output, stop: true}}, {{if: "true", agent: helper}}]
"""
ENV = {"FAKE_LLM_KEY": SECRET, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    with FakeLLM([]) as llm:
        # The model says the key back: every chunk must show it redacted.
        llm.set_script([Reply(text=f"Answer {n}: the key is {SECRET}, and more words to stream.") for n in range(20)])
        (tmp_path / "chat.yaml").write_text(CHAT.format(llm=llm.base_url))
        environ = {**os.environ, **ENV}
        served = Served(
            lambda port: create_app(
                ServeSettings.from_env(environ, (tmp_path,), engine="local", data_dir=tmp_path / "data", port=port)
            )
        ).start()
        yield served
        served.stop()


def by_rest(url: str, thread_id: str, user: str, text: str) -> str:
    answer = httpx.post(f"{url}/networks/chat/runs", json={"input": text, "thread_id": thread_id, "user": user}, timeout=30)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["run_id"])


def by_event(url: str, thread_id: str, user: str, text: str) -> None:
    data = {"threadId": thread_id, "userId": user, "message": text}
    answer = httpx.post(f"{url}/events", json={"name": "app/chat.requested", "data": data}, timeout=30)
    assert answer.status_code == 202, answer.text


def follow(
    url: str, path: str, until: Callable[[list[Event]], bool], act: Callable[[], Any] | None = None, **kw: Any
) -> list[Event]:
    """Read a thread or user stream (which never ends) until ``until`` holds; ``act`` runs
    once the stream is open. A stream silent for 10 s fails the read."""
    seen: list[Event] = []
    with httpx.stream("GET", f"{url}{path}", timeout=10, **kw) as response:
        assert response.status_code == 200, response.read()
        if act is not None:
            act()
        for event in read_sse(response):
            seen.append(event)
            if until(seen):
                break
    return seen


def ended(n: int) -> Callable[[list[Event]], bool]:
    return lambda seen: sum(e["event"] == "stream.ended" for _, e in seen) >= n


def test_a_thread_stream_carries_every_run_of_the_thread_live_and_resumes(server: Served) -> None:
    url = server.url

    def two_runs() -> None:
        by_rest(url, "t1", "ann", "first question")
        by_rest(url, "t2", "ann", "another thread's")  # not this stream's
        by_event(url, "t1", "ann", "second question")  # a run started by an event

    seen = follow(url, "/threads/t1/events", ended(2), two_runs)
    chunks = [c for _, c in seen]
    runs = [c["data"]["runId"] for c in chunks if c["event"] == "run.started" and c["data"]["scope"] == "network"]
    assert len(set(runs)) == 2
    assert all(c["data"]["threadId"] == "t1" and c["data"]["userId"] == "ann" for c in chunks)
    cursors = [int(i) for i, _ in seen if i is not None]
    assert cursors == sorted(set(cursors)) and len(cursors) >= len(seen) - 2, cursors  # monotonic across runs
    deltas = [c for c in chunks if c["event"] == "text.delta"]
    assert len(deltas) > 4  # the thread is watched: the model's text streamed, piece by piece
    text = json.dumps(chunks)
    assert SECRET not in text and "the key is ***" in text
    # Resume after any chunk: exactly the rest, across the runs' boundary.
    for k in (0, len(seen) // 2, len(seen) - 2):
        ident = seen[k][0] or next(i for i, _ in reversed(seen[:k]) if i is not None)
        rest = follow(url, "/threads/t1/events", lambda got, k=k: len(got) >= len(seen) - k - 1, headers={"Last-Event-ID": ident})
        assert rest == seen[k + 1 :]
    # After a restart the journal gives the same stream, with the same cursors.
    server.restart()
    assert follow(server.url, "/threads/t1/events", lambda got: len(got) >= len(seen)) == seen
    # ?live=true: only what comes next.
    later = follow(server.url, "/threads/t1/events?live=true", ended(1), lambda: by_rest(server.url, "t1", "ann", "third"))
    assert later[0][1]["event"] == "run.started" and later[0][1]["data"]["runId"] not in runs
    assert httpx.get(f"{server.url}/threads/t1/events", headers={"Last-Event-ID": "x"}, timeout=10).status_code == 400


def test_a_user_stream_carries_the_users_runs_of_every_thread(server: Served) -> None:
    url = server.url

    def runs() -> None:
        by_rest(url, "t1", "ann", "one")
        by_event(url, "t9", "bob", "not ann's")
        by_event(url, "t3", "ann", "two")

    seen = follow(url, "/users/ann/events", ended(2), runs)
    chunks = [c for _, c in seen]
    assert {c["data"]["threadId"] for c in chunks} == {"t1", "t3"}
    assert all(c["data"]["userId"] == "ann" for c in chunks)
    assert SECRET not in json.dumps(chunks)
    # Each run's own stream is the same chunks (the thread/user stream adds nothing, drops nothing).
    (first, second) = dict.fromkeys(
        c["data"]["runId"] for c in chunks if c["event"] == "run.started" and c["data"]["scope"] == "network"
    )
    for run_id in (first, second):
        with httpx.stream("GET", f"{url}/runs/{run_id}/events", timeout=10) as response:
            own = [c for _, c in read_sse(response)]
        assert [c for c in chunks if c["data"].get("runId") == run_id] == [c for c in own if c["data"].get("runId") == run_id]
