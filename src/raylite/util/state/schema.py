"""raylite's state records (_core/records.py) in Ray's state schema (ray.util.state.common).

Each kind has a row function (records -> dicts with Ray's field names) and its columns: the
default ones (what a list shows) and the detail ones (detail=True, get_*). Every column can be
filtered on. Fields Ray has and raylite does not know yet are listed in LACKING (and in
docs/observability.md); they are left out, never filled with made-up values.

    kind      Ray's schema   keyed by       from the records
    actors    ActorState     actor_id       ActorRecord, with the hosting worker's pid and node
    tasks     TaskState      task_id        TaskEventRecord (the GCS's task-event store: every
                                            attempt of every task it kept, finished or not)
    objects   ObjectState    object_id      ObjectRecord (owners' and the store's, overlaid)
    nodes     NodeState      node_id        NodeRecord
    workers   WorkerState    worker_id      WorkerRecord, with its node's ip
    jobs      JobState       job_id         JobRecord (drivers)
    placement_groups  PlacementGroupState  placement_group_id  PlacementGroupRecord (the GCS's)

Tasks do not come from a snapshot: api.py asks the task-event store (fetch.ask_tasks), which
filters and limits where the records are, and task_rows() maps what comes back.
"""
from __future__ import annotations

ACTOR_STATE = {"PENDING": "PENDING_CREATION"}               # others (ALIVE, RESTARTING, DEAD) as-is
TASK_STATE = {"WAITING_FOR_ARGS": "PENDING_ARGS_AVAIL",
              "WAITING_FOR_LEASE": "PENDING_NODE_ASSIGNMENT",
              "QUEUED": "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY"}  # RUNNING, FINISHED... as-is
OBJECT_TASK_STATUS = {"PENDING": "PENDING", "ERROR": "FAILED"}      # a stored value: FINISHED

COLUMNS = {
    "actors": (("actor_id", "class_name", "state", "name", "ray_namespace", "pid", "node_id"),
               ("num_restarts", "is_detached", "death_cause", "address", "repr_name")),
    "tasks": (("task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type",
               "func_or_class_name", "node_id", "worker_id", "worker_pid", "error_type"),
              ("error_message", "creation_time_ms", "start_time_ms", "end_time_ms",
               "owner_address", "worker_address", "events", "parent_task_id")),
    "objects": (("object_id", "object_size", "task_status", "reference_type", "ip"),
                ("state", "owner_address", "local_refs", "borrowers")),
    "nodes": (("node_id", "node_ip", "is_head_node", "state", "node_name", "resources_total"),
              ("resources_available", "address")),
    "workers": (("worker_id", "is_alive", "worker_type", "node_id", "ip", "pid"),
                ("state", "lease_id", "actor_id")),
    "jobs": (("job_id", "submission_id", "type", "status", "driver_info"),
             ("ray_namespace", "entrypoint")),
    "placement_groups": (("placement_group_id", "name", "creator_job_id", "state"),
                         ("bundles", "is_detached", "strategy", "ray_namespace")),
}
SOURCE = {k: k for k in ("actors", "tasks", "objects", "nodes", "workers", "jobs",
                         "placement_groups")}  # record field
ID = {"actors": "actor_id", "tasks": "task_id", "objects": "object_id", "nodes": "node_id",
      "workers": "worker_id", "jobs": "job_id", "placement_groups": "placement_group_id"}
LACKING = {
    "actors": "job_id, serialized_runtime_env, required_resources, placement_group_id, call_site, "
              "label_selector, num_restarts_due_to_*",
    "tasks": "language, required_resources, runtime_env_info, "
             "placement_group_id, profiling_data, task_log_info, call_site, label_selector",
    "objects": "call_site, type (DRIVER/WORKER), pid",
    "nodes": "state_message, labels, start_time_ms, end_time_ms",
    "workers": "exit_type, exit_detail, worker_launch_time_ms, worker_launched_time_ms, "
               "start_time_ms, end_time_ms, debugger_port, num_paused_threads",
    "jobs": "message, error_type, start_time, end_time, metadata, runtime_env, driver_exit_code "
            "(drivers only: submitted jobs are `raylite job list`)",
    "placement_groups": "stats, bundles[].bundle_id, bundles[].label_selector",
}
# Which record kinds a list of each kind needs, and whether owners must be asked.
NEEDS = {"actors": (("actors", "workers"), False), "tasks": ((), False),  # the GCS's task events
         "objects": (("nodes", "objects"), True), "nodes": (("nodes",), False),
         "workers": (("nodes", "workers"), False), "jobs": (("jobs",), False),
         "placement_groups": (("placement_groups",), False)}


def columns(kind: str, detail: bool) -> tuple:
    brief, more = COLUMNS[kind]
    return brief + more if detail else brief


def _host(address) -> str | None:
    return address.rpartition(":")[0] or None if address and ":" in address else None


