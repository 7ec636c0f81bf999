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

import math
import operator
from itertools import compress
from typing import Any, Callable

from .._core import metrics
from .._core import records as rec
from .._core import task_events as tev
from .._core import whole_tasks as whole
from .._runtime_env.validate import check_resolved
from . import messages as m

Check = Callable[[Any], "str | None"]

ID = 16                  # bytes in a task, object, actor, worker, node or lease id
MAX_INT = 2**63 - 1
MAX_TEXT = 2**16         # characters in a name, namespace, address, hostname or reason
MAX_ITEMS = 2**16        # entries in a resource dict, an id tuple, env vars, sys.path
MAX_AMOUNT = 1e18        # a resource amount (bytes of memory are the largest)


def _at(where: str, why: str) -> str:
    """`why` said of the part of a value at `where` ("[3]", ".name", "Type.field")."""
    return where + (why if why[0] in " [.:" else " " + why)


def _show(v: Any) -> str:
    try:
        text = repr(v)
    except Exception:  # a tuple built by hand with too few fields for its class's repr
        text = f"of {len(v)} items" if isinstance(v, tuple) else "(no repr)"
    return f"{type(v).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


# -- checks ---------------------------------------------------------------------
def integer(lo: int = 0, hi: int = MAX_INT) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is int and lo <= v <= hi:
            return None
        return f"must be an integer from {lo} to {hi}, not {_show(v)}"
    return check


def amount(v: Any) -> str | None:
    t = type(v)
    if (t is float and math.isfinite(v) or t is int) and 0 <= v <= MAX_AMOUNT:
        return None
    return f"must be a finite number from 0 to {MAX_AMOUNT:g}, not {_show(v)}"


def ident(n: int = ID) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is bytes and len(v) == n:
            return None
        return f"must be a {n}-byte id, not {_show(v)}"
    return check


def blob(v: Any) -> str | None:
    return None if type(v) is bytes else f"must be bytes, not {_show(v)}"


def bytes_of(limit: int, empty: bool = True) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is bytes and len(v) <= limit and (empty or v):
            return None
        return f"must be{'' if empty else ' non-empty'} bytes of at most {limit}, not {_show(v)}"
    return check


def text(limit: int = MAX_TEXT, empty: bool = True) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is str and len(v) <= limit and (empty or v):
            return None
        return f"must be a{'' if empty else ' non-empty'} string of at most {limit} characters, not {_show(v)}"
    return check


def address(v: Any) -> str | None:
    if type(v) is str and len(v) <= 300:
        host, _, port = v.rpartition(":")
        if host and port.isascii() and port.isdigit() and int(port) <= 65535:
            return None
    return f"must be a \"host:port\" address, not {_show(v)}"


def optional_address(v: Any) -> str | None:
    return None if v == "" and type(v) is str else address(v)


def flag(v: Any) -> str | None:
    return None if type(v) is bool else f"must be True or False, not {_show(v)}"


def anything(v: Any) -> None:
    return None


def optional(check: Check) -> Check:
    def opt(v: Any) -> str | None:
        return None if v is None else check(v)
    return opt


def one_of(*values: Any) -> Check:
    def check(v: Any) -> str | None:
        return None if type(v) is str and v in values else f"must be one of {values}, not {_show(v)}"
    return check


def sequence(item: Check, limit: int = MAX_ITEMS, types: tuple = (tuple, list)) -> Check:
    def check(v: Any) -> str | None:
        if type(v) not in types or len(v) > limit:
            return f"must be a {' or '.join(t.__name__ for t in types)} of at most {limit} items, not {_show(v)}"
        for i, x in enumerate(v):
            why = item(x)
            if why is not None:
                return _at(f"[{i}]", why)
        return None
    return check


def mapping(key: Check, value: Check, limit: int = MAX_ITEMS) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is not dict or len(v) > limit:
            return f"must be a dict of at most {limit} items, not {_show(v)}"
        for k, x in v.items():
            why = key(k)
            if why is not None:
                return _at(" key", why)
            why = value(x)
            if why is not None:
                return _at(f"[{k!r:.40}]", why)
        return None
    return check


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


