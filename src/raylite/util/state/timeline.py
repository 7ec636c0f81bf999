"""raylite.timeline(): the tasks the task-event store keeps, as a Chrome trace (Perfetto,
chrome://tracing).

    timeline(filename) ─► fetch.ask_tasks(every record) ─► trace_events(records)
        one process row per node ("node <id> (<ip>)"), one thread row per worker in it
        ("worker <id> (pid N)"): each attempt that ran is a complete event ("ph": "X") from
        its worker's start to its end, named after its function, with its ids, state and
        error as args; an attempt running now ends at the time of the call
    ─► the list of events; written as JSON to `filename` when one is given

The trace event format: ts and dur in microseconds; pid and tid are numbers, named by
metadata events ("ph": "M", process_name / thread_name), so every viewer shows the names.
"""
from __future__ import annotations

import json
import time

from . import fetch

_ARGS = ("task_id", "attempt_number", "state", "job_id", "actor_id", "func_or_class_name",
         "error_type", "error_message", "worker_id", "node_id")


def trace_events(records, now_us: int | None = None) -> list[dict]:
    """Chrome trace events of the task records (TaskEventRecord) that have a start time."""
    now_us = int(time.time() * 1e6) if now_us is None else now_us
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


def timeline(filename: str | None = None, address: str | None = None,
             timeout: float | None = 30, _temp_dir: str | None = None) -> list[dict]:
    """The Chrome trace events of every task the cluster's store keeps (Ray's
    ray.timeline); with `filename`, also written there as JSON (open it in Perfetto)."""
    reply = fetch.ask_tasks(fetch.resolve(address, _temp_dir), [], None, 0, False, timeout)
    events = trace_events(reply.records)
    if filename is not None:
        with open(filename, "w") as f:
            json.dump(events, f)
    return events
