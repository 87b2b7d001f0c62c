"""Every example network runs end to end offline, from the replies file beside it."""

from __future__ import annotations

import json

from .conftest import REPO

NETWORKS = REPO / "networks"


def run_json(netrun_cli, tmp_path, *args: str) -> dict:
    result = netrun_cli(*args, "--json", "--db", str(tmp_path / "runs.db"))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_quickstart(netrun_cli, tmp_path) -> None:
    out = run_json(
        netrun_cli,
        tmp_path,
        "run",
        str(NETWORKS / "quickstart.yaml"),
        "-i",
        "Read-only access for analysts?",
        "--replay",
        str(NETWORKS / "quickstart.replies.yaml"),
    )
    assert out["status"] == "completed"
    assert out["result"]["route"] == ["dba", "security"]
    assert out["result"]["state"]["done"] is True
    assert out["result"]["state"]["dba_answer"].startswith("A NOLOGIN role analysts_ro")


def test_writing_routes_by_state(netrun_cli, tmp_path) -> None:
    out = run_json(
        netrun_cli,
        tmp_path,
        "run",
        str(NETWORKS / "writing.yaml"),
        "-i",
        "Barn owls, 300 words.",
        "--replay",
        str(NETWORKS / "writing.replies.yaml"),
    )
    state = out["result"]["state"]
    assert out["result"]["route"] == ["planner", "editor", "editor"]
    assert state["plan"] == ["Where barn owls live", "How they hunt", "Why farmers like them"]  # JSON text -> array
    assert state["revisions"] == 2 and state["done"] is True


def test_support_waits_for_a_developer_and_resumes(netrun_cli, tmp_path) -> None:
    event = json.dumps({"name": "app/support.ticket.created", "data": {"ticketId": "T-1"}})
    out = run_json(
        netrun_cli,
        tmp_path,
        "run",
        str(NETWORKS / "support.yaml"),
        "-i",
        "Export crashes",
        "--event",
        event,
        "--replay",
        str(NETWORKS / "support.replies.yaml"),
    )
    assert out["status"] == "waiting"
    other = netrun_cli(
        "send", "app/support.ticket.developer-response", "--data", '{"ticketId": "T-9"}', "--db", str(tmp_path / "runs.db")
    )
    assert "no run was waiting" in other.output
    (resumed,) = run_json(
        netrun_cli, tmp_path, "send", "app/support.ticket.developer-response", "--data", '{"ticketId": "T-1", "answer": "2.3.1"}'
    )
    assert resumed["status"] == "completed"
    assert resumed["result"]["route"] == ["triage", "technical", "technical"]
    assert resumed["result"]["state"] == {
        "category": "technical",
        "answer": "Known bug in 2.3; update to 2.3.1 and the export works again.",
    }


def test_orders_calls_http_and_waits_for_approval(netrun_cli, tmp_path, monkeypatch) -> None:
    from .fakes.http_server import FakeHttpServer, Reply

    with FakeHttpServer() as api:
        api.script("/v1/orders/A1", Reply(200, {"id": "A1", "total": 42, "status": "delivered"}))
        api.script("/v1/orders/A1/refund", Reply(200, {"refunded": 42}))
        monkeypatch.setenv("ORDERS_API", api.url)
        monkeypatch.setenv("ORDERS_TOKEN", "tok-secret-77")
        out = run_json(
            netrun_cli,
            tmp_path,
            "run",
            str(NETWORKS / "orders.yaml"),
            "-i",
            "Refund order A1, it arrived broken",
            "--replay",
            str(NETWORKS / "orders.replies.yaml"),
        )
        assert out["status"] == "waiting"
        assert [h.path for h in api.hits] == ["/v1/orders/A1"]  # the refund waits for a human
        (done,) = run_json(
            netrun_cli, tmp_path, "send", "netrun/approval", "--run", out["run_id"], "--data", '{"approved": true}'
        )
        hits = api.hits
    assert done["status"] == "completed"
    assert [h.path for h in hits] == ["/v1/orders/A1", "/v1/orders/A1/refund"]
    assert hits[1].json() == {"reason": "arrived broken"}
    assert hits[1].headers["authorization"] == "Bearer tok-secret-77"
    refund = done["result"]["results"][1]["tool_calls"][0]
    assert refund["result"] == {"status": 200, "body": {"refunded": 42}}
    assert "tok-secret-77" not in json.dumps(done)


def test_timekeeper_calls_a_real_mcp_server(netrun_cli, tmp_path, monkeypatch) -> None:
    import os
    import sys
    from pathlib import Path

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = run_json(
        netrun_cli,
        tmp_path,
        "run",
        str(NETWORKS / "timekeeper.yaml"),
        "-i",
        "What time is it in Tokyo?",
        "--replay",
        str(NETWORKS / "timekeeper.replies.yaml"),
    )
    assert out["status"] == "completed", out
    call = out["result"]["results"][0]["tool_calls"][0]
    assert call["name"] == "time__get_current_time"
    assert call["error"] is None
    assert call["result"]["timezone"] == "Asia/Tokyo"  # the server's structured answer
    assert call["result"]["datetime"].endswith("+09:00")
