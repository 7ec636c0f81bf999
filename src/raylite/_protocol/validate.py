"""Field checks for every message a node daemon or the GCS handles, run before any handler.

    reader thread ─► NodeServer._handle(msg) ─► rpc.Endpoint.deliver ─► problem(msg)
        None ──► the handler of the message's type
        "why" ─► refused: logged (rate-limited), nothing changed

A token holder may run code on the cluster, so this is not a sandbox; it keeps one
client's malformed but well-typed message (a NaN size, a resource amount that is a
string, a 3-byte id) from breaking state every other client shares: the GCS tables,
the scheduler's resource pools, the store's accounting. SPECS maps each message type
to one check per field, in declaration order; a check returns None for a good value
or says what is wrong with it. Payloads the daemon only forwards to a worker (pickled
classes, arguments) are checked for their type only.

The owner <-> worker direct path (PushTask, TaskDone, PushActorTask, GetObject) is not
checked here: it is the hot path, its handlers look up what they are given and
ignore what they do not know, and an exception there already costs only that message.
An owner's StateReply is checked for its shape only (a snapshot of records of the right
types, each keyed by a string id): the daemon merges and forwards it, nothing else.
"""
from __future__ import annotations

from typing import Any

from .._core import metrics
from .._core import records as rec
from .._runtime_env.validate import check_resolved
from . import messages as m
from .checks import (MAX_INT, MAX_ITEMS, MAX_TEXT, Check, _at, _show, address, amount,
                     anything, blob, bytes_of, flag, ident, integer, mapping, one_of, optional,
                     optional_address, sequence, text)
from .validate_events import runs, task_events, whole_tasks


def shaped(cls: type) -> Check:
    """A nested message (a NamedTuple of SPECS)."""
    def check(v: Any) -> str | None:
        if type(v) is not cls:
            return f"must be a {cls.__name__}, not {_show(v)}"
        why = problem(v)
        return None if why is None else f": {why}"
    return check


_RECORDS = {"nodes": rec.NodeRecord, "jobs": rec.JobRecord, "workers": rec.WorkerRecord,
            "leases": rec.LeaseRecord, "actors": rec.ActorRecord, "tasks": rec.TaskRecord,
            "objects": rec.ObjectRecord, "placement_groups": rec.PlacementGroupRecord}


def snapshot(v: Any) -> str | None:
    """A StateSnapshot: per kind a tuple of that kind's records, each keyed by a string id
    (one type check per record: an owner may report many thousands)."""
    if type(v) is not rec.StateSnapshot or len(v) != len(rec.StateSnapshot._fields):
        return f"must be a StateSnapshot, not {_show(v)}"
    if type(v.source) is not str:
        return f".source must be a string, not {_show(v.source)}"
    for kind, cls in _RECORDS.items():
        records, n = getattr(v, kind), len(cls._fields)
        if type(records) is not tuple:
            return f".{kind} must be a tuple, not {_show(records)}"
        for i, r in enumerate(records):
            if type(r) is not cls or len(r) != n or type(r[0]) is not str:
                return f".{kind}[{i}] must be a {cls.__name__} with a string id, not {_show(r)}"
    return None


_SCALARS = (str, int, float, bool, type(None))


def state_filter(v: Any) -> str | None:
    if type(v) is tuple and len(v) == 3 and type(v[0]) is str and len(v[0]) <= 256 \
            and v[1] in ("=", "!=", "~") and type(v[2]) in _SCALARS \
            and (type(v[2]) is not str or len(v[2]) <= MAX_TEXT):
        return None
    return f"must be a filter (key, \"=\", \"!=\" or \"~\", value), not {_show(v)}"


def has_fields(**checks: Check) -> Check:
    """An object the daemon reads a few attributes of (ActorMeta lives above this layer)."""
    def check(v: Any) -> str | None:
        for name, c in checks.items():
            why = c(getattr(v, name, None))
            if why is not None:
                return _at(f".{name}", why)
        return None
    return check


