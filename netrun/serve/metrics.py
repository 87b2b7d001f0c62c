"""The Prometheus metrics of one ``netrun serve`` process, served at ``GET /metrics``
(:mod:`netrun.serve.routes.metrics`) in the text format ``prometheus_client`` writes.

Three sources, each read where it is right:

- the run events :meth:`Server.emit <netrun.serve.app.Server.emit>` sees (both engines):
  runs started and ended, by network and status. Replayed events count nothing; a start
  reported again (each Inngest call of a run reports it, and a restarted server sees it
  again) counts once, as the journal's stream has it; an end counts once per execution;
- the work the runtime marks (:mod:`netrun.observe`, only work done now, never a step
  re-read from the journal): inference latency, tokens, cost and errors by model, tool calls,
  errors and latency by tool;
- the journal and the local engine, read at scrape time (:mod:`.metrics_gauges`):
  unfinished runs by status (in flight, queued, parked waiting for an event), steps
  waiting for a concurrency slot, approvals waiting for a human, runs held back by a full disk.

Each server has its own ``CollectorRegistry`` (never ``prometheus_client``'s global one), so
two servers in one process (tests) keep apart; observers are process-wide, so the one here
counts only work done in its server's event loop.

Label values come from the definitions (network, model and tool names, tool kinds), never
from untrusted text: a tool the model invents is refused before any tool runs, so it never
reaches a span. Each label still keeps at most :data:`LABEL_VALUES` distinct values (past
that, and for anything that is not a short string, ``other``), so no input can grow the
number of series without bound.

This module imports ``prometheus_client``; the server imports it only when metrics are on
and the library is installed (the ``metrics`` extra). ``validate`` and ``run`` never do.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from .. import observe as marks
from ..engines.concurrency import ConcurrencyGate
from ..engines.journal import Journal
from ..engines.journal_counts import start_reported
from ..errors import RetryStep
from ..runtime import events
from ..spec.tools import TOOL_KINDS
from .metrics_gauges import Sampled

log = logging.getLogger("netrun.serve")

INFERENCE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
"""Seconds: a model call takes from a tenth of a second (a cached, short answer) to minutes."""

TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: a state tool takes microseconds, an HTTP or MCP call up to its timeout."""

LABEL_VALUES = 500
"""Distinct values one label keeps; past them a value is counted as ``other``."""

OTHER = "other"

KEEP_RUNS = 10_000
"""Runs whose start and end this process remembers (to count each once)."""

ENDS = {events.RUN_COMPLETED: "completed", events.RUN_FAILED: "failed", events.RUN_CANCELLED: "cancelled"}


class _Bounded:
    """One label's values: those seen so far, at most ``limit`` of them, else ``other``."""

    def __init__(self, limit: int = LABEL_VALUES) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: object) -> str:
        if not isinstance(value, str) or not value or len(value) > 200:
            return OTHER
        if value not in self.seen:
            if len(self.seen) >= self.limit:
                return OTHER
            self.seen.add(value)
        return value


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0.0


