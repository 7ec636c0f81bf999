"""User metrics, as Ray's `ray.util.metrics`: Counter, Gauge, Histogram, with tags.

    Counter("requests", tag_keys=("route",)).inc(1, tags={"route": "/a"})   in a driver,
    a task or an actor ─► this process's pending series (raylite._runtime.metrics: a dict
    update under a lock) ─► reported by the runtime's maintenance thread every 0.5 s
    ─► the node daemon ─► the GCS, which keeps every series' totals
    ─► `raylite status --metrics`, the head's Prometheus endpoint (--metrics-export-port)

A series is one metric with one set of tag values. Counters and histograms are summed
over every process that records them (a worker that exits keeps its part); a gauge
keeps the last value reported for its tags, from whichever process set it last. In
local mode values stay in the process (there is no cluster to report to).

The checks are Ray's: a valid name, tag keys declared in `tag_keys`, a value for each
declared key (from `tags` or `set_default_tags`), string tag values, `inc` of more than
0, histogram boundaries greater than 0 and increasing. A bad call raises ValueError or
TypeError naming the problem.
"""
from __future__ import annotations

import math
from typing import Any

from .._core import metrics as core
from .._runtime.metrics import pending

__all__ = ["Counter", "Gauge", "Histogram", "Metric"]


class Metric:
    """What the three kinds share: a name, a description, the tag keys and default tags."""

    _kind = ""

    def __init__(self, name: str, description: str = "", tag_keys: tuple | None = None):
        why = core.name_problem(name)
        if why is not None:
            raise ValueError(why)
        if not isinstance(description, str):
            raise TypeError(f"description must be a string, got {type(description).__name__}")
        if tag_keys is None:
            tag_keys = ()
        if not isinstance(tag_keys, (tuple, list)):
            raise TypeError(f"tag_keys must be a tuple of strings, got {type(tag_keys).__name__}")
        for key in tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"tag_keys must be strings, got {key!r}")
            why = core.tag_key_problem(key)
            if why is not None:
                raise ValueError(why)
        if len(set(tag_keys)) != len(tag_keys) or len(tag_keys) > core.MAX_TAGS:
            raise ValueError(f"tag_keys must be distinct, at most {core.MAX_TAGS}: {tag_keys!r}")
        self._name = name
        self._description = description[:core.MAX_TEXT]
        self._tag_keys = tuple(tag_keys)
        self._default_tags: dict[str, str] = {}
        self._default_series: tuple | None = () if not self._tag_keys else None  # sorted pairs

    def set_default_tags(self, default_tags: dict) -> "Metric":
        """Tags used when a call does not give them; returns the metric (Ray's chaining)."""
        self._check_tags(default_tags)
        self._default_tags = dict(default_tags)
        complete = all(k in self._default_tags for k in self._tag_keys)
        self._default_series = tuple(sorted(self._default_tags.items())) if complete else None
        return self

    @property
    def info(self) -> dict:
        return {"name": self._name, "description": self._description,
                "tag_keys": self._tag_keys, "default_tags": dict(self._default_tags)}

    def _check_tags(self, tags: Any) -> None:
        if not isinstance(tags, dict):
            raise TypeError(f"tags must be a dict of tag key -> string, got {type(tags).__name__}")
        for key, value in tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key!r} for metric {self._name!r}: "
                                 f"declare it in tag_keys (now {self._tag_keys!r}).")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str: {key!r} is {value!r} "
                                f"({type(value).__name__}).")
            if len(value) > core.MAX_TEXT:
                raise ValueError(f"tag {key!r}: a value of at most {core.MAX_TEXT} characters")

    def _series_tags(self, tags: dict | None) -> tuple:
        if not tags and self._default_series is not None:
            return self._default_series
        if tags:
            self._check_tags(tags)
            merged = {**self._default_tags, **tags}
        else:
            merged = self._default_tags
        missing = [k for k in self._tag_keys if k not in merged]
        if missing:
            raise ValueError(f"Missing value for tag key(s) {missing} of metric {self._name!r}: "
                             "pass them in tags= or set_default_tags().")
        return tuple(sorted(merged.items()))

    def _record(self, value: Any, tags: dict | None, boundaries: tuple = ()) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise ValueError(f"metric {self._name!r}: the value must be a finite number, "
                             f"got {value!r}")
        pending().record(self._kind, self._name, self._description, self._series_tags(tags),
                         float(value), boundaries)


class Counter(Metric):
    """A total that only grows (requests served, bytes read)."""

    _kind = "counter"

    def inc(self, value: float = 1.0, tags: dict | None = None) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise ValueError(f"Counter {self._name!r}: inc() takes a value > 0, got {value!r}")
        self._record(value, tags)


class Gauge(Metric):
    """A value that goes up and down (queue length, memory in use): the last one set counts."""

    _kind = "gauge"

    def set(self, value: float, tags: dict | None = None) -> None:
        self._record(value, tags)


class Histogram(Metric):
    """How observations spread over buckets (latencies): counts per bucket, sum and count."""

    _kind = "histogram"

    def __init__(self, name: str, description: str = "", boundaries: list | None = None,
                 tag_keys: tuple | None = None):
        super().__init__(name, description, tag_keys)
        why = core.boundaries_problem(boundaries)
        if why is not None:
            raise ValueError(f"Histogram {name!r}: {why}")
        self._boundaries = tuple(float(b) for b in boundaries)

    @property
    def info(self) -> dict:
        return dict(super().info, boundaries=list(self._boundaries))

    def observe(self, value: float, tags: dict | None = None) -> None:
        self._record(value, tags, self._boundaries)