def strategy(v: Any) -> str | None:
    """A scheduling strategy on the wire: () | ("SPREAD",) | ("NODE", node id hex, soft)."""
    if type(v) is tuple and (v == () or v == ("SPREAD",)):
        return None
    if type(v) is tuple and len(v) == 3 and v[0] == "NODE" and type(v[1]) is str \
            and len(v[1]) <= 64 and type(v[2]) is bool:
        return None
    return f"must be (), (\"SPREAD\",) or (\"NODE\", node id, soft), not {_show(v)}"
def placement(v: Any) -> str | None:
    """(group id, bundle index, capture child tasks)."""
    if type(v) is tuple and len(v) == 3 and ident()(v[0]) is None and \
            integer(-1, MAX_ITEMS)(v[1]) is None and type(v[2]) is bool:
        return None
    return f"must be (group id, bundle index >= -1, capture flag), not {_show(v)}"


REQ = integer()
PID = integer(1, 2**31 - 1)
NAME = text()
RESOURCES = mapping(text(256, empty=False), amount)
ENV_VARS = optional(mapping(text(), text(MAX_INT)))
IDS = sequence(ident())
SYS_PATH = sequence(text(), types=(tuple,))
JOB_ID = ident(4)
MAX_KEY = 1024           # bytes in a KV key


def resolved_env(v: Any) -> str | None:
    """A resolved runtime_env (raylite._runtime_env.validate), or None."""
    why = check_resolved(v)
    return None if why is None else f"{why}, not {_show(v)}"

KEY = bytes_of(MAX_KEY, empty=False)

