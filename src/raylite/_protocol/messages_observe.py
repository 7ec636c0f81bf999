"""The observability messages of the one vocabulary (messages.py re-exports them): task
events for the GCS's store (_core/task_events.py) and user metrics (_core/metrics.py).

    owner / worker ──TaskEvents (one-way, batched)──► node daemon ──(who sent it)──► GCS
    client ──GetTaskEvents(filters, limit, offset, summary)──► GCS ──TaskEventsReply──►
    any process ──ReportMetrics (one-way)──► node daemon ──► GCS;  GetMetrics ──► MetricsReply
"""

from typing import NamedTuple


# -- task events (_core/task_events.py) --------------------------------------------------
class TaskEvents(NamedTuple):
    """A batch of task events (_core/task_events.py says what one is), one-way: a driver or
    worker ─► its node daemon, which fills in who sent it ─► the GCS's task-event store. Sent every ~0.5 s while there are events."""
    events: tuple
    lost: int = 0              # events the sender dropped since its last batch (buffer full)
    address: str | None = None  # filled in by the daemon: the sender's owner address,
    worker_id: bytes | None = None  # and a worker's id and pid (the GCS knows the node)
    pid: int = 0
    whole: tuple = ()          # an owner's tasks whose runs returned, whole, as columns
    runs: tuple = ()           # a worker's runs that returned, of tasks pushed with `opened`,
                               # whole: ((their owner's address, columns), ...)


class GetTaskEvents(NamedTuple):
    """Task records from the GCS's task-event store: those that pass every filter ((key,
    "=" | "!=", value), Ray's field names), from the `offset`-th on, at most `limit` (-1:
    all); with `summary`, counts by (func_or_class_name, type, state) instead."""
    req: int
    filters: tuple = ()
    limit: int = -1
    offset: int = 0
    summary: bool = False


class TaskEventsReply(NamedTuple):
    req: int
    records: tuple             # records.TaskEventRecord (or summary rows)
    total: int                 # how many passed the filters (records: at most `limit` of them)
    dropped: int = 0           # records pushed out by the store's bound (every job)
    lost: int = 0              # events their processes dropped before sending
    max_per_job: int = 0       # the store's bound


# -- metrics (raylite.util.metrics; _core/metrics.py) ----------------------------------
class ReportMetrics(NamedTuple):
    """A process's metric series since its last report (deltas: _core/metrics.py), one-way to
    its node daemon, which forwards it to the GCS's MetricsTable."""
    series: tuple              # MetricSeries
    dropped: int = 0           # series the process could not keep since its last report


class GetMetrics(NamedTuple):
    req: int


class MetricsReply(NamedTuple):
    req: int
    series: tuple              # MetricSeries totals, sorted by (name, tags)
    dropped: int               # reports of series the GCS (or a process) could not keep
