"""The overview's plots: a bounded ring of cluster-wide samples, and the inline SVG that draws it.

    sampler thread (server.py), every `interval` s:
        Reader.state(("nodes", "objects"), owners=False)
          ─► sample_of(snapshot, now) ─► Sample(t, cpu used/total, memory used/total,
                                                 object store used/total)
          ─► History.add(sample)        deque(maxlen=window / interval): the oldest falls out
    overview page: History.series(field, now) ─► sparkline(points) ─► <svg> (no script, no fetch)

Pure: no clock, no I/O; the caller passes the time. The ring holds at most `maxlen`
samples of 7 floats each (an hour at 5 s is 720 samples, ~200 KB), so the dashboard's
memory does not grow with uptime. "memory" is the `memory` resource reserved by tasks
and actors (what the scheduler accounts), not the machine's RSS: the dashboard reads
only the state records. Object store use is the bytes of the store's objects in shared
memory (spilled ones are not in memory).
"""
from __future__ import annotations

from collections import deque
from typing import NamedTuple

WINDOW_S = 3600.0


class Sample(NamedTuple):
    t: float
    cpu_used: float
    cpu_total: float
    mem_used: float
    mem_total: float
    store_used: float
    store_total: float


def _resources(nodes) -> tuple[dict, dict]:
    total: dict = {}
    free: dict = {}
    for n in nodes:
        if not n.alive:
            continue
        for k, v in n.resources_total.items():
            total[k] = total.get(k, 0.0) + v
        for k, v in n.resources_available.items():
            free[k] = free.get(k, 0.0) + v
    return total, free


def used(total: dict, free: dict, name: str) -> float:
    return max(total.get(name, 0.0) - free.get(name, total.get(name, 0.0)), 0.0)


def sample_of(snapshot, now: float) -> Sample:
    """One point of every series, from a snapshot holding nodes and the store's objects."""
    total, free = _resources(snapshot.nodes)
    store = sum(o.size or 0 for o in snapshot.objects if o.state == "SHARED_MEMORY")
    return Sample(now, used(total, free, "CPU"), total.get("CPU", 0.0),
                  used(total, free, "memory"), total.get("memory", 0.0),
                  float(store), total.get("object_store_memory", 0.0))


class History:
    """The last `window` seconds of samples taken every `interval` seconds (bounded)."""

    def __init__(self, interval: float, window: float = WINDOW_S):
        if interval <= 0:
            raise ValueError(f"the sampling interval must be > 0 s, got {interval}")
        self.interval = interval
        self.window = window
        self._ring: deque = deque(maxlen=max(2, int(window / interval) + 1))

    def add(self, sample: Sample) -> None:
        self._ring.append(sample)

    def __len__(self) -> int:
        return len(self._ring)

    def latest(self) -> Sample | None:
        return self._ring[-1] if self._ring else None

    def series(self, used_field: str, total_field: str, now: float) -> list[tuple[float, float, float]]:
        """[(age in s, used, total)] of the samples within the window, oldest first."""
        return [(now - s.t, getattr(s, used_field), getattr(s, total_field))
                for s in list(self._ring) if now - s.t <= self.window]


def span_of(points: list[tuple], window: float = WINDOW_S) -> float:
    """Seconds the x axis spans: the age of the oldest point (each point's first item), at
    least a minute, at most `window` (so a young dashboard's plot fills its width instead of
    a sliver at the right edge)."""
    oldest = max((p[0] for p in points), default=0.0)
    return min(max(oldest, 60.0), window)


def sparkline(points: list[tuple[float, float, float]], window: float = WINDOW_S,
              width: int = 320, height: int = 60) -> str:
    """An inline SVG of used/total (y: 0..100 %) over the last span_of(points) s (right = now)."""
    return line_svg([(age, (u / total) if total > 0 else 0.0) for age, u, total in points],
                    window, width, height)


def line_svg(points: list[tuple[float, float]], window: float = WINDOW_S,
             width: int = 320, height: int = 60) -> str:
    """An inline SVG of (age in s, fraction of the plot's height, clipped to 0..1) over the
    last span_of(points) s (right = now)."""
    head = (f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" xmlns="http://www.w3.org/2000/svg">'
            f'<rect x="0" y="0" width="{width}" height="{height}" class="plot-bg"/>')
    if not points:
        return head + f'<text x="8" y="{height // 2}" class="plot-empty">no samples yet</text></svg>'
    span = span_of(points, window)
    coords = []
    for age, frac in points:
        x = width * (1.0 - min(max(age, 0.0), span) / span)
        y = (height - 3) * (1.0 - min(max(frac, 0.0), 1.0)) + 1.5
        coords.append((x, y))
    if len(coords) == 1:
        coords.append((float(width), coords[0][1]))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    area = f"{coords[0][0]:.1f},{height} {line} {coords[-1][0]:.1f},{height}"
    return head + (f'<polygon class="plot-area" points="{area}"/>'
                   f'<polyline class="plot-line" fill="none" points="{line}"/></svg>')