def rows(kind: str, snap, first: int | None = None) -> list[dict]:
    """The snapshot's records of `kind` (only the `first` ones, if given) as rows in Ray's
    schema, with every column (filters may name any; columns() says which a caller shows)."""
    if first is not None and kind in SOURCE:
        snap = snap._replace(**{SOURCE[kind]: getattr(snap, SOURCE[kind])[:first]})
    return _ROWS[kind](snap)


def count(kind: str, snap) -> int:
    """How many rows rows(kind, snap) gives."""
    return len(getattr(snap, SOURCE[kind])) if kind in SOURCE else 0


def _actors(snap) -> list[dict]:
    hosts = {w.actor_id: (w.pid, w.node_id) for w in snap.workers
             if w.actor_id and w.state != "DEAD"}
    if snap.source == "local":  # local mode: every actor lives in the driver's process
        here = (snap.jobs[0].pid if snap.jobs else None, snap.nodes[0].node_id if snap.nodes else None)
    out = []
    for a in snap.actors:
        pid, node = (None, None) if a.state == "DEAD" else \
            here if snap.source == "local" else hosts.get(a.actor_id, (None, None))
        out.append({"actor_id": a.actor_id, "class_name": a.class_name,
                    "state": ACTOR_STATE.get(a.state, a.state), "name": a.name or "",
                    "ray_namespace": a.namespace, "pid": pid, "node_id": node,
                    "num_restarts": a.restarts,
                    "is_detached": a.detached,
                    "death_cause": {"error_message": a.death} if a.death else None,
                    "address": a.address, "repr_name": ""})
    return out


def _tasks(snap) -> list[dict]:
    """Tasks in flight as their owners report them (StateSnapshot.tasks: an owner's own view,
    without the times, worker ids and errors only the task-event store has)."""
    blank = dict.fromkeys(columns("tasks", True))
    return [{**blank, "task_id": t.task_id, "attempt_number": t.attempt, "name": t.name,
             "state": TASK_STATE.get(t.state, t.state),
             "type": "ACTOR_TASK" if t.actor_id else "NORMAL_TASK", "actor_id": t.actor_id,
             "func_or_class_name": t.name, "owner_address": t.owner, "worker_address": t.worker,
             "events": []}
            for t in snap.tasks]


def task_rows(records) -> list[dict]:
    """The task-event store's records (TaskEventRecord: Ray's field names already) as rows;
    events as Ray gives them: [{"state": ..., "created_ms": ...}, ...]."""
    out = []
    for r in records:
        row = r._asdict()
        row["events"] = [{"state": s, "created_ms": ms} for s, ms in r.events]
        out.append(row)
    return out


def _objects(snap) -> list[dict]:
    return [{"object_id": o.object_id, "object_size": -1 if o.size is None else o.size,
             "task_status": OBJECT_TASK_STATUS.get(o.state, "FINISHED"),
             "reference_type": "LOCAL_REFERENCE" if o.local_refs else "PINNED_IN_MEMORY",
             "ip": _host(o.owner), "state": o.state, "owner_address": o.owner,
             "local_refs": o.local_refs, "borrowers": o.borrowers} for o in snap.objects]


def _nodes(snap) -> list[dict]:
    return [{"node_id": n.node_id, "node_ip": _host(n.address) or n.address,
             "is_head_node": bool(n.is_head), "state": "ALIVE" if n.alive else "DEAD",
             "node_name": n.hostname, "resources_total": dict(n.resources_total or {}),
             "resources_available": dict(n.resources_available or {}), "address": n.address}
            for n in snap.nodes]


def _workers(snap) -> list[dict]:
    ips = {n.node_id: _host(n.address) or n.address for n in snap.nodes}
    return [{"worker_id": w.worker_id, "is_alive": w.state != "DEAD", "worker_type": "WORKER",
             "node_id": w.node_id, "ip": ips.get(w.node_id), "pid": w.pid, "state": w.state,
             "lease_id": w.lease_id, "actor_id": w.actor_id} for w in snap.workers]


def _jobs(snap) -> list[dict]:
    return [{"job_id": j.job_id, "submission_id": None, "type": "DRIVER",
             "status": "RUNNING" if j.alive else "FINISHED", "driver_info": {"pid": j.pid},
             "ray_namespace": j.namespace, "entrypoint": ""} for j in snap.jobs]


def _placement_groups(snap) -> list[dict]:
    return [{"placement_group_id": g.placement_group_id, "name": g.name,
             "creator_job_id": g.job_id, "state": g.state,
             "bundles": [{"node_id": g.bundle_nodes[i] if g.bundle_nodes else None,
                          "unit_resources": dict(b)} for i, b in enumerate(g.bundles)],
             "is_detached": g.detached, "strategy": g.strategy, "ray_namespace": g.namespace}
            for g in snap.placement_groups]


_ROWS = {"actors": _actors, "tasks": _tasks, "objects": _objects, "nodes": _nodes,
         "workers": _workers, "jobs": _jobs, "placement_groups": _placement_groups}
