"""``finally:`` after every end of a run (issue 15, deliverable 5): cancelled, failed by an
internal error or a thread store, a completed run whose ``send:`` event fails; and not after
a wait or a shutdown, which end nothing.

Real parts: the local engine and its SQLite journal, the fake OpenAI-compatible model over
HTTP, a real HTTP server on 127.0.0.1 for the ``notify`` tool the ``finally:`` step calls
(its hits say how often and with what outcome it ran), uvicorn for the REST cancel.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from netrun.engines.local import Journal
from netrun.engines.runner import LocalEngine
from netrun.runtime.lifecycle import CANCEL_FINISHED
from netrun.spec import NetworkSpec

from .fakes.http_server import FakeHttpServer
from .fakes.http_server import Reply as HttpReply
from .fakes.llm_server import FakeLLM, Reply
from .test_lifecycle_steps import ENV, network

NOTIFY = [{"tool": "notify", "args": {"text": "{{ outcome.status }}: {{ outcome.error }}"}}]
SECRET = "sk-test"  # ENV's FAKE_LLM_KEY: the network's ${ENV} value


def holding(llm: FakeLLM, api: FakeHttpServer, **extra: Any) -> dict[str, Any]:
    """A network whose setup step waits for ``app/go`` (a run that waits, executing nothing)."""
    spec = network(llm, api, setup=[{"tool": "hold"}], **{"finally": NOTIFY}, **extra)
    spec["tools"]["hold"] = {"wait_for_event": {"event": "app/go", "timeout": "1h"}}
    return spec


def engine_at(tmp_path: Path, sink: Any = None) -> LocalEngine:
    return LocalEngine(Journal(tmp_path / "runs.db"), ENV, sink, backoff=0.01)


def notified(api: FakeHttpServer) -> list[str]:
    return [h.json()["text"] for h in api.hits_for("/notify")]


def test_a_waiting_run_runs_no_finally_until_cancelled_then_once_with_the_reason(tmp_path: Path, llm: FakeLLM) -> None:
    with FakeHttpServer() as api:
        api.script("/notify", HttpReply(200, {"ok": True}))
        engine = engine_at(tmp_path)
        spec = NetworkSpec.model_validate(holding(llm, api))

        async def scenario() -> Any:
            record = await engine.start(spec, tmp_path, input="T1")
            assert record.status == "waiting"
            assert notified(api) == []  # waiting has not ended the run
            engine.cancel(record.id, "stopped by the operator")
            # The engine runs its finally: in a task of its own: wait for that task, bounded.
            await asyncio.wait_for(asyncio.gather(*engine._finishing), 30)
            again = await engine.resume(record.id)  # a second finish runs nothing
            return record.id, again

        run_id, again = asyncio.run(scenario())
        texts = notified(api)
    assert texts == ["cancelled: stopped by the operator"]
    assert again.status == "cancelled"
    steps = Journal(tmp_path / "runs.db").step_ids(run_id)
    assert {"finally.0.notify", CANCEL_FINISHED} <= steps
    assert llm.requests == []  # the cancelled run's loop went no further


def test_a_run_cancelled_while_it_executes_stops_at_its_next_step_then_runs_finally(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="never asked")])
    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(200, {"title": "t"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        holder: list[LocalEngine] = []

        def sink(kind: str, data: dict[str, Any]) -> None:
            if kind == "tool.result" and data.get("step") == "setup.0.fetch_ticket":
                holder[0].cancel(data["run_id"], "cancelled mid-run")  # the setup step has finished

        engine = engine_at(tmp_path, sink)
        holder.append(engine)
        spec = network(llm, api, setup=[{"tool": "fetch_ticket", "args": {"id": "T1"}}], **{"finally": NOTIFY})
        record = asyncio.run(engine.start(NetworkSpec.model_validate(spec), tmp_path, input="T1"))
        texts = notified(api)
    assert record.status == "cancelled" and record.error == "cancelled mid-run"
    assert texts == ["cancelled: cancelled mid-run"]
    assert llm.requests == []  # no step after the one in flight
    stored = Journal(tmp_path / "runs.db").run(record.id)
    assert stored is not None and stored.status == "cancelled"


def test_an_internal_error_fails_the_run_and_finally_sees_it_redacted(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="done")])
    with FakeHttpServer() as api:
        api.script("/notify", HttpReply(200, {"ok": True}))

        def sink(kind: str, data: dict[str, Any]) -> None:  # a progress sink that breaks (a closed pipe)
            if kind == "routed":
                raise BrokenPipeError(f"the terminal went away ({SECRET})")

        spec = network(llm, api, **{"finally": NOTIFY})
        record = asyncio.run(engine_at(tmp_path, sink).start(NetworkSpec.model_validate(spec), tmp_path, input="T1"))
        texts = notified(api)
    assert record.status == "failed"
    assert record.error.startswith("internal error: BrokenPipeError: the terminal went away")
    assert len(texts) == 1 and texts[0].startswith("failed: internal error: BrokenPipeError")
    assert SECRET not in texts[0] and SECRET not in record.error


def test_a_thread_store_that_cannot_be_opened_fails_the_run_and_runs_finally(tmp_path: Path, llm: FakeLLM) -> None:
    with FakeHttpServer() as api:
        api.script("/notify", HttpReply(200, {"ok": True}))
        spec = network(llm, api, history={"store": "postgres", "url": "${NO_SUCH_PG_URL}"}, **{"finally": NOTIFY})
        record = asyncio.run(
            engine_at(tmp_path).start(NetworkSpec.model_validate(spec), tmp_path, input="T1", options={"thread_id": "th1"})
        )
        texts = notified(api)
    assert record.status == "failed" and "thread store" in record.error
    assert texts == [f"failed: {record.error}"]


def test_a_shutdown_mid_run_runs_no_finally_and_the_resume_runs_it_once(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="done")])
    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(200, {"title": "t"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        holder: list[LocalEngine] = []

        def sink(kind: str, data: dict[str, Any]) -> None:
            if kind == "tool.result" and data.get("step") == "setup.0.fetch_ticket" and not data["replayed"]:
                holder[0].stopping = True  # the server shuts down: the run stops before its next step

        engine = engine_at(tmp_path, sink)
        holder.append(engine)
        spec = network(llm, api, setup=[{"tool": "fetch_ticket", "args": {"id": "T1"}}], **{"finally": NOTIFY})
        stopped = asyncio.run(engine.start(NetworkSpec.model_validate(spec), tmp_path, input="T1"))
        before = notified(api)
        engine.stopping = False
        resumed = asyncio.run(engine.resume(stopped.id))
        after = notified(api)
    assert stopped.status == "running" and before == []  # not ended: no finally
    assert resumed.status == "completed", resumed.error
    assert after == ["completed: None"]


def test_a_send_completed_event_that_cannot_render_is_the_outcome_finally_sees(tmp_path: Path, llm: FakeLLM) -> None:
    llm.set_script([Reply(text="done")])
    with FakeHttpServer() as api:
        api.script("/notify", HttpReply(200, {"ok": True}))
        send = {
            "completed": [{"event": "app/done", "data": {"n": "{{ 1 / 0 }}"}}],
            "failed": [{"event": "app/failed", "data": {"why": "{{ outcome.error }}"}}],
        }
        spec = network(llm, api, send=send, **{"finally": NOTIFY})
        sent: list[str] = []
        engine = engine_at(tmp_path)
        engine.on_event = lambda name, data, **kw: sent.append(name)
        record = asyncio.run(engine.start(NetworkSpec.model_validate(spec), tmp_path, input="T1"))
        texts = notified(api)
    assert record.status == "failed" and record.error.startswith("send.completed[0].data: ")
    assert sent == ["app/failed"]
    assert texts == [f"failed: {record.error}"]  # not "completed": both say what the run's end was


def test_a_failed_run_that_ran_finally_retries_its_failed_step_and_runs_finally_again(tmp_path: Path, llm: FakeLLM) -> None:
    """Regression: a retry forgot only the newest step when it was an error; with ``finally:``
    steps recorded after the failure, the failed inference stayed memoized and the retry
    failed again at once without asking the model."""
    llm.set_script([Reply(status=401, error="invalid api key")])
    with FakeHttpServer() as api:
        api.script("/notify", HttpReply(200, {"ok": True}))
        engine = engine_at(tmp_path)
        spec = NetworkSpec.model_validate(network(llm, api, **{"finally": NOTIFY}))

        async def scenario() -> Any:
            failed = await engine.start(spec, tmp_path, input="T1")
            llm.set_script([Reply(text="fixed now")])  # the cause is fixed
            return failed, await engine.retry(failed.id)

        failed, retried = asyncio.run(scenario())
        texts = notified(api)
    assert failed.status == "failed", failed
    assert retried.status == "completed", retried.error
    assert retried.result is not None and retried.result["output"] == "fixed now"
    assert len(texts) == 2 and texts[0].startswith("failed: ") and texts[1] == "completed: None"


TERMINAL = ("run.completed", "run.failed", "run.cancelled")


def test_a_cancel_during_the_last_step_cancels_the_run_runs_finally_once_and_ends_it_once(tmp_path: Path, llm: FakeLLM) -> None:
    """Regression: the loop completed with the cancel landed during its last step; sending
    ``send.completed`` refused the step (RunCancelled) and the run failed as an internal error
    while the journal said cancelled, with no finally: and both run.cancelled and run.failed."""
    llm.set_script([Reply(text="done")])
    with FakeHttpServer() as api:
        api.script("/notify", HttpReply(200, {"ok": True}))
        send = {"completed": [{"event": "app/done", "data": {"n": "1"}}], "failed": [{"event": "app/failed", "data": {}}]}
        spec = network(llm, api, send=send, **{"finally": NOTIFY})
        holder: list[LocalEngine] = []
        seen: list[tuple[str, dict[str, Any]]] = []

        def sink(kind: str, data: dict[str, Any]) -> None:
            seen.append((kind, data))
            if kind == "agent.finished":  # the last step has finished; the loop has not ended yet
                holder[0].cancel(data["run_id"], "cancelled late")

        engine = engine_at(tmp_path, sink)
        holder.append(engine)
        sent: list[str] = []
        engine.on_event = lambda name, data, **kw: sent.append(name)
        record = asyncio.run(engine.start(NetworkSpec.model_validate(spec), tmp_path, input="T1"))
        texts = notified(api)
    assert record.status == "cancelled" and record.error == "cancelled late"
    assert texts == ["cancelled: cancelled late"]
    assert sent == []  # a cancelled run sends neither its completed nor its failed events
    kinds = [k for k, _ in seen]
    assert [k for k in kinds if k in TERMINAL] == ["run.cancelled"]
    assert kinds[-1] == "run.cancelled"  # after the finally: step's events
    stored = Journal(tmp_path / "runs.db")
    assert stored.run(record.id).status == "cancelled"  # type: ignore[union-attr]
    assert CANCEL_FINISHED in stored.step_ids(record.id)


def test_a_cancel_during_a_step_that_fails_the_run_cancels_it(tmp_path: Path, llm: FakeLLM) -> None:
    """Regression: the failed run's ``send.failed`` refused its step and RunCancelled escaped execute."""
    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(500, {"error": "down"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        setup = [{"tool": "fetch_ticket", "args": {"id": "T1"}, "non_retriable": True}]
        spec = network(llm, api, setup=setup, send={"failed": [{"event": "app/failed", "data": {"why": "{{ outcome.error }}"}}]})
        spec["finally"] = NOTIFY
        holder: list[LocalEngine] = []
        kinds: list[str] = []

        def sink(kind: str, data: dict[str, Any]) -> None:
            kinds.append(kind)
            if kind == "tool.result" and data.get("step") == "setup.0.fetch_ticket":  # its error fails the run next
                holder[0].cancel(data["run_id"], "cancelled while failing")

        engine = engine_at(tmp_path, sink)
        holder.append(engine)
        sent: list[str] = []
        engine.on_event = lambda name, data, **kw: sent.append(name)
        record = asyncio.run(engine.start(NetworkSpec.model_validate(spec), tmp_path, input="T1"))
        texts = notified(api)
    assert record.status == "cancelled" and record.error == "cancelled while failing"
    assert texts == ["cancelled: cancelled while failing"]
    assert sent == []
    assert [k for k in kinds if k in TERMINAL] == ["run.cancelled"]


def test_a_cancelled_runs_finally_interrupted_by_a_shutdown_runs_once_it_can(tmp_path: Path, llm: FakeLLM) -> None:
    """Regression: the executing run was dropped from the cancelled ones and nothing ran its
    finally: later. The engine schedules it (here it runs once the engine no longer stops)."""
    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(200, {"title": "t"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        holder: list[LocalEngine] = []
        kinds: list[str] = []

        def sink(kind: str, data: dict[str, Any]) -> None:
            kinds.append(kind)
            if kind == "tool.result" and data.get("step") == "setup.0.fetch_ticket" and not data["replayed"]:
                holder[0].cancel(data["run_id"], "cancelled at shutdown")
                holder[0].stopping = True  # and the server shuts down: finally: cannot start

        engine = engine_at(tmp_path, sink)
        holder.append(engine)
        spec = network(llm, api, setup=[{"tool": "fetch_ticket", "args": {"id": "T1"}}], **{"finally": NOTIFY})

        async def scenario() -> Any:
            stopped = await engine.start(NetworkSpec.model_validate(spec), tmp_path, input="T1")
            before = (notified(api), [k for k in kinds if k in TERMINAL])
            engine.stopping = False
            await asyncio.wait_for(asyncio.gather(*engine._finishing), 30)
            return stopped, before

        stopped, (texts_before, terminal_before) = asyncio.run(scenario())
        texts = notified(api)
    assert texts_before == [] and terminal_before == []  # not ended yet: no finally, no end event
    assert texts == ["cancelled: cancelled at shutdown"]
    assert [k for k in kinds if k in TERMINAL] == ["run.cancelled"]
    assert CANCEL_FINISHED in Journal(tmp_path / "runs.db").step_ids(stopped.id)


def test_start_up_recovery_runs_the_finally_of_a_cancelled_run_a_shutdown_interrupted(tmp_path: Path, llm: FakeLLM) -> None:
    """Regression: start-up resumed only running/queued/waiting runs, so a cancelled run whose
    finally: a shutdown interrupted (the server then gone) never ran it."""
    from netrun.serve.catalog import Catalog
    from netrun.serve.local_runs import LocalRuns

    with FakeHttpServer() as api:
        api.script("/tickets/T1", HttpReply(200, {"title": "t"}))
        api.script("/notify", HttpReply(200, {"ok": True}))
        holder: list[LocalEngine] = []

        def sink(kind: str, data: dict[str, Any]) -> None:
            if kind == "tool.result" and data.get("step") == "setup.0.fetch_ticket" and not data["replayed"]:
                holder[0].cancel(data["run_id"], "cancelled at shutdown")
                holder[0].stopping = True

        first = engine_at(tmp_path, sink)
        holder.append(first)
        spec = network(llm, api, setup=[{"tool": "fetch_ticket", "args": {"id": "T1"}}], **{"finally": NOTIFY})
        plain = network(llm, api, name="plain")  # cancelled with no finally: nothing to recover

        async def shut_down() -> Any:
            stopped = await first.start(NetworkSpec.model_validate(spec), tmp_path, input="T1")
            other = first.create(NetworkSpec.model_validate(plain), tmp_path, input="T2", status="queued")
            first.cancel(other.id, "never started")
            return stopped

        stopped = asyncio.run(shut_down())  # the process ends with the finishing task never run
        assert notified(api) == []
        kinds: list[str] = []
        restarted = engine_at(tmp_path, lambda kind, data: kinds.append(kind))

        async def start_up() -> list[str]:
            runs = LocalRuns(restarted, Catalog(()))
            recovered = runs.open()
            await asyncio.wait_for(asyncio.gather(*runs._tasks), 30)
            await runs.close(drain=0)
            return recovered

        recovered = asyncio.run(start_up())
        texts = notified(api)
    assert recovered == [stopped.id]
    assert texts == ["cancelled: cancelled at shutdown"]
    assert [k for k in kinds if k in TERMINAL] == ["run.cancelled"]


def test_a_cancelled_runs_end_event_follows_its_finally_steps(tmp_path: Path, llm: FakeLLM) -> None:
    """Regression: run.cancelled (the stream's end) went out at the cancel, before the finally:
    steps' tool.called/tool.result; a run with no finally: still ends at the cancel."""
    with FakeHttpServer() as api:
        api.script("/notify", HttpReply(200, {"ok": True}))
        seen: list[tuple[str, dict[str, Any]]] = []
        engine = engine_at(tmp_path, lambda kind, data: seen.append((kind, data)))
        spec = NetworkSpec.model_validate(holding(llm, api))
        bare = holding(llm, api, name="bare")
        del bare["finally"]

        async def scenario() -> Any:
            record = await engine.start(spec, tmp_path, input="T1")
            other = await engine.start(NetworkSpec.model_validate(bare), tmp_path, input="T2")
            engine.cancel(other.id, "no cleanup")
            ended_at_once = [k for k, d in seen if d.get("run_id") == other.id][-1]
            engine.cancel(record.id, "stopped")
            not_yet = [k for k, d in seen if d.get("run_id") == record.id and k in TERMINAL]
            await asyncio.wait_for(asyncio.gather(*engine._finishing), 30)
            return record.id, ended_at_once, not_yet

        run_id, ended_at_once, not_yet = asyncio.run(scenario())
    assert ended_at_once == "run.cancelled"
    assert not_yet == []
    mine = [k for k, d in seen if d.get("run_id") == run_id]
    assert mine.count("run.cancelled") == 1 and mine[-1] == "run.cancelled"
    assert mine.index("tool.result", mine.index("tool.called", mine.index("run.waiting"))) < mine.index("run.cancelled")
