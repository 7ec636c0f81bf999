"""The owner's answer to a state request, and what the runtime reads from a snapshot.

    daemon ──GetState──► ClusterRuntime._on_daemon ──► owner_state(rt) ──StateReply──► daemon
    nodes(), cluster_resources(), available_resources() ──► GetState(("nodes",)) ──► below

owner_state() is the one place that reads the owner's insides for a snapshot (its store,
reference counts and tasks, under its lock); when the owner's state lives in a pure core,
it becomes that core's state(). Actors are the GCS's to report, not the owner's.

    a task      WAITING_FOR_ARGS (owned arguments not ready) ─► WAITING_FOR_LEASE, or
                QUEUED for an actor ─► RUNNING once pushed (`worker`: where)
    an object   owned: PENDING ─► INLINE | SHARED_MEMORY | ERROR
                held here, owned elsewhere: BORROWED (owner None when unknown here)
"""
from __future__ import annotations

from typing import Any

from .._core.records import ObjectRecord, StateSnapshot, TaskRecord
from .._object_store import shm


def owner_state(rt: Any) -> StateSnapshot:
    """The tasks and objects the process owns or holds (rt: a ClusterRuntime)."""
    me = rt.address
    with rt._lock:
        tasks = tuple(_task(t, me) for t in rt._tasks.values())
        objects = [_object(i, o, me, rt._counts.get(i, 0), rt._borrowed_from.get(i))
                   for i, o in rt._store.items()]
        objects += [ObjectRecord(i.hex(), owner, "BORROWED", None, rt._counts.get(i, 0), 0)
                    for i, owner in rt._borrowed_from.items() if i not in rt._store]
    return StateSnapshot(f"owner {me}", tasks=tasks, objects=tuple(objects))


def _task(t: Any, me: str) -> TaskRecord:
    if t.deps > 0:
        state = "WAITING_FOR_ARGS"
    elif t.conn is not None:
        state = "RUNNING"
    else:
        state = "QUEUED" if t.actor_id is not None else "WAITING_FOR_LEASE"
    return TaskRecord(t.task_id.hex(), t.name, state, me, t.conn.peer if t.conn else None,
                      t.attempt, t.actor_id.hex() if t.actor_id else None)


def _object(i: bytes, o: Any, me: str, refs: int, lender: str | None) -> ObjectRecord:
    data = o.data
    size = data.size if type(data) is shm.ShmObject else len(data) if data is not None else None
    if not o.owned:
        return ObjectRecord(i.hex(), lender, "BORROWED", size, refs, 0)
    if not o.ready:
        state = "PENDING"
    elif o.error is not None:
        state, size = "ERROR", None
    else:
        state = "SHARED_MEMORY" if type(data) is shm.ShmObject else "INLINE"
    return ObjectRecord(i.hex(), me, state, size, refs, o.borrowers)


# -- reading a snapshot ------------------------------------------------------------
def ray_nodes(snapshot: StateSnapshot) -> list[dict]:
    """The nodes as ray.nodes() describes them."""
    return [{"NodeID": n.node_id, "Alive": n.alive, "alive": n.alive,
             "NodeManagerAddress": (n.address or "").rpartition(":")[0],
             "NodeManagerHostname": n.hostname, "Resources": dict(n.resources_total),
             "IsHead": bool(n.is_head)} for n in snapshot.nodes]


def resource_sum(snapshot: StateSnapshot, field: str) -> dict:
    """`field` (resources_total or resources_available) summed over the live nodes."""
    out: dict = {}
    for n in snapshot.nodes:
        if n.alive:
            for k, v in getattr(n, field).items():
                out[k] = out.get(k, 0.0) + v
    return out
