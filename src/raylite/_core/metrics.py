"""Metric series: the one record user metrics are recorded, sent and kept as. Pure.

    raylite.util.metrics: Counter.inc / Gauge.set / Histogram.observe, in any process
        ─► _runtime/metrics.py: this process's pending series (deltas), per (name, tags)
        ─► drained every REPORT_S by the runtime's maintenance thread (drivers and workers)
        ─► ReportMetrics(series, dropped) ─► its node daemon ─► the GCS's MetricsTable
           (_gcs/metrics.py: totals; counters and histograms summed, a gauge's last value)
    raylite status --metrics, the Prometheus endpoint ◄── GetMetrics ─► MetricsReply

A series is one metric with one set of tag values. `combine` adds a delta to what is
kept, the same rule in the process (observations since the last report) and in the GCS
(every report since the cluster started); `problem` is the check a daemon runs on a
series before it is kept.
"""
from __future__ import annotations

import math
import re
from bisect import bisect_left
from typing import NamedTuple

KINDS = ("counter", "gauge", "histogram")
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")    # Prometheus' metric name rule
TAG_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")   # ... and its label name rule
MAX_TEXT = 1024          # characters in a name, description, tag key or tag value
MAX_TAGS = 32            # tag keys per metric
MAX_BOUNDARIES = 256     # histogram buckets


class MetricSeries(NamedTuple):
    kind: str                # counter | gauge | histogram
    name: str
    description: str
    tags: tuple              # ((key, value), ...) sorted by key
    value: float             # counter: total (a report: its increase); gauge: the last value
                             # set; histogram: the sum of the observations
    count: int = 0           # histogram: how many observations
    boundaries: tuple = ()   # histogram: the buckets' upper bounds, ascending
    buckets: tuple = ()      # histogram: observations per bucket, one more than boundaries
                             # (the last one is +Inf)


def name_problem(name: object) -> str | None:
    if type(name) is not str or not name or len(name) > MAX_TEXT or not NAME.match(name):
        return (f"a metric name must match {NAME.pattern} (letters, digits, '_' and ':', not "
                f"starting with a digit), got {name!r:.80}")
    return None


def tag_key_problem(key: object) -> str | None:
    if type(key) is not str or not key or len(key) > MAX_TEXT or not TAG_KEY.match(key):
        return f"a tag key must match {TAG_KEY.pattern}, got {key!r:.80}"
    return None


def boundaries_problem(boundaries: object) -> str | None:
    if type(boundaries) not in (tuple, list) or not 0 < len(boundaries) <= MAX_BOUNDARIES:
        return (f"boundaries must be a non-empty list of at most {MAX_BOUNDARIES} numbers, "
                f"got {boundaries!r:.80}")
    last = 0.0
    for i, b in enumerate(boundaries):
        if type(b) not in (int, float) or not math.isfinite(b) or b <= last:
            return (f"boundaries must be finite, greater than 0 and strictly increasing; "
                    f"boundaries[{i}] is {b!r:.40}")
        last = b
    return None


def observe(series: MetricSeries | None, kind: str, name: str, description: str, tags: tuple,
            value: float, boundaries: tuple = ()) -> MetricSeries:
    """`series` after one observation (inc, set or observe) of `value`."""
    if kind == "histogram":
        buckets = list(series.buckets) if series is not None else [0] * (len(boundaries) + 1)
        buckets[bisect_left(boundaries, value)] += 1
        if series is None:
            return MetricSeries(kind, name, description, tags, value, 1, boundaries, tuple(buckets))
        return MetricSeries(kind, name, description, tags, series.value + value, series.count + 1,
                            boundaries, tuple(buckets))
    if series is not None and kind == "counter":
        value += series.value
    return MetricSeries(kind, name, description, tags, value)


def combine(kept: MetricSeries | None, delta: MetricSeries) -> MetricSeries:
    """What is kept once `delta` (a report of the same name, kind and tags) is added."""
    if kept is None or delta.kind == "gauge":
        return delta
    if delta.kind == "counter":
        return kept._replace(value=kept.value + delta.value)
    return kept._replace(value=kept.value + delta.value, count=kept.count + delta.count,
                         buckets=tuple(a + b for a, b in zip(kept.buckets, delta.buckets)))


def compatible(kept: MetricSeries, delta: MetricSeries) -> bool:
    """Whether `delta` may be added to the series of the same name: same kind and buckets."""
    return kept.kind == delta.kind and kept.boundaries == delta.boundaries


def problem(s: object) -> str | None:
    """What is wrong with a reported series (a delta), or None."""
    if type(s) is not MetricSeries or len(s) != len(MetricSeries._fields):
        return f"must be a MetricSeries, not {type(s).__name__}"
    if s.kind not in KINDS:
        return f".kind must be one of {KINDS}, not {s.kind!r:.40}"
    why = name_problem(s.name)
    if why is None and (type(s.description) is not str or len(s.description) > MAX_TEXT):
        why = f".description must be a string of at most {MAX_TEXT} characters"
    if why is None:
        why = _tags_problem(s.tags)
    if why is None and (type(s.value) not in (int, float) or not math.isfinite(s.value)):
        why = f".value must be a finite number, not {s.value!r:.40}"
    if why is None and s.kind == "counter" and s.value < 0:
        why = f".value of a counter's report must be >= 0, not {s.value!r:.40}"
    if why is None:
        why = _histogram_problem(s) if s.kind == "histogram" else \
            (None if s.count == 0 and s.boundaries == () and s.buckets == () else
             f"a {s.kind} has no count, boundaries or buckets")
    return why


def _tags_problem(tags: object) -> str | None:
    if type(tags) is not tuple or len(tags) > MAX_TAGS:
        return f".tags must be a tuple of at most {MAX_TAGS} (key, value) pairs"
    for pair in tags:
        if type(pair) is not tuple or len(pair) != 2:
            return ".tags must hold (key, value) pairs"
        why = tag_key_problem(pair[0])
        if why is not None:
            return f".tags: {why}"
        if type(pair[1]) is not str or len(pair[1]) > MAX_TEXT:
            return f".tags: the value of {pair[0]!r} must be a string of at most {MAX_TEXT}"
    if list(tags) != sorted(tags) or len({k for k, _ in tags}) != len(tags):
        return ".tags must be sorted by key, each key once"
    return None


def _histogram_problem(s: MetricSeries) -> str | None:
    why = boundaries_problem(s.boundaries)
    if why is not None or type(s.boundaries) is not tuple:
        return f".boundaries: {why or 'must be a tuple'}"
    if type(s.buckets) is not tuple or len(s.buckets) != len(s.boundaries) + 1 or \
            any(type(b) is not int or b < 0 for b in s.buckets):
        return ".buckets must be a tuple of counts >= 0, one more than the boundaries"
    if type(s.count) is not int or s.count != sum(s.buckets):
        return ".count must be the sum of the buckets"
    return None