class Metrics:
    """One server's registry, its counters, and what feeds them.

    ``journal``: the server's run journal; ``networks()``: the names served now (their
    series show from the first scrape, at 0); ``gate``: the local engine's concurrency
    gate (None: none); ``stalled()``: how many runs a full disk holds back."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        journal: Journal,
        networks: Callable[[], Iterable[str]],
        gate: ConcurrencyGate | None = None,
        stalled: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.journal = journal
        self.networks = networks
        self.network, self.model, self.tool = _Bounded(), _Bounded(), _Bounded()
        r = self.registry
        self.runs_started = Counter("netrun_runs_started", "Runs started, by network.", ["network"], registry=r)
        self.runs_ended = Counter(
            "netrun_runs_ended",
            "Runs ended, by network and status (completed, failed, cancelled).",
            ["network", "status"],
            registry=r,
        )
        self.inference_seconds = Histogram(
            "netrun_inference_seconds",
            "Model calls that answered, by model: seconds.",
            ["model"],
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "netrun_inference_tokens",
            "Tokens of model calls, by network, model and kind (prompt, completion).",
            ["network", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "netrun_inference_cost_usd",
            "Cost of model calls in US dollars, by network and model.",
            ["network", "model"],
            registry=r,
        )
        self.inference_errors = Counter(
            "netrun_inference_errors",
            "Model calls that failed (each attempt), by network and model.",
            ["network", "model"],
            registry=r,
        )
        self.tool_calls = Counter(
            "netrun_tool_calls", "Tool calls made, by network, tool and kind.", ["network", "tool", "kind"], registry=r
        )
        self.tool_errors = Counter(
            "netrun_tool_errors", "Tool calls that failed, by network, tool and kind.", ["network", "tool", "kind"], registry=r
        )
        self.tool_seconds = Histogram(
            "netrun_tool_seconds",
            "Tool calls that returned, by network, tool and kind: seconds.",
            ["network", "tool", "kind"],
            buckets=TOOL_BUCKETS,
            registry=r,
        )
        r.register(Sampled(self, gate, stalled))
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=r)
        self._started: OrderedDict[str, str] = OrderedDict()
        """Runs whose start was counted: run id -> its network label."""
        self._ended: OrderedDict[str, None] = OrderedDict()
        """Runs whose end was counted and which have not executed since."""
        self._watcher: _Watcher | None = None
        self._children: dict[tuple[Any, ...], Any] = {}
        """(metric, label values) -> its child: ``labels()`` costs more than a model call's
        other bookkeeping, and the same few children are counted over and over."""

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        """Count the work done in the running event loop (the server's) from now on."""
        self._watcher = _Watcher(self, asyncio.get_running_loop())
        marks.install(self._watcher)

    def close(self) -> None:
        if self._watcher is not None:
            marks.uninstall(self._watcher)
            self._watcher = None

    def render(self) -> bytes:
        """The metrics now, in the Prometheus text format (``content_type``)."""
        for name in self.networks():  # a served network's runs show at 0 before its first run
            network = self.network(name)
            self.runs_started.labels(network)
            for status in ENDS.values():
                self.runs_ended.labels(network, status)
        return generate_latest(self.registry)

    def _of(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- run events (Server.emit) ----------------------------------------------------------
    def observe(self, kind: str, data: Mapping[str, Any]) -> None:
        """Count a run event: called for every event, before the streams see it."""
        if data.get("replayed"):
            return
        try:
            self._count(kind, data)
        except Exception as exc:  # counting never fails a run
            log.warning("could not count %s in the metrics: %s", kind, type(exc).__name__)

    def _count(self, kind: str, data: Mapping[str, Any]) -> None:
        run_id = str(data.get("run_id") or "")
        if kind == events.RUN_STARTED:
            if run_id in self._started:
                return
            network = self.network(data.get("network"))
            _remember(self._started, run_id, network)
            if not self._reported(run_id):
                self.runs_started.labels(network).inc()
        elif kind in ENDS:
            if run_id in self._ended:  # the same end reported twice (an Inngest call repeated)
                return
            _remember(self._ended, run_id, None)
            self.runs_ended.labels(self._network_of(run_id), ENDS[kind]).inc()
        elif run_id in self._ended:  # work done again after its end (a failed run retried): its next end counts
            del self._ended[run_id]

    def _reported(self, run_id: str) -> bool:
        try:
            return start_reported(self.journal, run_id)
        except sqlite3.Error:  # counted, rather than lost: the journal's fault is reported where it matters
            return False

    def _network_of(self, run_id: str) -> str:
        known = self._started.get(run_id)
        if known is not None:
            return known
        try:  # a run started before this process (a restart): its network as the journal has it
            row = self.journal.db.execute("SELECT network FROM runs WHERE id = ?", (run_id,)).fetchone()
        except sqlite3.Error:
            row = None
        return self.network(row[0] if row is not None else None)

    # -- marked work (netrun.observe) ------------------------------------------------------
    def chat(self, span: marks.Span) -> None:
        a = span.attributes
        network, model = self.network(a.get("network")), self.model(a.get("model"))
        completion = a.get("completion")
        if span.error is not None or (completion is None and isinstance(span.exception, Exception)):
            self._of(self.inference_errors, network, model).inc()
            return
        if not isinstance(completion, Mapping):  # cancelled (the server stopping): no answer, no error
            return
        self._of(self.inference_seconds, model).observe(span.seconds)
        usage = completion.get("usage")
        if isinstance(usage, Mapping):
            for kind in ("prompt", "completion"):
                tokens = _number(usage.get(kind))
                if tokens:
                    self._of(self.tokens, network, model, kind).inc(tokens)
        cost = _number(completion.get("cost"))
        if cost:
            self._of(self.cost, network, model).inc(cost)

    def tool_call(self, span: marks.Span) -> None:
        a = span.attributes
        kind = str(a.get("kind")) if a.get("kind") in _KINDS else OTHER
        if span.exception is not None and not isinstance(span.exception, RetryStep):
            return  # the run parked (a wait, a child run): the execution that resumes it returns the call's outcome
        labels = (self.network(a.get("network")), self.tool(a.get("tool")), kind)
        self._of(self.tool_calls, *labels).inc()
        if span.error is not None or span.exception is not None:
            self._of(self.tool_errors, *labels).inc()
        else:
            self._of(self.tool_seconds, *labels).observe(span.seconds)


_KINDS = frozenset({*TOOL_KINDS, "mcp"})
"""The tool kinds as the YAML names them (the ``tool`` span's ``kind``; MCP tools are
``mcp``); a tool given to the Python API as an object counts as ``other``. Wrappers (an
approval around a tool) are not marked: the call they make is."""


def _remember(kept: OrderedDict[str, Any], key: str, value: Any) -> None:
    kept[key] = value
    kept.move_to_end(key)
    while len(kept) > KEEP_RUNS:
        kept.popitem(last=False)


class _Watcher:
    """The :class:`netrun.observe.Observer` of one server: counts the inference and tool
    spans that start in its event loop (observers are process-wide; servers are not)."""

    def __init__(self, metrics: Metrics, loop: asyncio.AbstractEventLoop) -> None:
        self.metrics = metrics
        self.loop = loop

    def start(self, span: marks.Span) -> bool:
        if span.kind not in ("chat", "tool"):
            return False
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def end(self, span: marks.Span, handle: Any) -> None:
        if not handle:
            return
        try:
            if span.kind == "chat":
                self.metrics.chat(span)
            else:
                self.metrics.tool_call(span)
        except Exception as exc:  # counting never fails a model or tool call
            log.warning("could not count a %s in the metrics: %s", span.kind, type(exc).__name__)

    def event(self, name: str, attributes: Mapping[str, Any]) -> None:
        pass

    def inject(self, headers: MutableMapping[str, str]) -> None:
        pass

    def carrier(self) -> dict[str, str]:
        return {}


__all__ = ["INFERENCE_BUCKETS", "LABEL_VALUES", "OTHER", "TOOL_BUCKETS", "Metrics"]
