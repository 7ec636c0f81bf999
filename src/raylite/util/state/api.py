"""list_*, get_* and summarize_*: Ray's state API over raylite's state records.

    list_tasks(filters, limit, detail, ...) ─► fetch.resolve(address) ─► fetch.ask(kinds, owners)
        ─► schema.rows(kind, snapshot)   Ray's field names
        ─► common.select(filters, limit) filters first, then the limit
        ─► common.report                 a warning per reason the list is partial (left out by
                                         the limit, owners that did not answer), or an error
                                         with raise_on_missing_output and missing owners

Only the record kinds a call needs are asked for, and owners (every driver and worker) only
for tasks and objects, so list_nodes/actors/workers/jobs are one round trip to a daemon.
Tasks come from the GCS's task-event store instead (fetch.ask_tasks): filters, limit and
summary counts are applied there, where the records are, and no owner is asked.
"""
from __future__ import annotations

from . import common, fetch, on_ray, schema
from .common import DEFAULT_LIMIT, RayStateApiException, StateList, StateRecord

_TIMEOUT = 30


def query(kind: str, address=None, filters=None, limit: int | None = DEFAULT_LIMIT,
          timeout: float | None = _TIMEOUT, detail: bool = False,
          raise_on_missing_output: bool = True, temp_dir: str | None = None,
          warn: bool = True, _call: str | None = None) -> StateList:
    """The rows of `kind` that pass `filters`, at most `limit` of them (the list_* functions;
    the CLI calls this with warn=False and prints StateList.partial itself)."""
    if kind not in schema.COLUMNS:
        raise RayStateApiException(f"unknown kind {kind!r}: one of {', '.join(schema.COLUMNS)}")
    checked = common.check_filters(filters, schema.columns(kind, True))
    target = fetch.resolve(address, temp_dir)
    if target.mode == "ray" and kind in on_ray.WHAT:
        on_ray.refuse(_call or f"list_{kind}", kind)
    if kind == "tasks":
        result = _tasks(target, checked, limit, timeout, detail)
        return result if not warn else common.report(result, raise_on_missing_output, "list_tasks")
    kinds, owners = schema.NEEDS[kind]
    if kinds:
        snap, missing = fetch.ask(target, kinds, owners, timeout)
        # unfiltered: only the rows shown are built (list_objects() of 10,000 builds 100)
        rows = schema.rows(kind, snap, None if checked else limit)
        total = None if checked else schema.count(kind, snap)
    else:
        rows, missing, total = [], (), None
    keep = None if detail else schema.columns(kind, False)
    result = common.select(rows, checked, limit, missing if owners else (), keep, total)
    if not warn:
        if result.missing and raise_on_missing_output:
            common.report(result, True, f"list {kind}")
        return result
    return common.report(result, raise_on_missing_output, f"list_{kind}")


def _tasks(target, checked, limit, timeout, detail) -> StateList:
    """Tasks from the GCS's task-event store: filtered and limited there."""
    if limit is not None and limit < 0:
        raise RayStateApiException(f"limit must be a positive number or None, not {limit}")
    reply = fetch.ask_tasks(target, checked, limit, 0, False, timeout)
    keep = schema.columns("tasks", detail)
    rows = [{k: r[k] for k in keep} for r in schema.task_rows(reply.records)]
    return StateList(map(StateRecord, rows), reply.total, (), limit, reply.dropped,
                     reply.max_per_job)


