"""Running test cases on the local engine: scripted replies, stubbed tools, events.

Each case is a real run of the network (the same loop, steps and journal as
``netrun run``, in a scratch journal): only the model (scripted replies) and the stubbed
tools are stand-ins. Cases run concurrently; each one's model and stubs are its own.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engines.approvals import ApprovalError
from ..engines.local import Journal, RunRecord
from ..engines.runner import EngineError, LocalEngine
from ..finder import find_network
from ..includes import display
from ..models.scripted import load_replies
from ..runtime import step_ids
from ..runtime.approvals import APPROVAL_EVENT, approval_id
from ..runtime.model import ModelError
from ..spec import NetworkSpec
from ..spec.testcase import TestCase
from ..tools.naming import model_name
from .cases import TestFile
from .expect import Failure, check

CONCURRENCY = 8
"""Cases in flight at once (they wait on scripted models; real MCP servers are processes)."""


@dataclass
class CaseResult:
    file: TestFile
    name: str
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    record: RunRecord | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def id(self) -> str:
        return f"{display(self.file.path)}::{self.name}"


def approval_events(network: NetworkSpec) -> set[str]:
    events = {APPROVAL_EVENT}
    for tool in network.tools.values():
        approval = getattr(tool, "approval", None)
        if approval is not None and not isinstance(approval, str) and approval.event:
            events.add(approval.event)
    return events


async def run_cases(files: list[TestFile], environ: Mapping[str, str], select: str | None = None) -> list[CaseResult]:
    """Every case of ``files`` (whose name contains ``select``, if given), in file order."""
    with tempfile.TemporaryDirectory(prefix="netrun-test-") as scratch:
        journal = Journal(Path(scratch) / "runs.db")
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(tf: TestFile, name: str, case: TestCase) -> CaseResult:
            async with limit:
                return await run_case(tf, name, case, journal, environ)

        try:
            work = [
                one(tf, name, case) for tf in files for name, case in tf.spec.cases.items() if select is None or select in name
            ]
            return list(await asyncio.gather(*work))
        finally:
            from ..models import close_clients

            await close_clients()
            journal.close()


async def run_case(tf: TestFile, name: str, case: TestCase, journal: Journal, environ: Mapping[str, str]) -> CaseResult:
    result = CaseResult(tf, name)
    at = ("cases", name)
    started = time.perf_counter()
    try:
        record = await _execute(tf, name, case, journal, environ, result)
    except (EngineError, ModelError) as exc:
        result.failures.append(Failure("run", f"the case could not run: {exc}", at))
    else:
        result.record = record
        if record.status == "waiting":
            waits = [w[2] for w in journal.waits() if w[0] == record.id]
            result.failures.append(
                Failure(
                    "events",
                    f"the run waits for {', '.join(waits) or 'an event'}; the case has no more events to deliver",
                    (*at, "events"),
                )
            )
        else:
            result.failures.extend(check(case.expect, record, at))
    result.seconds = time.perf_counter() - started
    return result


async def _execute(
    tf: TestFile, name: str, case: TestCase, journal: Journal, environ: Mapping[str, str], result: CaseResult
) -> RunRecord:
    at = ("cases", name)
    if case.replay is not None:
        replies = load_replies(tf.path.parent / case.replay)
    else:
        replies = {caller: [_reply(r) for r in script] for caller, script in (case.replies or {}).items()}
    # The replies travel with the run (a resumed run and its child runs read them there).
    options: dict[str, Any] = {"replies": replies, "source": f"{display(tf.path)}::{name}"}
    if case.tools:
        options["stubs"] = {k: v.model_dump() for k, v in case.tools.items()}
    engine = LocalEngine(journal, environ, stream=False, step_retries=0, backoff=0.0, networks=find_network)
    event = case.event.model_dump() if case.event else {}
    record = await engine.start(
        tf.network, tf.network_path.parent.resolve(), input=case.input, state=case.state, event=event, options=options
    )
    approvals = approval_events(tf.network)
    for i, incoming in enumerate(case.events):
        if record.status != "waiting":
            left = len(case.events) - i
            result.failures.append(
                Failure(
                    "events", f"{left} event(s) were not delivered: the run ended before it waited for them", (*at, "events", i)
                )
            )
            break
        data = dict(incoming.data)
        if incoming.name in approvals:
            data.setdefault("run_id", record.id)
            step = data.pop("step", None)
            if isinstance(step, str) and "approval_id" not in data:  # a case names a call by its step (run ids vary)
                data["approval_id"] = approval_id(record.id, step)
        try:
            delivered = await engine.deliver(incoming.name, data, run_id=record.id)
        except ApprovalError as exc:
            result.failures.append(
                Failure("events", f"event {incoming.name} answered no approval: {exc.message}", (*at, "events", i))
            )
            break
        if not delivered:
            waits = [w[2] for w in journal.waits() if w[0] == record.id]
            result.failures.append(
                Failure(
                    "events",
                    f"event {incoming.name} answered none of the run's waits (it waits for {', '.join(waits) or 'nothing'})",
                    (*at, "events", i),
                )
            )
            break
        record = journal.run(record.id) or record
    if case.replies is not None and record.status == "completed":
        calls = model_calls(journal, record.id)
        for caller, script in replies.items():
            used = calls.get(caller, 0)
            if used < len(script):
                result.failures.append(
                    Failure(
                        "replies",
                        f"{len(script) - used} of the {len(script)} replies for {caller} were not used: the run made fewer calls than scripted",
                        (*at, "replies", caller),
                    )
                )
    return record


def _reply(reply: Any) -> dict[str, Any]:
    """A scripted reply as the scripted model reads it; MCP tools may be written server.tool."""
    data: dict[str, Any] = reply.model_dump(exclude_none=True)
    data["tool_calls"] = [{**c, "name": model_name(c["name"])} for c in data.get("tool_calls", [])]
    return data


def model_calls(journal: Journal, run_id: str) -> dict[str, int]:
    """The model calls of a run and its child runs, per caller as replies name them
    (``agent``, ``router``, and ``PREFIX/agent`` for a network used as a tool)."""
    counts: dict[str, int] = {}
    for rid in journal.family(run_id):
        record = journal.run(rid)
        prefix = str(record.options.get("prefix") or "") if record is not None else ""
        for step in journal.step_ids(rid):
            caller = step_ids.model_caller(step)
            if caller is not None:
                counts[prefix + caller] = counts.get(prefix + caller, 0) + 1
    return counts
