"""``GET /runs``: the runs a server holds, newest first, filtered by network, status, thread,
user and time, a page at a time; bad filters get a 422 naming the field."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netrun.engines.journal import Journal
from netrun.engines.journal_schema import SCHEMA
from netrun.serve.app import create_app

from .fakes.llm_server import FakeLLM, Reply
from .fakes.served import Served
from .test_serve_local import ASK, FINISH, settings, wait_status, write_network


def _reply(request: dict[str, Any]) -> Reply:
    """Every run finishes at once, unless its input asks it to wait for a human."""
    text = str(request["messages"])
    return ASK if "please wait" in text and "tool_call_id" not in text else FINISH


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A server with seven runs, started one after the other: (url, the runs as started)."""
    folder = tmp_path_factory.mktemp("runs")
    with FakeLLM(fallback=_reply) as llm:
        write_network(folder, llm)
        with Served(lambda port: create_app(settings(folder, port))) as server:
            started = []
            for i in range(7):
                body: dict[str, Any] = {"input": f"question {i}" + (" please wait" if i == 3 else ""), "data": {"user": f"u{i}"}}
                if i % 2 == 0:
                    body.update(thread_id="thread-even", user="ann")
                else:
                    body["user"] = "bob"
                answer = httpx.post(f"{server.url}/networks/helper/runs", json=body).json()
                wait_status(server.url, answer["run_id"], "waiting" if i == 3 else "completed")
                started.append({**answer, **body})
            yield server.url, started


def _list(url: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}/runs", params=params)


def _ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [r["run_id"] for r in answer.json()["runs"]]


def test_runs_are_listed_newest_first_with_what_a_list_shows(listed: tuple[str, list[dict[str, Any]]]) -> None:
    url, started = listed
    answer = _list(url)
    assert _ids(answer) == [r["run_id"] for r in reversed(started)]
    assert answer.json()["next"] is None
    newest = answer.json()["runs"][0]
    assert newest["network"] == "helper" and newest["status"] == "completed" and newest["input"] == "question 6"
    assert newest["thread_id"] == "thread-even" and newest["user"] == "ann"
    assert newest["created"].endswith("Z") and newest["updated"] >= newest["created"]
    assert "result" not in newest  # a list stays small: GET /runs/{id} has the result


