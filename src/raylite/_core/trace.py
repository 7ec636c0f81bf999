"""Task records as a Chrome trace (pure): what raylite.timeline() and `raylite timeline` write.

    trace_events(records, now) ─► one process row per node ("node <id> (<ip>)"), one thread
        row per worker in it ("worker <id> (pid N)"): each attempt that ran is a complete
        event ("ph": "X") from its worker's start to its end, named after its function, with
        its ids, state and error as args; an attempt running now ends at `now`

The trace event format (Perfetto, chrome://tracing): ts and dur in microseconds; pid and
tid are numbers, named by metadata events ("ph": "M", process_name / thread_name).
"""
from __future__ import annotations

from typing import Any

_ARGS = ("task_id", "attempt_number", "state", "job_id", "actor_id", "func_or_class_name",
         "error_type", "error_message", "worker_id", "node_id")


def trace_events(records: Any, now_us: int) -> list[dict]:
    """Chrome trace events of the task records (TaskEventRecord) that have a start time; an
    attempt still running ends at `now_us`."""
    nodes: dict = {}     # node id -> pid in the trace
    workers: set = set()
    meta: list = []
    spans: list = []
    for r in records:
        start = r.start_time_us
        if start is None:
            continue  # never ran (pending, cancelled or failed before a worker took it)
        node = r.node_id or "unknown"
        pid = nodes.get(node)
        if pid is None:
            pid = nodes[node] = len(nodes) + 1
            host = (r.worker_address or "").rpartition(":")[0]
            meta.append({"name": "process_name", "ph": "M", "pid": pid,
                         "args": {"name": f"node {node[:12]}" + (f" ({host})" if host else "")}})
            meta.append({"name": "process_sort_index", "ph": "M", "pid": pid,
                         "args": {"sort_index": pid}})
        tid = r.worker_pid or 0
        if (pid, tid) not in workers:
            workers.add((pid, tid))
            meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                         "args": {"name": f"worker {(r.worker_id or '?')[:12]} (pid {tid})"}})
        end = r.end_time_us if r.end_time_us is not None and r.end_time_us >= start else now_us
        span = {"name": r.name, "cat": "actor_task" if r.actor_id else "task", "ph": "X",
                "ts": start, "dur": end - start,
                "pid": pid, "tid": tid,
                "args": {k: getattr(r, k) for k in _ARGS if getattr(r, k) is not None}}
        if r.state == "FAILED":
            span["cname"] = "terrible"  # drawn red by chrome://tracing
        spans.append(span)
    spans.sort(key=lambda e: e["ts"])
    return meta + spans
