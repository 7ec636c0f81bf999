"""The Prometheus endpoint's text: the user's metrics and the cluster's own.

    GET /metrics (Authorization: Bearer <cluster token>, or a dashboard session)
        ─► Reader.metrics(): GetMetrics ─► the GCS's MetricsTable (raylite.util.metrics)
        ─► Reader.state(nodes, workers, actors, jobs, tasks, objects; owners asked)
        ─► exposition(): Prometheus' text format, version 0.0.4

The user's metrics keep the names they were given (a counter is not renamed to
`_total`); a histogram gives `_bucket{le=...}` (cumulative), `_sum` and `_count`. The
cluster's own are prefixed `raylite_`:

    raylite_nodes{state}                         nodes alive and dead
    raylite_node_cpu_total / _used{node_id}      CPUs, as the scheduler accounts them
    raylite_node_memory_total_bytes / _used_bytes{node_id}   the `memory` resource, likewise
    raylite_node_object_store_total_bytes{node_id}
    raylite_node_spilling_bytes / _spilling_copied_bytes{node_id}   spill copies under way
    raylite_node_spilled_objects_total / _bytes_total / raylite_node_spill_failures_total
                                                 {node_id}: spilled since the node started
    raylite_workers{node_id, state}              worker processes by state
    raylite_actors{state}, raylite_drivers       actors by state; drivers connected
    raylite_tasks{state}                         tasks by state (Ray's state names), as the
                                                 records have them (the tasks in flight)
    raylite_objects{state}, raylite_object_bytes{state}   objects, and their bytes, by where
                                                 they are (INLINE, SHARED_MEMORY, SPILLED...)
    raylite_metrics_dropped_total                metric reports that could not be kept
    raylite_owners_missing                       owners that did not answer this scrape

Pure: records in, text out.
"""
from __future__ import annotations

import math

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _labels(pairs) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs) + "}" if pairs else ""


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def _family(out: list, name: str, kind: str, text: str, samples) -> None:
    out.append(f"# HELP {name} {text.replace(chr(10), ' ')}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        out.append(f"{name}{_labels(labels)} {_num(value)}")


def user_metrics(series: tuple) -> list[str]:
    out: list[str] = []
    by_name: dict[str, list] = {}
    for s in series:
        by_name.setdefault(s.name, []).append(s)
    for name, group in by_name.items():
        first = group[0]
        out.append(f"# HELP {name} {(first.description or name).replace(chr(10), ' ')}")
        out.append(f"# TYPE {name} {first.kind}")
        for s in group:
            if s.kind != "histogram":
                out.append(f"{name}{_labels(s.tags)} {_num(s.value)}")
                continue
            seen = 0
            for bound, n in zip(s.boundaries + (math.inf,), s.buckets):
                seen += n
                out.append(f"{name}_bucket{_labels(s.tags + (('le', _num(bound)),))} {seen}")
            out.append(f"{name}_sum{_labels(s.tags)} {_num(s.value)}")
            out.append(f"{name}_count{_labels(s.tags)} {s.count}")
    return out


def _count(items, key) -> dict:
    out: dict = {}
    for x in items:
        k = key(x)
        out[k] = out.get(k, 0) + 1
    return out


def cluster_metrics(snap, missing: tuple, dropped: int) -> list[str]:
    from raylite.util.state.schema import TASK_STATE

    out: list[str] = []
    nodes = sorted(snap.nodes, key=lambda n: n.node_id)
    _family(out, "raylite_nodes", "gauge", "Nodes by state.",
            [((("state", s),), n) for s, n in sorted(
                _count(nodes, lambda n: "ALIVE" if n.alive else "DEAD").items())])
    alive = [n for n in nodes if n.alive]
    for name, resource, text, scale in (
            ("raylite_node_cpu_total", "CPU", "CPUs of a node.", None),
            ("raylite_node_cpu_used", "CPU", "CPUs reserved by tasks and actors.", "used"),
            ("raylite_node_memory_total_bytes", "memory", "The memory resource of a node.", None),
            ("raylite_node_memory_used_bytes", "memory", "Memory reserved by tasks and actors.",
             "used"),
            ("raylite_node_object_store_total_bytes", "object_store_memory",
             "Object store capacity of a node.", None)):
        samples = []
        for n in alive:
            total = n.resources_total.get(resource, 0.0)
            value = total - n.resources_available.get(resource, total) if scale else total
            samples.append(((("node_id", n.node_id),), max(value, 0.0)))
        _family(out, name, "gauge", text, samples)
    spilling = [n for n in alive if n.spill is not None]
    for name, kind, i, text in (
            ("raylite_node_spilling_bytes", "gauge", 1, "Bytes being copied to disk now."),
            ("raylite_node_spilling_copied_bytes", "gauge", 3,
             "Of those, bytes copied already."),
            ("raylite_node_spilled_objects_total", "counter", 4,
             "Objects spilled to disk since the node started."),
            ("raylite_node_spilled_bytes_total", "counter", 5,
             "Bytes spilled to disk since the node started."),
            ("raylite_node_spill_failures_total", "counter", 6, "Spill copies that failed.")):
        _family(out, name, kind, text, [((("node_id", n.node_id),), n.spill[i]) for n in spilling])
    workers = _count([w for w in snap.workers if w.state != "DEAD"], lambda w: (w.node_id, w.state))
    _family(out, "raylite_workers", "gauge", "Worker processes by node and state.",
            [((("node_id", k[0]), ("state", k[1])), n) for k, n in sorted(workers.items())])
    _family(out, "raylite_actors", "gauge", "Actors by state.",
            [((("state", s),), n) for s, n in sorted(_count(snap.actors, lambda a: a.state).items())])
    _family(out, "raylite_drivers", "gauge", "Drivers connected.",
            [((), sum(1 for j in snap.jobs if j.alive))])
    tasks = _count(snap.tasks, lambda t: TASK_STATE.get(t.state, t.state))
    _family(out, "raylite_tasks", "gauge", "Tasks by state.",
            [((("state", s),), n) for s, n in sorted(tasks.items())])
    objects = [o for o in snap.objects if o.state != "BORROWED"]
    _family(out, "raylite_objects", "gauge", "Objects by where their value is.",
            [((("state", s),), n) for s, n in sorted(_count(objects, lambda o: o.state).items())])
    size: dict = {}
    for o in objects:
        size[o.state] = size.get(o.state, 0) + (o.size or 0)
    _family(out, "raylite_object_bytes", "gauge", "Bytes of objects by where they are.",
            [((("state", s),), n) for s, n in sorted(size.items())])
    _family(out, "raylite_metrics_dropped_total", "counter",
            "Metric reports the cluster could not keep.", [((), dropped)])
    _family(out, "raylite_owners_missing", "gauge",
            "Drivers and workers that did not answer this scrape (their tasks and objects are "
            "not counted).", [((), len(missing))])
    return out


def exposition(series: tuple, dropped: int, snap, missing: tuple) -> str:
    return "\n".join(user_metrics(series) + cluster_metrics(snap, missing, dropped)) + "\n"