def list_actors(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=_TIMEOUT, detail=False,
                raise_on_missing_output=True) -> list:
    """Actors in the cluster (ActorState fields; pid and node_id of those alive)."""
    return query("actors", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_tasks(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=_TIMEOUT, detail=False,
               raise_on_missing_output=True) -> list:
    """Every attempt of every task the cluster's task-event store keeps: pending, running,
    FINISHED and FAILED (TaskState fields), oldest first. Filters apply where the records
    are, before the limit. Events arrive in batches (about every 0.5 s), so a task that just
    changed may show its previous state for that long."""
    return query("tasks", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_objects(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=_TIMEOUT, detail=False,
                 raise_on_missing_output=True) -> list:
    """Objects held by drivers and workers, with where their bytes are (ObjectState fields)."""
    return query("objects", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_nodes(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=_TIMEOUT, detail=False,
               raise_on_missing_output=True) -> list:
    return query("nodes", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_workers(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=_TIMEOUT, detail=False,
                 raise_on_missing_output=True) -> list:
    """Worker processes of every node (not drivers)."""
    return query("workers", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_jobs(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=_TIMEOUT, detail=False,
              raise_on_missing_output=True) -> list:
    """Driver jobs (one per connected or past driver); submitted jobs are `raylite job list`."""
    return query("jobs", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_placement_groups(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=_TIMEOUT,
                          detail=False, raise_on_missing_output=True) -> list:
    """Placement groups (the GCS's table: PENDING, CREATED, REMOVED)."""
    return query("placement_groups", address, filters, limit, timeout, detail,
                 raise_on_missing_output)


def _get(kind: str, id: str, address, timeout) -> list:
    if not isinstance(id, str) or not id:
        raise RayStateApiException(f"get {kind}: give the id as a hex string, not {id!r}")
    call = "get_objects" if kind == "objects" else f"get_{kind[:-1]}"
    return query(kind, address, [(schema.ID[kind], "=", id)], None, timeout, True, False,
                 warn=False, _call=call)


def get_actor(id: str, address=None, timeout=_TIMEOUT) -> StateRecord | None:
    """The actor with this id (every field), or None."""
    found = _get("actors", id, address, timeout)
    return found[0] if found else None


def get_task(id: str, address=None, timeout=_TIMEOUT) -> list:
    """Every attempt of the task with this id that the store keeps ([] if none), as Ray's
    get_task gives a list of attempts."""
    return list(_get("tasks", id, address, timeout))


def get_node(id: str, address=None, timeout=_TIMEOUT) -> StateRecord | None:
    found = _get("nodes", id, address, timeout)
    return found[0] if found else None


def get_worker(id: str, address=None, timeout=_TIMEOUT) -> StateRecord | None:
    found = _get("workers", id, address, timeout)
    return found[0] if found else None


def get_job(id: str, address=None, timeout=_TIMEOUT) -> StateRecord | None:
    found = _get("jobs", id, address, timeout)
    return found[0] if found else None


def get_placement_group(id: str, address=None, timeout=_TIMEOUT) -> StateRecord | None:
    """The placement group with this id (every field), or None."""
    found = _get("placement_groups", id, address, timeout)
    return found[0] if found else None


def get_objects(id: str, address=None, timeout=_TIMEOUT) -> list:
    """Every record of the object with this id: its owner's and each borrower's."""
    return list(_get("objects", id, address, timeout))


# -- summaries ----------------------------------------------------------------
def summarize_tasks(address=None, timeout=_TIMEOUT, raise_on_missing_output=True,
                    _temp_dir=None) -> dict:
    """Tasks by function name, counted where the records are (the GCS's task-event store):
    {"cluster": {"summary": {name: {"func_or_class_name", "type", "state_counts"}},
    "total_tasks", "total_actor_tasks", "total_actor_scheduled", "summary_by"}, "dropped"}:
    total_actor_scheduled counts the attempts of actors' creation tasks (one per placement
    of an actor: its first and each restart), as Ray's."""
    target = fetch.resolve(address, _temp_dir)
    if target.mode == "ray":
        on_ray.refuse("summarize_tasks", "tasks")
    reply = fetch.ask_tasks(target, [], None, 0, True, timeout)
    summary: dict = {}
    total = actor_tasks = scheduled = 0
    for name, kind, state, n in reply.records:
        s = summary.setdefault(name, {"func_or_class_name": name, "type": kind,
                                      "state_counts": {}})
        s["state_counts"][state] = s["state_counts"].get(state, 0) + n
        total += n
        actor_tasks += n if kind == "ACTOR_TASK" else 0
        scheduled += n if kind == "ACTOR_CREATION_TASK" else 0
    return {"cluster": {"summary": summary, "total_tasks": total,
                        "total_actor_tasks": actor_tasks, "total_actor_scheduled": scheduled,
                        "summary_by": "func_name"},
            "missing": (), "dropped": reply.dropped}


def summarize_actors(address=None, timeout=_TIMEOUT, raise_on_missing_output=True,
                     _temp_dir=None) -> dict:
    """Actors by class: {"cluster": {"summary": {class_name: {"class_name", "state_counts"}},
    "total_actors"}}."""
    rows = query("actors", address, None, None, timeout, False, raise_on_missing_output,
                 _temp_dir, warn=False)
    summary: dict = {}
    for r in rows:
        s = summary.setdefault(r["class_name"], {"class_name": r["class_name"], "state_counts": {}})
        s["state_counts"][r["state"]] = s["state_counts"].get(r["state"], 0) + 1
    return {"cluster": {"summary": summary, "total_actors": len(rows)}, "missing": ()}


def summarize_objects(address=None, timeout=_TIMEOUT, raise_on_missing_output=True,
                      _temp_dir=None) -> dict:
    """Objects by where their bytes are (raylite records no call sites, Ray's grouping):
    {"cluster": {"summary": {state: {"total_objects", "total_size_mb", "task_state_counts",
    "ref_type_counts"}}, "total_objects", "total_size_mb", "callsite_enabled": False}}."""
    rows = query("objects", address, None, None, timeout, True, raise_on_missing_output,
                 _temp_dir, warn=False, _call="summarize_objects")
    summary: dict = {}
    total = 0
    for r in rows:
        size = max(r["object_size"], 0)
        total += size
        s = summary.setdefault(r["state"], {"total_objects": 0, "total_size_mb": 0.0,
                                            "task_state_counts": {}, "ref_type_counts": {}})
        s["total_objects"] += 1
        s["total_size_mb"] += size / 2**20
        for field, key in (("task_state_counts", "task_status"),
                           ("ref_type_counts", "reference_type")):
            s[field][r[key]] = s[field].get(r[key], 0) + 1
    return {"cluster": {"summary": summary, "total_objects": len(rows),
                        "total_size_mb": total / 2**20, "callsite_enabled": False},
            "missing": rows.missing}
