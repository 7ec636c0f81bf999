"""This process's pending metric series and progress bars: what its runtime reports next.

    Counter.inc / Gauge.set / Histogram.observe (raylite.util.metrics), any thread
        ─► pending().record(...): one dict update under a lock (no thread, no I/O)
    ClusterRuntime's maintenance thread, every REPORT_S while something is pending,
    a worker's task or actor call that recorded something, as it ends (before its reply)
        ─► pending().drain() ─► ReportMetrics(series, dropped) to the node daemon ─► the GCS
    driver shutdown ─► one last drain

So what a task recorded is on its way to the GCS before its caller gets the result,
even when the worker is killed right after (its driver exits, say), and a task that
records a thousand values sends one report.

Between two reports a counter's series holds its increase and a histogram's the
observations since the last report; a gauge holds its last value and is sent once per
set. In local mode nothing drains, so the series are this process's totals.

Bounded: at most MAX_SERIES series wait here; a new series beyond that is dropped and
counted, and the count travels with the next report. One Pending per process, made on
first use and made again in a forked child (it never reports its parent's values).
"""
from __future__ import annotations

import threading

from .._core.metrics import MetricSeries, observe
from .per_process import PerProcess

REPORT_S = 0.5          # how often pending series are sent, at most
MAX_SERIES = 10_000


class Pending:
    def __init__(self):
        self._lock = threading.Lock()
        self._series: dict[tuple, MetricSeries] = {}
        self.dropped = 0

    def record(self, kind: str, name: str, description: str, tags: tuple, value: float,
               boundaries: tuple = ()) -> None:
        key = (name, tags)
        with self._lock:
            s = self._series.get(key)
            if s is None and len(self._series) >= MAX_SERIES:
                self.dropped += 1
                return
            self._series[key] = observe(s, kind, name, description, tags, value, boundaries)

    def drain(self) -> tuple[tuple, int]:
        """(series, dropped) since the last drain; both emptied."""
        with self._lock:
            if not self._series and not self.dropped:
                return (), 0
            out, dropped = tuple(self._series.values()), self.dropped
            self._series, self.dropped = {}, 0
        return out, dropped

    def snapshot(self) -> tuple:
        """The series as they are (local mode: this process's totals), sorted."""
        with self._lock:
            return tuple(self._series[k] for k in sorted(self._series))

    def __bool__(self) -> bool:
        return bool(self._series) or bool(self.dropped)


_pending = PerProcess(Pending)


def pending() -> Pending:
    return _pending.get()


def has_pending() -> bool:
    """Whether series wait to be sent from this process (a global read when none do)."""
    p = _pending.if_any()
    return p is not None and bool(p)


def pending_if_any() -> Pending | None:
    """This process's Pending when one was made here (the maintenance thread's quick look)."""
    return _pending.if_any()