SPECS: dict[type, dict[str, Check]] = {
    m.RegisterClient: dict(req=REQ, kind=one_of("driver", "worker"), pid=PID, address=address,
                           namespace=optional(NAME), job_id=optional(JOB_ID),
                           worker_id=optional(ident()), env_vars=ENV_VARS),
    m.RegisterWorker: dict(worker_id=ident(), pid=PID, address=address),
    m.RegisterNode: dict(req=REQ, node_id=ident(), address=address, resources=RESOURCES,
                         hostname=NAME, labels=mapping(text(256, empty=False), text())),
    m.RequestLease: dict(req=REQ, demand=RESOURCES, name=NAME, strategy=strategy, spilled=flag,
                         env=resolved_env),
    m.ReturnLease: dict(lease_id=ident(), kill_worker=flag),
    m.WorkerBlocked: dict(blocked=flag),
    m.ActorSpec: dict(
        actor_id=ident(), class_id=ident(), cls=blob,
        meta=has_fields(class_name=text(), methods=mapping(text(), anything), is_async=flag),
        args=anything, inlined=mapping(ident(), anything), owner=address, job_id=JOB_ID, namespace=NAME, name=optional(NAME), detached=flag,
        demand=RESOURCES, placement=RESOURCES, max_restarts=integer(-1), max_concurrency=optional(integer(1)),
        env_vars=ENV_VARS, max_task_retries=integer(-1),
        concurrency_groups=optional(mapping(text(), integer(1))), sys_path=SYS_PATH,
        strategy=strategy, placement_group=optional(placement), runtime_env=resolved_env,
        task_events=flag, given_env=optional(mapping(text(), anything))),
    m.CreateActor: dict(req=REQ, spec=shaped(m.ActorSpec), get_if_exists=flag),
    m.ActorStarted: dict(actor_id=ident(), error=optional(blob)),
    m.GetActorInfo: dict(req=REQ, actor_id=optional(ident()), name=optional(NAME),
                         namespace=optional(NAME), wait=flag),
    m.KillActor: dict(actor_id=ident(), no_restart=flag, reason=text()),
    m.GetState: dict(req=REQ, kinds=sequence(one_of(*rec.KINDS), len(rec.KINDS), (tuple,)),
                     owners=flag),
    m.StateReply: dict(req=REQ, snapshot=snapshot, missing=sequence(text(), types=(tuple,))),
    m.GetWorkerExit: dict(req=REQ, address=address),
    m.TaskEvents: dict(events=task_events, lost=integer(), address=optional(address),
                       worker_id=optional(ident()), pid=integer(), whole=whole_tasks,
                       runs=runs),
    m.GetTaskEvents: dict(req=REQ, filters=sequence(state_filter, 64, (tuple,)),
                          limit=integer(-1), offset=integer(), summary=flag),
    m.LogLines: dict(job_id=JOB_ID, prefix=text(), lines=sequence(text(MAX_INT), MAX_INT), stderr=flag),
    m.ProgressUpdate: dict(job_id=JOB_ID, bar_id=text(64, empty=False), desc=text(), n=integer(),
                           total=optional(integer()), position=optional(integer()), pid=PID,
                           closed=flag),
    m.ReportMetrics: dict(series=sequence(metrics.problem, types=(tuple,)), dropped=integer()),
    m.GetMetrics: dict(req=REQ),
    m.Shutdown: dict(req=REQ),
    m.AllocObject: dict(req=REQ, object_id=ident(), size=integer(), owner=address),
    m.FreeObjects: dict(object_ids=IDS, recyclable=IDS),
    m.PullObject: dict(req=REQ, object_id=ident(), size=integer(1), owner=optional_address,
                       source=address),
    m.ReadObject: dict(req=REQ, object_id=ident(), size=integer(1)),
    m.DropCopies: dict(at=address, object_ids=IDS),
    m.GetTransferStats: dict(req=REQ),
    # the GCS's own messages with the node daemons (_gcs/service.py, _node/gcs_link.py)
    m.RegisterJob: dict(req=REQ, namespace=optional(NAME), pid=PID, address=address),
    m.JobRegistered: dict(req=REQ, job_id=JOB_ID, namespace=NAME),
    m.JobFinished: dict(job_id=JOB_ID),
    m.PlaceActor: dict(spec=shaped(m.ActorSpec), restarts=integer()),
    m.ActorPlaced: dict(actor_id=ident(), restarts=integer(), worker_id=ident(), address=address),
    m.ActorReady: dict(actor_id=ident(), restarts=integer(), worker_id=ident(), address=address,
                       error=optional(blob)),
    m.ReleaseActor: dict(actor_id=ident()),
    m.NodeResources: dict(available=RESOURCES, pending=integer()),
    m.ClusterView: dict(nodes=sequence(anything)),
    m.NodeHeartbeat: dict(),
    m.NodeDied: dict(node_id=ident(), address=address, why=text(),
                     actors=sequence(address, types=(tuple,))),
    m.WorkerDied: dict(worker_id=ident(), address=address, how=text(), on_purpose=flag),
    m.PlacementGroupSpec: dict(group_id=ident(), bundles=sequence(RESOURCES, MAX_ITEMS, (tuple,)),
                               strategy=one_of("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"),
                               name=NAME, namespace=NAME, detached=flag, job_id=JOB_ID),
    m.CreatePlacementGroup: dict(req=REQ, spec=shaped(m.PlacementGroupSpec)),
    m.RemovePlacementGroup: dict(req=REQ, group_id=ident()),
    m.GetPlacementGroup: dict(req=REQ, group_id=optional(ident()), name=optional(NAME),
                              namespace=optional(NAME)),
    m.BundlesPrepared: dict(group_id=ident()),
    m.PrepareBundles: dict(group_id=ident(), bundles=mapping(integer(0, MAX_ITEMS), RESOURCES)),
    m.CommitBundles: dict(group_id=ident()),
    m.ReturnBundles: dict(group_id=ident(), removed=flag),
    m.KvGet: dict(req=REQ, key=KEY),
    m.KvPut: dict(req=REQ, key=KEY, value=blob, overwrite=flag),
    m.KvDelete: dict(req=REQ, key=KEY),
    m.KvKeys: dict(req=REQ, prefix=bytes_of(MAX_KEY)),
}

_COMPILED = {cls: tuple(spec.get(f, anything) for f in cls._fields) for cls, spec in SPECS.items()}


def problem(msg: Any) -> str | None:
    """What is wrong with a message of a type in SPECS ("Type.field must be ..."), or None;
    None also for types SPECS does not know (the caller decides what to do with those)."""
    checks = _COMPILED.get(type(msg))
    if checks is None:
        return None
    name = type(msg).__name__
    if len(msg) != len(checks):  # possible only for a tuple built by hand, not by the class
        return f"{name} has {len(msg)} fields, not {len(checks)}"
    for field, check, value in zip(type(msg)._fields, checks, msg):
        why = check(value)
        if why is not None:
            return _at(f"{name}.{field}", why)
    return None
