"""The GCS's metrics table: every user metric's totals, per series. Pure.

    ReportMetrics(series, dropped) from any driver or worker, through its node daemon
        ─► MetricsTable.report: each delta combined into its series (_core/metrics.py):
           counters and histograms summed, a gauge's last report kept
    GetMetrics ─► MetricsTable.snapshot(): the series, sorted by (name, tags)

Bounded: at most `max_series` series are kept; a report of a new series beyond that is
dropped and counted, as is a report whose kind or histogram boundaries differ from the
series of that name already kept (two processes defining one name two ways). What
processes dropped before sending (their own bound) is added to the same count, so
`raylite status --metrics` can say that something is missing.
"""
from __future__ import annotations

from .._core.metrics import MetricSeries, combine, compatible

MAX_SERIES = 10_000


class MetricsTable:
    def __init__(self, max_series: int = MAX_SERIES):
        self.max_series = max_series
        self._series: dict[tuple, MetricSeries] = {}   # (name, tags) -> totals
        self._first: dict[str, MetricSeries] = {}      # name -> the first series of that name
        self.dropped = 0

    def report(self, series: tuple, dropped: int = 0) -> None:
        self.dropped += dropped
        for s in series:
            first = self._first.get(s.name)
            if first is not None and not compatible(first, s):
                self.dropped += 1
                continue
            key = (s.name, s.tags)
            kept = self._series.get(key)
            if kept is None:
                if len(self._series) >= self.max_series:
                    self.dropped += 1
                    continue
                if first is None:
                    self._first[s.name] = s
            self._series[key] = combine(kept, s)

    def snapshot(self) -> tuple:
        return tuple(self._series[k] for k in sorted(self._series))

    def statistics(self) -> dict:
        return {"series": len(self._series), "names": len(self._first), "dropped": self.dropped}
