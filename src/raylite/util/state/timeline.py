"""raylite.timeline() and `raylite timeline`: the tasks the task-event store keeps, as a
Chrome trace (raylite._core.trace builds it), loadable in Perfetto or chrome://tracing.

    timeline(filename, address) ─► fetch.ask_tasks(every record) ─► trace_events(records)
        ─► the list of events; written as JSON to `filename` when one is given
"""
from __future__ import annotations

import json
import time

from raylite._core.trace import trace_events

from . import fetch


def write(events: list, filename: str) -> None:
    with open(filename, "w") as f:
        json.dump(events, f)


def timeline(filename: str | None = None, address: str | None = None,
             timeout: float | None = 30, _temp_dir: str | None = None) -> list[dict]:
    """The Chrome trace events of every task the cluster's store keeps (Ray's
    ray.timeline); with `filename`, also written there as JSON (open it in Perfetto)."""
    target = fetch.resolve(address, _temp_dir)
    if target.mode == "ray":  # Ray's own trace (ray.timeline())
        from raylite import _runtime

        events = _runtime.require().timeline()
    else:
        reply = fetch.ask_tasks(target, [], None, 0, False, timeout)
        events = trace_events(reply.records, int(time.time() * 1e6))
    if filename is not None:
        write(events, filename)
    return events
