"""Frozen state records: what every core answers to a state request.

Each core (the owner in every driver and worker, the node scheduler, the worker
table, the object store accounting, the GCS tables) has a `state()` method
returning these records about what it knows, and nothing else reads a core's
insides: `raylite status`, `raylite memory`, the state API and the dashboard
read only these. Ids are hex strings so the records print, compare and travel
(pickle) as plain data; resources are plain dicts copied at snapshot time.

    core.state() ──► StateSnapshot(source, nodes, workers, leases, actors, tasks, objects, jobs)
                       │ each field a tuple of the records below (empty when the core
                       │ knows nothing of that kind)
                       └──► merge(snapshots) for a cluster-wide view
"""
from __future__ import annotations

from typing import NamedTuple


class NodeRecord(NamedTuple):
    node_id: str
    address: str
    hostname: str
    alive: bool
    is_head: bool
    resources_total: dict
    resources_available: dict


class JobRecord(NamedTuple):
    job_id: str
    namespace: str
    pid: int
    alive: bool


class WorkerRecord(NamedTuple):
    worker_id: str
    node_id: str
    pid: int | None
    state: str                 # STARTING | IDLE | LEASED | ACTOR | DEAD
    lease_id: str | None
    actor_id: str | None


class LeaseRecord(NamedTuple):
    lease_id: str
    node_id: str
    worker_id: str
    owner: str                 # the address of the process holding the lease
    demand: dict
    name: str                  # the function or actor class it was requested for


class ActorRecord(NamedTuple):
    actor_id: str
    class_name: str
    name: str | None
    namespace: str
    state: str                 # PENDING | ALIVE | RESTARTING | DEAD
    address: str | None
    restarts: int
    detached: bool
    death: str | None          # why it died last, one line


class TaskRecord(NamedTuple):
    task_id: str
    name: str
    state: str                 # WAITING_FOR_ARGS | WAITING_FOR_LEASE | RUNNING | (actor calls) QUEUED
    owner: str
    worker: str | None         # the address it runs on, once pushed
    attempt: int               # 0 for the first try, +1 per retry
    actor_id: str | None


class ObjectRecord(NamedTuple):
    object_id: str
    owner: str
    state: str                 # PENDING | INLINE | SHARED_MEMORY | SPILLED | ERROR | BORROWED
    size: int | None           # bytes, when known
    local_refs: int            # references held in the reporting process
    borrowers: int             # other processes borrowing it (known to its owner)


_KINDS = ("nodes", "jobs", "workers", "leases", "actors", "tasks", "objects")


class StateSnapshot(NamedTuple):
    source: str                # who answered: "owner <address>", "node <id>", "gcs"
    nodes: tuple = ()
    jobs: tuple = ()
    workers: tuple = ()
    leases: tuple = ()
    actors: tuple = ()
    tasks: tuple = ()
    objects: tuple = ()


def merge(snapshots: "list[StateSnapshot]", source: str = "cluster") -> StateSnapshot:
    """One snapshot holding every record of `snapshots`, in their order."""
    return StateSnapshot(source, *(tuple(r for s in snapshots for r in getattr(s, k)) for k in _KINDS))
