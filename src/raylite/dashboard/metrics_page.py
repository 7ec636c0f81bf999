"""The metrics page: the cluster's own metrics and the user's (raylite.util.metrics), each
with a small plot of the last hour.

    /metrics/view[?name=TEXT]
        ─► Reader.metrics(): the user series the GCS holds now (their current values)
        ─► SeriesHistory (series.py, sampled by server.py): the plots
        ─► cards of the cluster's series; a table of the user's, filtered by a part of the
           name (and tags), each row with its kind, tags, value and plot

Prometheus reads the same numbers at /metrics (metrics.py).
"""
from __future__ import annotations

from .history import line_svg, span_of
from .html import esc, filter_form, layout, table
from .reader import ClusterUnavailable
from .series import CLUSTER, key_of

NOTE = ("The cluster's own metrics and those the program reports with raylite.util.metrics "
        "(Counter, Gauge, Histogram), sampled by the dashboard; Prometheus reads the same at "
        "/metrics.")


def _fmt(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 2**20:,.1f} MiB"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def plot(points: list, window: float, width: int, height: int) -> str:
    """A line of `points` [(age, value)] scaled so the largest value is at the top."""
    top = max((v for _, v in points), default=0.0)
    return line_svg([(age, v / top if top > 0 else 0.0) for age, v in points], window,
                    width, height)


def _value(s) -> str:
    if s.kind != "histogram":
        return esc(_fmt(s.value, ""))
    mean = s.value / s.count if s.count else 0.0
    return f"{s.count:,d} observations, sum {esc(_fmt(s.value, ''))}, mean {esc(_fmt(mean, ''))}"


def page(reader, series_history, query: dict, now: float) -> tuple[int, str]:
    try:
        series, dropped = reader.metrics()
    except ClusterUnavailable as e:
        return 503, layout("Metrics", "/metrics/view",
                           f'<p class=error id=unavailable>{esc(e)}</p>')
    h = series_history
    cards = []
    for key, title, unit in CLUSTER:
        pts = h.points(key, now)
        latest = _fmt(pts[-1][1], unit) if pts else "-"
        minutes = span_of(pts, h.window) / 60
        cards.append(f'<div class="card metric-card" id="metric-{key}"><h2>{esc(title)}: '
                     f'<span class=value>{latest}</span></h2>{plot(pts, h.window, 300, 50)}'
                     f'<div class=empty>the last {minutes:.0f} min, peak '
                     f'{_fmt(max((v for _, v in pts), default=0), unit)}</div></div>')
    want = query.get("name", "").lower()
    shown = [s for s in series if want in key_of(s).lower()]
    rows = [[f'<span class=metric-name>{esc(s.name)}</span>', esc(s.kind),
             esc(", ".join(f"{k}={v}" for k, v in s.tags) or "-"), _value(s),
             plot(h.points(key_of(s), now), h.window, 200, 36), esc(s.description)]
            for s in shown]
    notes = []
    if dropped:
        notes.append(f"{dropped} metric reports could not be kept by the cluster.")
    if h.refused:
        notes.append(f"{len(h.refused)} series are not plotted (at most {h.max_series} are).")
    user = (filter_form("/metrics/view", [("name", "name or tag", None)], query)
            + "".join(f"<p class=note>{esc(n)}</p>" for n in notes)
            + table(["metric", "kind", "tags", "value", "the last hour", "description"], rows,
                    "metrics-table", "no metrics match" if series else
                    "no metrics reported yet: raylite.util.metrics.Counter, Gauge and "
                    "Histogram report them from drivers, tasks and actors"))
    body = (f'<h2>Cluster</h2><div class=cards id=cluster-metrics>{"".join(cards)}</div>'
            f'<h2>Your metrics ({len(series)} series)</h2>{user}')
    return 200, layout("Metrics", "/metrics/view", body, note=NOTE)