MAX_EVENTS = 2**20       # events in one TaskEvents batch
_SCALARS = (str, int, float, bool, type(None))


def _event_info(state: str, info: Any) -> bool:
    t = type(info)
    if state in (tev.PENDING_ARGS, tev.PENDING_NODE, tev.PENDING_ACTOR):
        return info is None or (t is tuple and len(info) == 4 and type(info[0]) is bytes
                                and len(info[0]) <= ID and type(info[1]) is str
                                and len(info[1]) <= MAX_TEXT
                                and (info[2] is None or type(info[2]) is bytes and len(info[2]) == ID)
                                and (info[3] is None or type(info[3]) is bytes and len(info[3]) == ID))
    if state == tev.RUNNING or state == tev.RAN or state == tev.FINISHED:
        return t is tuple and len(info) == (2 if state == tev.RUNNING else 3) \
            and type(info[0]) is bytes and len(info[0]) <= ID \
            and type(info[1]) is str and len(info[1]) <= MAX_TEXT \
            and (state == tev.RUNNING or type(info[2]) is float and math.isfinite(info[2]))
    if state == tev.FAILED:
        return t is tuple and len(info) == 2 and all(type(x) is str and len(x) <= MAX_TEXT
                                                     for x in info)
    if state == tev.DONE or state == tev.RUN:
        return t is tuple and len(info) == 2 and type(info[0]) is float \
            and math.isfinite(info[0]) and _who_ok(info[1])
    return info is None


def _who_ok(who: Any) -> bool:
    """Who ran a task, as its worker says: (node id hex, worker id hex, pid, address), or
    None (not known)."""
    return who is None or type(who) is tuple and len(who) == 4 and type(who[0]) is str \
        and len(who[0]) == 2 * ID and type(who[1]) is str and len(who[1]) == 2 * ID \
        and type(who[2]) is int and 0 < who[2] <= MAX_INT \
        and type(who[3]) is str and len(who[3]) <= MAX_TEXT


def task_events(v: Any) -> str | None:
    """A batch of task events: (task id, attempt, state, time, info) each, info as the state
    wants (_core/task_events.py). A good batch passes the column checks of _batch_ok; any
    other is looked at an event at a time, which names the first bad one."""
    if type(v) is not tuple or len(v) > MAX_EVENTS:
        return f"must be a tuple of at most {MAX_EVENTS} events, not {_show(v)}"
    if _batch_ok(v):
        return None
    states, isfinite = _STATES, math.isfinite
    seen = set()   # ids of info tuples checked already: an owner shares one per function
    for i, e in enumerate(v):
        if not (type(e) is tuple and len(e) == 5 and type(e[0]) is bytes and len(e[0]) == ID
                and type(e[1]) is int and 0 <= e[1] <= MAX_INT and type(e[2]) is str
                and e[2] in states and type(e[3]) is float and isfinite(e[3])
                and (id(e[4]) in seen or _event_info(e[2], e[4]))):
            return f"[{i}] must be a task event (id, attempt, state, time, info), not {_show(e)}"
        if type(e[4]) is tuple and e[2] in _SHARED:
            seen.add(id(e[4]))
    return None


_STATES = frozenset(tev.STATES)
_SHARED = frozenset((tev.PENDING_ARGS, tev.PENDING_NODE, tev.PENDING_ACTOR))  # same info shape
_TUPLE, _BYTES, _INT, _STR, _FLOAT, _TWO, _FIVE, _THREE, _ID = \
    {tuple}, {bytes}, {int}, {str}, {float}, {2}, {5}, {3}, {ID}


def _finite(floats: tuple) -> bool:
    return set(map(type, floats)) == _FLOAT and math.isfinite(math.fsum(floats))


def _ends_ok(infos: tuple) -> bool:
    """The infos of FINISHED and RAN events, (job id, name, start) each, as columns."""
    if set(map(type, infos)) != _TUPLE or set(map(len, infos)) != _THREE:
        return False
    jobs, names, starts = zip(*infos)
    return set(map(type, jobs)) == _BYTES and max(map(len, jobs)) <= ID \
        and set(map(type, names)) == _STR and max(map(len, names)) <= MAX_TEXT \
        and _finite(starts)


