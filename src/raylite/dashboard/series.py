"""The metrics page's plots: the last hour of every series the sampler sees, bounded.

    sampler thread (server.py), every `interval` s:
        Reader.state(nodes, objects, workers, actors) + Reader.task_summary() ─► cluster_values()
        Reader.metrics() ─► user_values(series)          {key: value} of each user series
          ─► SeriesHistory.add(now, values)
    metrics page: SeriesHistory.points(key, now) ─► history.line_svg ─► <svg>

Memory is fixed by the bounds, not by uptime: one ring of sample times and, per series,
one array of doubles as long as it (an hour at 5 s: 721 slots, 5.8 KB); at most
`max_series` series are kept (later ones are counted in `refused`, and the page says
so), and a series not seen for a whole window is forgotten. Pure: no clock, no I/O.
"""
from __future__ import annotations

import math
from array import array

from .history import WINDOW_S

MAX_SERIES = 200
NAN = math.nan
PENDING = ("PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT",
           "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY")
# (key, title, unit) of the cluster's own series, in the page's order
CLUSTER = (("tasks_running", "tasks running", ""), ("tasks_pending", "tasks pending", ""),
           ("tasks_finished", "tasks finished (kept)", ""), ("tasks_failed", "tasks failed (kept)", ""),
           ("cpu_used", "CPUs in use", ""), ("workers", "worker processes", ""),
           ("actors_alive", "actors alive", ""), ("store_bytes", "object store (shared memory)", "B"),
           ("spilled_bytes", "objects spilled to disk", "B"), ("objects", "objects in the store", ""))


class SeriesHistory:
    def __init__(self, interval: float, window: float = WINDOW_S, max_series: int = MAX_SERIES):
        if interval <= 0:
            raise ValueError(f"the sampling interval must be > 0 s, got {interval}")
        self.interval, self.window, self.max_series = interval, window, max_series
        self.cap = max(2, int(window / interval) + 1)
        self._t = array("d", [NAN]) * self.cap
        self._slot = 0
        self._values: dict[str, array] = {}
        self._seen: dict[str, float] = {}
        self.refused: set = set()  # keys not kept (over max_series), for the page to say

    def add(self, now: float, values: dict) -> None:
        slot = self._slot
        self._t[slot] = now
        for key, arr in self._values.items():
            arr[slot] = NAN
        for key, value in values.items():
            arr = self._values.get(key)
            if arr is None:
                if len(self._values) >= self.max_series:
                    if len(self.refused) < self.max_series:
                        self.refused.add(key)
                    continue
                arr = self._values[key] = array("d", [NAN]) * self.cap
            arr[slot] = value
            self._seen[key] = now
        for key in [k for k, t in self._seen.items() if now - t > self.window]:
            del self._values[key], self._seen[key]
        self._slot = (slot + 1) % self.cap

    def __len__(self) -> int:
        return len(self._values)

    def points(self, key: str, now: float) -> list[tuple[float, float]]:
        """[(age in s, value)] of `key` within the window, oldest first."""
        arr = self._values.get(key)
        if arr is None:
            return []
        out = []
        for i in range(self.cap):
            j = (self._slot + i) % self.cap
            t, v = self._t[j], arr[j]
            if not math.isnan(v) and now - t <= self.window:
                out.append((now - t, v))
        return out


def cluster_values(snap, summary_rows) -> dict:
    """The cluster's own values of one sample: from a snapshot of nodes, objects, workers
    and actors, and the task store's summary rows ((name, type, state, count), ...)."""
    by_state: dict = {}
    for row in summary_rows:
        by_state[row[2]] = by_state.get(row[2], 0) + row[3]
    cpu_total = cpu_free = 0.0
    for n in snap.nodes:
        if n.alive:
            total = n.resources_total.get("CPU", 0.0)
            cpu_total += total
            cpu_free += n.resources_available.get("CPU", total)
    objects = [o for o in snap.objects if o.state in ("SHARED_MEMORY", "SPILLED")]
    return {"tasks_running": by_state.get("RUNNING", 0),
            "tasks_pending": sum(by_state.get(s, 0) for s in PENDING),
            "tasks_finished": by_state.get("FINISHED", 0),
            "tasks_failed": by_state.get("FAILED", 0),
            "cpu_used": max(cpu_total - cpu_free, 0.0),
            "workers": sum(1 for w in snap.workers if w.state != "DEAD"),
            "actors_alive": sum(1 for a in snap.actors if a.state == "ALIVE"),
            "store_bytes": sum(o.size or 0 for o in objects if o.state == "SHARED_MEMORY"),
            "spilled_bytes": sum(o.size or 0 for o in objects if o.state == "SPILLED"),
            "objects": len(objects)}


def key_of(series) -> str:
    """A user series' key: its name and tags, as Prometheus writes them."""
    tags = ",".join(f"{k}={v}" for k, v in series.tags)
    return f"user:{series.name}{{{tags}}}" if tags else f"user:{series.name}"


def user_values(series: tuple) -> dict:
    """{key: value}: a counter's total, a gauge's value, a histogram's count of observations."""
    return {key_of(s): float(s.count if s.kind == "histogram" else s.value) for s in series}