def test_pages_follow_the_cursor_to_the_end_without_gaps_or_repeats(listed: tuple[str, list[dict[str, Any]]]) -> None:
    url, started = listed
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        answer = _list(url, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += _ids(answer)
        pages += 1
        cursor = answer.json()["next"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [r["run_id"] for r in reversed(started)]
    exact = _list(url, limit=7).json()
    assert exact["next"] is None and len(exact["runs"]) == 7  # a full last page says it is the last


def test_filters_combine(listed: tuple[str, list[dict[str, Any]]]) -> None:
    url, started = listed
    ids = [r["run_id"] for r in started]
    assert _ids(_list(url, thread_id="thread-even")) == [ids[6], ids[4], ids[2], ids[0]]
    assert _ids(_list(url, user="bob")) == [ids[5], ids[3], ids[1]]
    assert _ids(_list(url, status="waiting")) == [ids[3]]
    assert _ids(_list(url, status="waiting,completed", user="bob")) == [ids[5], ids[3], ids[1]]
    assert _ids(_list(url, status="failed")) == []
    assert _ids(_list(url, network="helper", user="ann", limit=2)) == [ids[6], ids[4]]
    assert _ids(_list(url, network="nope")) == []
    runs = {r["run_id"]: r for r in _list(url).json()["runs"]}
    since, until = runs[ids[2]]["created"], runs[ids[5]]["created"]
    assert _ids(_list(url, since=since, until=until)) == [ids[4], ids[3], ids[2]]  # since inclusive, until not
    assert _ids(_list(url, until=since.replace("Z", "+00:00"))) == [ids[1], ids[0]]
    assert _ids(_list(url, since=9e12)) == []  # Unix seconds work too
    assert len(_ids(_list(url, since=0))) == 7


@pytest.mark.parametrize(
    ("params", "field", "why"),
    [
        ({"limit": 0}, "query.limit", "must be from 1 to 500"),
        ({"limit": 501}, "query.limit", "must be from 1 to 500"),
        ({"limit": "many"}, "query.limit", "integer"),
        ({"status": "done"}, "query.status", "not a status; one of: queued, running, waiting"),
        ({"status": "failed,done"}, "query.status", "not a status"),
        ({"since": "nan"}, "query.since", "not a time"),
        ({"since": "1e400"}, "query.since", "not a time"),
        ({"until": "2026-02-30"}, "query.until", "not a time"),
        ({"since": "yesterday"}, "query.since", "not a time"),
        ({"until": "2026-13-01"}, "query.until", "not a time"),
        ({"cursor": "bm90IGEgY3Vyc29y"}, "query.cursor", "not a cursor this server gave"),
        ({"cursor": "%%%"}, "query.cursor", "not a cursor"),
        ({"cursor": "WzFlNDAwLCJ4Il0"}, "query.cursor", "not a cursor"),  # [1e400,"x"]
        # [10**400, "a"]: an integer no float holds (was a 500, an OverflowError)
        (
            {
                "cursor": "WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwLCJhIl0"
            },
            "query.cursor",
            "not a cursor",
        ),
        ({"statuss": "failed"}, "query.statuss", "unknown filter; the parameters are: network, status, thread_id"),
    ],
)
def test_bad_filters_get_a_422_naming_the_field(
    listed: tuple[str, list[dict[str, Any]]], params: dict[str, Any], field: str, why: str
) -> None:
    answer = _list(listed[0], **params)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert any(e["field"] == field and why in e["msg"] for e in body["errors"]), body
    for value in params.values():
        assert len(str(value)) < 4 or str(value) not in answer.text  # the refused value is not echoed


def test_an_older_journal_gains_the_list_indexes_and_the_query_uses_them(tmp_path: Path) -> None:
    """The journal's migration: a file written before the list existed is indexed on open."""
    old = "\n".join(line for line in SCHEMA.splitlines() if "runs_by_created" not in line and "json_extract" not in line)
    old = old.replace("CREATE INDEX IF NOT EXISTS runs_by_network_created ON runs (network, created, id);", "")
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as db:
        db.executescript(old)
    with sqlite3.connect(path) as db:
        before = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "runs_by_thread" not in before
    journal = Journal(path)
    try:
        names = {r[0] for r in journal.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"runs_by_created", "runs_by_network_created", "runs_by_thread", "runs_by_user"} <= names
        plan = " ".join(
            str(r[-1])
            for r in journal.db.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE json_extract(options, '$.thread_id') = ? "
                "ORDER BY created DESC, id DESC LIMIT 5",
                ("t",),
            )
        )
        assert "runs_by_thread" in plan, plan
        assert journal.list_runs(thread_id="t") == []
    finally:
        journal.close()


CHAT = """\
name: chat
model: {{id: openai/fake, api_base: "{base}", api_key: "${{FAKE_LLM_KEY}}"}}
max_iter: 2
trigger: {{event: app/chat.sent, input: "{{{{ event.data.text }}}}", thread: "{{{{ event.data.threadId }}}}", user: "{{{{ event.data.userId }}}}"}}
agents:
  chat: {{description: chats, system: "Chat."}}
router:
  rules: [{{if: "true", agent: chat}}]
"""


def test_a_run_whose_trigger_chose_its_thread_is_listed_under_it(tmp_path: Path) -> None:
    """The thread and user a trigger's templates make at execution are recorded with the run."""
    with FakeLLM(fallback=lambda request: Reply(text="hi")) as llm:
        (tmp_path / "chat.yaml").write_text(CHAT.format(base=llm.base_url))
        with Served(lambda port: create_app(settings(tmp_path, port))) as server:
            sent = httpx.post(
                f"{server.url}/events",
                json={"name": "app/chat.sent", "data": {"text": "hello", "threadId": "th-9", "userId": "zoe"}},
            )
            (run_id,) = sent.json()["started"]
            wait_status(server.url, run_id, "completed")
            assert _ids(_list(server.url, thread_id="th-9")) == [run_id]
            assert _ids(_list(server.url, user="zoe")) == [run_id]
            (listed,) = _list(server.url).json()["runs"]
            assert listed["thread_id"] == "th-9" and listed["user"] == "zoe"


def test_runs_inngest_executes_are_listed_with_their_thread(tmp_path: Path) -> None:
    from .fakes.inngest_executor import StandInExecutor
    from .test_serve_inngest import serve

    with StandInExecutor() as executor, FakeLLM(fallback=lambda request: Reply(text="hi")) as llm:
        (tmp_path / "chat.yaml").write_text(CHAT.format(base=llm.base_url))
        server = serve(tmp_path, executor)
        try:
            executor.sync(f"{server.url}/api/inngest")
            (by_event,) = executor.send({"name": "app/chat.sent", "data": {"text": "a", "threadId": "th-1", "userId": "amy"}})
            started = httpx.post(f"{server.url}/networks/chat/runs", json={"input": "b", "thread_id": "th-1", "user": "amy"})
            executor.deliver_received()
            by_rest = started.json()["run_id"]
            assert _ids(_list(server.url, thread_id="th-1")) == [by_rest, by_event]
            assert _ids(_list(server.url, user="amy", status="completed")) == [by_rest, by_event]
        finally:
            server.stop()
