"""The metrics read at scrape time (:mod:`netrun.serve.metrics` registers them): the
journal's unfinished runs by network and status, the approvals waiting for a human, the
local engine's queue for concurrency slots, the runs a full disk holds back.

They are counted when asked, from the journal (:mod:`netrun.engines.journal_counts`), not
kept as counters: after a crash or a restart, what the journal says is what is shown.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..engines.concurrency import ConcurrencyGate
from ..engines.journal import Journal
from ..engines.journal_counts import UNFINISHED, approvals_waiting, unfinished_runs

log = logging.getLogger("netrun.serve")


class Counted(Protocol):
    """What of :class:`netrun.serve.metrics.Metrics` the gauges read."""

    journal: Journal

    def networks(self) -> Iterable[str]: ...
    def network(self, value: object) -> str: ...


class Sampled(Collector):
    """What is read at scrape time: the journal's unfinished runs and waiting approvals,
    the local engine's queue for concurrency slots, the runs a full disk holds back."""

    def __init__(self, metrics: Counted, gate: ConcurrencyGate | None, stalled: Callable[[], int]) -> None:
        self.metrics = metrics
        self.gate = gate
        self.stalled = stalled

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        served = [m.network(n) for n in m.networks()]
        try:
            runs, approvals = unfinished_runs(m.journal), approvals_waiting(m.journal)
        except sqlite3.Error as exc:  # the other metrics still answer
            log.warning("metrics: cannot read the run journal: %s", exc)
        else:
            flight = GaugeMetricFamily(
                "netrun_runs_in_flight",
                "Runs not ended, by network and status: queued (not started, or its first step waits for a "
                "concurrency slot), running, waiting (parked until an event or an approval).",
                labels=["network", "status"],
            )
            totals: dict[tuple[str, str], int] = {(n, s): 0 for n in served for s in UNFINISHED}
            for (network, status), count in runs.items():
                key = (m.network(network), status)
                totals[key] = totals.get(key, 0) + count
            for (network, status), count in sorted(totals.items()):
                flight.add_metric([network, status], count)
            yield flight
            waiting = GaugeMetricFamily(
                "netrun_approvals_waiting", "Tool calls waiting for a human's approval, by network.", labels=["network"]
            )
            by_network: dict[str, int] = dict.fromkeys(served, 0)
            for network, count in approvals.items():
                by_network[m.network(network)] = by_network.get(m.network(network), 0) + count
            for network, count in sorted(by_network.items()):
                waiting.add_metric([network], count)
            yield waiting
        yield GaugeMetricFamily(
            "netrun_steps_queued",
            "Steps of the local engine waiting for a concurrency slot (function.concurrency).",
            value=self.gate.queued if self.gate is not None else 0,
        )
        yield GaugeMetricFamily(
            "netrun_runs_stalled", "Runs held back because the run journal cannot be written (a full disk).", value=self.stalled()
        )

    def describe(self) -> Iterator[Metric]:
        return iter(())  # sampled at each scrape: nothing to check against other collectors' names


__all__ = ["Sampled"]
