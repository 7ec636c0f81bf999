"""The tasks page's timeline view: spans per worker, drawn on the server as one SVG.

    /tasks?view=timeline[&window=S|all][&state=&name=&actor=]
        ─► Reader.tasks(filters + "not pending", 0, 0): how many ran ─► Reader.tasks(the
           last MAX_SPANS of them): only those travel
        ─► _core.trace.trace_events(records, now)   (what raylite.timeline() writes)
        ─► layout_spans(events, now, window) ─► Lane per worker (node, then pid), Span per
           attempt, clipped to the window (the last `window` s; by default from the
           oldest span's start to now)
        ─► svg(lanes, ...) ─► <svg id=timeline>: a row per worker, a <rect class=span> per
           attempt with its ids in data-* attributes and a <title> (the browser's tooltip)

A click on a span (app.js) shows its name, ids, state and duration in #span-detail, and
keeps it across the page's refresh.
layout_spans and svg are pure: events and the time in, text out.
"""
from __future__ import annotations

from typing import NamedTuple

from .html import esc

MAX_SPANS = 1000
NOTE = ("Each attempt that ran, as a span on its worker's row (the data of raylite.timeline(); "
        "the newest 1000 that ran, filtered as the table is). Times are the workers' clocks.")
WINDOWS = (("10", "10 s"), ("60", "1 min"), ("600", "10 min"), ("3600", "1 h"), ("all", "all shown"))
PENDING = ("PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT",
           "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY")
LABEL_W, ROW_H, WIDTH = 210, 22, 1100


class Span(NamedTuple):
    start_us: int
    end_us: int
    name: str
    args: dict


class Lane(NamedTuple):
    label: tuple               # (worker's name, its node's name): the row's text and tooltip
    spans: list


def window_of(query: dict) -> float | None:
    """The window in seconds the query asks for; None (the default, and for anything not a
    number > 0) for everything shown: from the oldest span's start to now."""
    try:
        value = float(query.get("window", "all"))
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def layout_spans(events: list, now_us: int, window: float | None) -> tuple[list, int, int]:
    """(lanes sorted by node then worker, x0 µs, x1 µs) of the trace's complete events that
    overlap the window ending at now_us."""
    names = {}
    for e in events:
        if e["ph"] == "M" and e["name"] in ("process_name", "thread_name"):
            names[(e["pid"], e.get("tid"))] = e["args"]["name"]
    x1 = now_us
    x0 = now_us - int(window * 1e6) if window is not None else min(
        (e["ts"] for e in events if e["ph"] == "X"), default=now_us - 60_000_000)
    lanes: dict = {}
    for e in events:
        if e["ph"] != "X":
            continue
        start, end = e["ts"], e["ts"] + e["dur"]
        if end < x0:
            continue
        key = (e["pid"], e["tid"])
        label = (names.get(key, "worker ?"), names.get((e["pid"], None), "node ?"))
        lanes.setdefault(key, Lane(label, [])).spans.append(
            Span(max(start, x0), min(end, x1), e["name"], e["args"]))
    x1 = max([x1] + [s.end_us for lane in lanes.values() for s in lane.spans])
    return [lanes[k] for k in sorted(lanes)], x0, max(x1, x0 + 1)


def _ticks(x0: int, x1: int, now_us: int) -> str:
    """Five labelled ticks: seconds before now."""
    out = []
    for i in range(5):
        t = x0 + (x1 - x0) * i / 4
        x = LABEL_W + (WIDTH - LABEL_W) * i / 4
        out.append(f'<line x1="{x:.1f}" y1="14" x2="{x:.1f}" y2="100%" class="tl-grid"/>'
                   f'<text x="{min(x, WIDTH - 40):.1f}" y="11" class="tl-tick">'
                   f'{_ago((now_us - t) / 1e6)}</text>')
    return "".join(out)


def _ago(seconds: float) -> str:
    if abs(seconds) < 0.05:
        return "now"
    return f"-{seconds:.1f} s" if seconds < 120 else f"-{seconds / 60:.1f} min"


def svg(lanes: list, x0: int, x1: int, now_us: int) -> str:
    if not lanes:
        return '<p class=empty id="timeline-empty">no task ran in this window</p>'
    height = 18 + ROW_H * len(lanes)
    scale = (WIDTH - LABEL_W) / (x1 - x0)
    rows = []
    for i, lane in enumerate(lanes):
        y = 18 + ROW_H * i
        worker, node = lane.label
        rows.append(f'<text x="4" y="{y + 15}" class="tl-lane"><title>{esc(node)}</title>'
                    f'{esc(worker)}</text>'
                    f'<rect x="{LABEL_W}" y="{y}" width="{WIDTH - LABEL_W}" height="{ROW_H - 2}" '
                    'class="tl-row"/>')
        for s in lane.spans:
            x = LABEL_W + (s.start_us - x0) * scale
            w = max((s.end_us - s.start_us) * scale, 1.0)
            a = s.args
            took = (s.end_us - s.start_us) / 1000
            rows.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{ROW_H - 6}" '
                f'class="span span-{esc(a.get("state", ""))}" data-task="{esc(a.get("task_id", ""))}" '
                f'data-attempt="{esc(a.get("attempt_number", 0))}" data-name="{esc(s.name)}" '
                f'data-state="{esc(a.get("state", ""))}" data-ms="{took:.1f}" '
                f'data-worker="{esc(a.get("worker_id", ""))}" data-error="{esc(a.get("error_type", ""))}">'
                f'<title>{esc(s.name)} · {esc(a.get("state", ""))} · {took:.1f} ms</title></rect>')
    return (f'<svg id=timeline class=timeline width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
            f'{_ticks(x0, x1, now_us)}{"".join(rows)}</svg>')


def window_links(query: dict, chosen: str) -> str:
    import urllib.parse

    links = []
    for value, text in WINDOWS:
        q = urllib.parse.urlencode(dict(query, view="timeline", window=value))
        cls = ' class="page active"' if value == chosen else ' class=page'
        links.append(f'<a href="/tasks?{esc(q)}"{cls} id="window-{value}">{text}</a>')
    return f'<div class=pager id=windows>window: {" ".join(links)}</div>'


def body(reader, query: dict, filters: list, now: float) -> str:
    """The timeline's HTML: the window links, the SVG, the detail panel. ClusterUnavailable
    passes up to the page."""
    from raylite._core.trace import trace_events

    window = window_of(query)
    ran = filters + [("state", "!=", s) for s in PENDING]
    total = reader.tasks(ran, 0, 0).total
    got = reader.tasks(ran, MAX_SPANS, max(total - MAX_SPANS, 0))
    now_us = int(now * 1e6)
    lanes, x0, x1 = layout_spans(trace_events(got.records, now_us), now_us, window)
    spans = sum(len(lane.spans) for lane in lanes)
    more = (f" (the newest {MAX_SPANS} of {total} that ran)" if total > MAX_SPANS else "")
    return (window_links(query, query.get("window", "all"))
            + f'<p id=timeline-summary>{spans} spans on {len(lanes)} workers{more}; click a '
            'span for its details.</p>'
            + svg(lanes, x0, x1, now_us)
            + '<div id=span-detail class=card hidden></div>')
