"""Frozen state records: what every core answers to a state request.

Each core (the owner in every driver and worker, the node scheduler, the worker
table, the object store accounting, the GCS tables) has a `state()` method
returning these records about what it knows, and nothing else reads a core's
insides: `raylite status`, `raylite memory`, the state API and the dashboard
read only these. Ids are hex strings so the records print, compare and travel
(pickle) as plain data; resources are plain dicts copied at snapshot time.

    core.state() ──► StateSnapshot(source, nodes, jobs, workers, leases, actors, tasks, objects,
                                   placement_groups)
                       │ each field a tuple of the records below (empty when the core
                       │ knows nothing of that kind)
                       ├──► merge(snapshots) for a cluster-wide view
                       ├──► overlay(base, top): one record per id where two cores each know
                       │    part of the same thing (the GCS a node's address, its scheduler
                       │    what is free; the worker table a worker's pid, the scheduler its lease)
                       └──► located(owners' objects, store's objects): where an owned object's
                            bytes are is the store's to say

A field a core does not know is None in its record; overlay() fills it from another
core's record of the same id.
"""

from typing import NamedTuple


class NodeRecord(NamedTuple):
    node_id: str
    address: str
    hostname: str
    alive: bool
    is_head: bool
    resources_total: dict
    resources_available: dict
    labels: dict | None = None  # the GCS's to say (None: not known to this record's source)
    spill: "SpillRecord | None" = None  # the node daemon's to say (its object store)


class SpillRecord(NamedTuple):
    """A node's spilling: the copies to disk under way, and all it spilled since it started."""
    spilling_objects: int      # chosen to make room and being copied to disk now
    spilling_bytes: int
    copied_objects: int        # of those, copied already
    copied_bytes: int
    spilled_objects: int       # copied to disk since the node started (freed ones included)
    spilled_bytes: int
    failed: int = 0            # copies that failed (a full disk, an I/O error)


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
    state: str = "GRANTED"     # GRANTED | PENDING (queued: lease_id and worker_id are "")


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
    nodes: tuple | None = None  # tags of the nodes holding a copy (its owner's directory)


class PlacementGroupRecord(NamedTuple):
    placement_group_id: str
    name: str
    namespace: str
    state: str                 # PENDING | CREATED | REMOVED
    strategy: str              # PACK | SPREAD | STRICT_PACK | STRICT_SPREAD
    bundles: tuple             # of dicts {resource: amount}, in bundle order
    bundle_nodes: tuple        # the node id (hex) holding each bundle; () while unplaced
    detached: bool
    job_id: str                # the job that created it


KINDS = _KINDS = ("nodes", "jobs", "workers", "leases", "actors", "tasks", "objects",
                  "placement_groups")


class StateSnapshot(NamedTuple):
    source: str                # who answered: "owner <address>", "node <id>", "gcs"
    nodes: tuple = ()
    jobs: tuple = ()
    workers: tuple = ()
    leases: tuple = ()
    actors: tuple = ()
    tasks: tuple = ()
    objects: tuple = ()
    placement_groups: tuple = ()


def merge(snapshots: "list[StateSnapshot]", source: str = "cluster") -> StateSnapshot:
    """One snapshot holding every record of `snapshots`, in their order."""
    return StateSnapshot(source, *(tuple(r for s in snapshots for r in getattr(s, k)) for k in _KINDS))


def overlay(base: tuple, top: tuple) -> tuple:
    """Records keyed by their first field (the id): a record of `top` replaces the one of
    `base` with the same id, each of its None fields taken from that one; records only one
    side has are kept. Order: base's, then those only top has."""
    index = {r[0]: r for r in top}
    out = []
    for r in base:
        t = index.pop(r[0], None)
        out.append(r if t is None else type(t)(*(b if v is None else v for v, b in zip(t, r))))
    return tuple(out) + tuple(index.values())


def located(objects: tuple, stored: tuple) -> tuple:
    """Owners' object records with the store's records overlaid on those they own: the
    store says whether the bytes are in shared memory or spilled (and their size), the
    owner how many references there are. Borrowers' records are kept as they are; the
    store's records of objects no owner reported (its owner did not answer) are kept."""
    owned = tuple(r for r in objects if r.state != "BORROWED")
    return overlay(owned, stored) + tuple(r for r in objects if r.state == "BORROWED")


def spill_lines(nodes) -> list[str]:
    """What `raylite status` (and a driver waiting for room) says of the alive nodes'
    spilling (NodeRecord.spill): the copies under way, how far they are, and the totals."""
    records = [n.spill for n in nodes if n.alive and n.spill is not None]
    if not records:
        return []
    now, nbytes, done, copied, total, total_bytes, failed = (
        sum(r[i] for r in records) for i in range(7))
    out = []
    if now:
        pct = 100 * copied / nbytes if nbytes else 100
        out.append(f"spilling to disk now: {done} of {_n(now, 'object')}, {copied / 2**20:.1f} "
                   f"of {nbytes / 2**20:.1f} MiB copied ({pct:.0f} %)")
    if total or failed:
        out.append(f"spilled since start: {_n(total, 'object')}, {total_bytes / 2**20:.1f} MiB"
                   + (f"; {_n(failed, 'spill copy', 'spill copies')} failed (see the daemon's "
                      "log)" if failed else ""))
    return out


def _n(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


class TaskEventRecord(NamedTuple):
    """One attempt of a task as the task-event store knows it (task_events.py): Ray's TaskState
    field names; times in ms since the epoch (None: not reached or not known)."""
    task_id: str
    attempt_number: int
    name: str
    state: str                 # PENDING_* | RUNNING | FINISHED | FAILED
    job_id: str | None
    actor_id: str | None
    type: str                  # NORMAL_TASK | ACTOR_TASK | ACTOR_CREATION_TASK
    func_or_class_name: str
    node_id: str | None
    worker_id: str | None
    worker_pid: int | None
    error_type: str | None     # TASK_EXECUTION_EXCEPTION, WORKER_DIED, ACTOR_DIED, TASK_CANCELLED...
    error_message: str | None
    creation_time_ms: int | None
    start_time_ms: int | None  # when its worker began running it
    end_time_ms: int | None    # when its worker was done with it (else when its owner heard)
    owner_address: str | None
    worker_address: str | None
    events: tuple              # ((state, ms), ...) in the order they happened
    start_time_us: int | None = None  # start and end in µs (raylite's own: for the timeline)
    end_time_us: int | None = None
    parent_task_id: str | None = None  # the task or actor call that submitted it (None: a driver)