def _unique_ok(check: Any, values: Any) -> bool:
    """check() of each distinct object of `values` (an owner shares one per function, or
    per worker)."""
    if values and whole.one_object(values):  # one object n times: checked once
        return check(values[0])
    return all(map(check, dict(zip(map(id, values), values)).values()))


def _dones_ok(infos: tuple) -> bool:
    """The infos of DONE and RUN events, (start, who), as columns."""
    if set(map(type, infos)) != _TUPLE or set(map(len, infos)) != _TWO:
        return False
    starts, whos = zip(*infos)
    return _finite(starts) and _unique_ok(_who_ok, whos)


def _opening_ok(info: Any) -> bool:
    return _event_info(tev.PENDING_NODE, info)


_COLUMNS = {tev.FINISHED: _ends_ok, tev.RAN: _ends_ok, tev.DONE: _dones_ok, tev.RUN: _dones_ok}
# ... the kinds whose infos are one per event: checked as columns


def whole_tasks(v: Any) -> str | None:
    """An owner's whole tasks, in the wire form of _core/whole_tasks.py: its shape and times
    checked there, the values of its tuple columns here (a kind or who shared by many
    tasks, once)."""
    if v == ():
        return None
    try:
        if whole.shaped(v, MAX_EVENTS) and set(map(type, v[1])) == _INT and min(v[1]) >= 0 \
                and max(v[1]) <= MAX_INT and set(v[2]) <= _SHARED \
                and _unique_ok(_kind_ok, v[4]) and _unique_ok(_who_ok, v[7]):
            return None
    except (TypeError, ValueError, OverflowError):  # unhashable states, ...
        pass
    return f"must be whole tasks (ids, attempts, states, opening times, kinds, ends, starts, " \
           f"who, as _core/whole_tasks.py packs them), not {_show(v)}"


def _kind_ok(kind: Any) -> bool:
    """What a whole task is: (job id, name, actor id, class name, parent task id)."""
    return type(kind) is tuple and len(kind) == 5 and type(kind[0]) is bytes \
        and len(kind[0]) <= ID and type(kind[1]) is str and len(kind[1]) <= MAX_TEXT \
        and (kind[2] is None or type(kind[2]) is bytes and len(kind[2]) == ID) \
        and type(kind[3]) is str and len(kind[3]) <= MAX_TEXT \
        and (kind[4] is None or type(kind[4]) is bytes and len(kind[4]) == ID)


def _batch_ok(v: tuple) -> bool:
    """True when every event of a non-empty batch is certainly good, checked a column at a
    time (a set of types or lengths per column, at C speed: a batch of thousands costs a
    tenth of the event-at-a-time check); False means "look closer", never "bad". The
    info tuples of an owner's events (one per function) are checked once each; a worker's
    (job id, name, start) of FINISHED and RAN events, as columns too."""
    try:
        if set(map(type, v)) != _TUPLE or set(map(len, v)) != _FIVE:
            return False
        ids, attempts, states, times, infos = zip(*v)
        kinds = set(states)
        if set(map(type, ids)) != _BYTES or set(map(len, ids)) != _ID \
                or set(map(type, attempts)) != _INT or min(attempts) < 0 \
                or max(attempts) > MAX_INT or set(map(type, states)) != _STR \
                or not kinds <= _STATES or not _finite(times):
            return False
        if kinds <= _SHARED:  # an owner's: its infos are one tuple per function
            return _unique_ok(_opening_ok, infos)
        if len(kinds) == 1 and states[0] in _COLUMNS:
            return _COLUMNS[states[0]](infos)
        columns = kinds.intersection(_COLUMNS)
        for kind in columns:
            if not _COLUMNS[kind](tuple(compress(infos, map(kind.__eq__, states)))):
                return False
        if len(columns) == len(kinds):
            return True
        rest = compress(zip(states, infos),
                        map(operator.not_, map(_COLUMNS.__contains__, states)))
        unique = {(s, id(i)): (s, i) for s, i in rest}
        return all(_event_info(s, i) for s, i in unique.values())
    except (TypeError, ValueError, OverflowError):  # an unhashable state, an empty batch...
        return False


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
                       worker_id=optional(ident()), pid=integer(), whole=whole_tasks),
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
