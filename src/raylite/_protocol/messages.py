"""The one message vocabulary spoken between raylite processes.

Every message is a NamedTuple (immutable, typed, cheap to pickle), and every
receiver dispatches on `type(msg)`, never on an op string (rpc.Endpoint.deliver).
REPLIES, at the end, names the reply type of every request type: both carry the
request's id in their first field, `req` (the envelope: rpc.py says why it is a
field and not a wrapper). Every other message is one-way and carries no id.

    driver/worker ──RegisterClient──► node daemon ◄──RegisterWorker── worker
    owner ──RequestLease──► daemon ──LeaseGranted──► owner ──PushTask──► worker
          (LeaseGranted(retry_at): ask that node's daemon, RequestLease(spilled=True))
    daemon ──NodeResources──► GCS ──ClusterView──► every daemon (where requests may spill)
    worker ──TaskDone──► owner          (the daemon is not on the data path)
    worker ──StreamItem──► owner        (a generator's values, before its TaskDone:
                                         messages_streams.py)
    borrower ──GetObject──► owner ──ObjectValue──► borrower
    daemon ──CreateActor, GetActorInfo, RegisterJob...──► GCS ──PlaceActor──► daemon
    client ──GetState──► daemon ──GetState──► its drivers and workers ──StateReply──► daemon
           ◄──StateReply(merged records)──
"""
# No `from __future__ import annotations` in the message modules: typing.NamedTuple compiles
# every string annotation (a ForwardRef each), which made importing them take twice as long.
from typing import Any, NamedTuple

from .._core.records import KINDS
from .messages_observe import (  # noqa: F401  (task events and metrics: part of it too)
    TaskEvents, GetTaskEvents, TaskEventsReply, ReportMetrics, GetMetrics, MetricsReply)
from .messages_transfer import (  # noqa: F401  (objects between nodes: part of it too)
    PullObject, ObjectPulled, ReadObject, ObjectChunk, GetTransferStats,
    TransferStats, ObjectCopied, DropCopies)
from .messages_groups import (  # noqa: F401  (placement groups: part of this vocabulary)
    PlacementGroupSpec, CreatePlacementGroup, PlacementGroupCreated, RemovePlacementGroup,
    GetPlacementGroup, PlacementGroupInfo, PrepareBundles, BundlesPrepared, CommitBundles,
    ReturnBundles)
from .messages_health import NodeHeartbeat, NodeDied  # noqa: F401  (node health: part of it too)


# -- registration ------------------------------------------------------------
class RegisterClient(NamedTuple):
    """A driver (job) or a worker's core worker connects to its node daemon."""
    req: int
    kind: str                  # "driver" | "worker"
    pid: int
    address: str               # where this process serves owner requests
    namespace: str | None
    job_id: bytes | None       # workers: the job they currently serve (None when idle)
    worker_id: bytes | None
    env_vars: dict | None = None


class ClientRegistered(NamedTuple):
    req: int
    job_id: bytes
    node_id: bytes
    namespace: str
    session_dir: str


class RegisterWorker(NamedTuple):
    """A freshly forked worker announces itself to the daemon that asked for it."""
    worker_id: bytes
    pid: int
    address: str


class RegisterNode(NamedTuple):
    """A node daemon joins the head (the multi-node join protocol)."""
    req: int
    node_id: bytes
    address: str               # where the other nodes and drivers reach its daemon
    resources: dict
    hostname: str
    labels: dict = {}  # never mutated


class NodeRegistered(NamedTuple):
    req: int
    ok: bool
    error: str | None = None
    heartbeat_s: float = 0.0   # send a NodeHeartbeat when silent this long (0: never)


# -- leases and tasks --------------------------------------------------------
class RequestLease(NamedTuple):
    req: int
    demand: dict
    name: str                  # for infeasibility warnings
    strategy: tuple = ()       # () default | ("SPREAD",) | ("NODE", node id, soft) (scheduler.py)
    spilled: bool = False      # another node sent the owner here: grant here or queue, never spill
    env: dict | None = None    # the resolved runtime_env its worker needs (_runtime_env)


class LeaseGranted(NamedTuple):
    """A lease on a worker of this node; or, with `retry_at`, no lease: ask the daemon at
    that address instead (spillback); or, with `error`, no node can ever run it."""
    req: int
    lease_id: bytes
    worker_id: bytes
    address: str
    gpu_ids: tuple
    retry_at: str = ""
    error: str | None = None
    refused: str | None = None  # never grantable, and why (its placement group was removed)


class ReturnLease(NamedTuple):
    lease_id: bytes
    kill_worker: bool = False


class ReturnIdleLeases(NamedTuple):
    """The daemon asks owners to give back leases they are not using."""


class WorkerBlocked(NamedTuple):
    """A worker's task waits in get(): its CPUs go back to the pool meanwhile."""
    blocked: bool


class GetWorkerExit(NamedTuple):
    """Owner -> daemon: how did the worker at `address` die? (asked when a task's worker
    connection dropped; answered once the daemon knows, or with "" when it cannot tell)"""
    req: int
    address: str


class WorkerExit(NamedTuple):
    req: int
    reason: str                # "killed by SIGKILL", "exited with code 3", ... or ""


class PushTask(NamedTuple):
    task_id: bytes
    function_id: bytes
    function: bytes | None     # the pickled function, sent once per connection
    args: bytes                # pickled (args, kwargs)
    inlined: dict              # object id -> serialized value, for top-level ref args
    return_ids: tuple
    name: str
    job_id: bytes
    namespace: str
    env_vars: dict | None
    gpu_ids: tuple
    resources: dict
    owner: str
    max_calls: int = 0         # the worker exits after this many runs of the function (0: never)
    sys_path: tuple = ()       # sent with the function: where its modules are importable
    placement: tuple | None = None  # (group id, bundle index, capture child tasks) in a group
    attempt: int = 0           # 0 for the first try, +1 per retry
    task_events: bool = False  # the worker records when it runs it (enable_task_events)
    stream: int | None = None  # a streaming generator: its backpressure (-1: none); messages_streams.py
    given_env: dict | None = None  # its runtime_env as given, for get_runtime_context()
    opened: tuple | None = None  # (its opening time, parent task id or None): with task events,
                               # a run that returns is reported whole by its worker
                               # (_core/whole_tasks.py), not by its owner


class PushActorTask(NamedTuple):
    task_id: bytes
    actor_id: bytes
    method: str
    args: bytes
    inlined: dict
    return_ids: tuple
    owner: str
    group: str | None = None   # the method's concurrency group
    attempt: int = 0
    task_events: bool = False
    stream: int | None = None  # as PushTask.stream


class TaskDone(NamedTuple):
    task_id: bytes
    results: tuple             # serialized values, one per return id
    error: bytes | None        # pickled exception when the task failed
    retryable: bool            # the error is the user's (retry_exceptions may apply)
    ran: tuple | None = None   # with task events, the run's (start, end), and who ran it
                               # (node id hex, worker id hex, pid, address) the first time
                               # on a connection; its owner tells the GCS


class CancelTask(NamedTuple):
    task_id: bytes
    force: bool


# -- objects -----------------------------------------------------------------
class GetObject(NamedTuple):
    req: int
    object_id: bytes


class ObjectValue(NamedTuple):
    req: int
    data: bytes | None
    error: bytes | None


# -- actors ------------------------------------------------------------------
class ActorSpec(NamedTuple):
    actor_id: bytes
    class_id: bytes
    cls: bytes                 # pickled class
    meta: Any                  # base.ActorMeta
    args: bytes
    inlined: dict
    owner: str
    job_id: bytes
    namespace: str
    name: str | None
    detached: bool
    demand: dict
    placement: dict
    max_restarts: int
    max_concurrency: int | None
    env_vars: dict | None
    max_task_retries: int
    concurrency_groups: dict | None = None
    sys_path: tuple = ()
    strategy: tuple = ()       # as RequestLease.strategy: where the GCS may place it
    placement_group: tuple | None = None  # (group id, bundle index, capture child tasks)
    runtime_env: dict | None = None   # resolved (_runtime_env): the worker it needs
    task_events: bool = False  # its worker records __init__'s run (the creation task's events)
    given_env: dict | None = None     # its runtime_env as given, for get_runtime_context()


class CreateActor(NamedTuple):
    req: int
    spec: ActorSpec
    get_if_exists: bool


class ActorCreated(NamedTuple):
    req: int
    actor_id: bytes | None
    meta: Any
    error: str | None


class StartActor(NamedTuple):
    """Daemon -> worker: become this actor."""
    spec: ActorSpec
    gpu_ids: tuple
    restarts: int


class ActorStarted(NamedTuple):
    """Worker -> daemon: the actor's __init__ finished (error is its pickled failure)."""
    actor_id: bytes
    error: bytes | None


class GetActorInfo(NamedTuple):
    req: int
    actor_id: bytes | None
    name: str | None
    namespace: str | None
    wait: bool                 # reply only once the actor is alive or dead


class ActorInfo(NamedTuple):
    req: int
    actor_id: bytes | None
    state: str                 # PENDING | ALIVE | RESTARTING | DEAD | UNKNOWN
    address: str | None
    meta: Any
    death: bytes | None        # pickled error explaining the death
    max_task_retries: int = 0


class KillActor(NamedTuple):
    actor_id: bytes
    no_restart: bool
    reason: str = "it was killed by raylite.kill()"


# -- the GCS: node daemons <-> the head's GCS service (_gcs/service.py) --------
# A node daemon forwards its clients' CreateActor, GetActorInfo, KillActor and KV
# requests as they are; the messages below are the GCS's own with the nodes.
class RegisterJob(NamedTuple):
    """Node -> GCS: a driver connected to this node; the GCS names its job."""
    req: int
    namespace: str | None      # None: an anonymous namespace of its own
    pid: int
    address: str               # the driver's owner address


class JobRegistered(NamedTuple):
    req: int
    job_id: bytes
    namespace: str


class JobFinished(NamedTuple):
    """Node -> GCS: the job's driver disconnected; its non-detached actors end."""
    job_id: bytes


class PlaceActor(NamedTuple):
    """GCS -> node: start incarnation `restarts` of this actor on one of your workers."""
    spec: ActorSpec
    restarts: int


class ActorPlaced(NamedTuple):
    """Node -> GCS: that incarnation runs its __init__ on this worker."""
    actor_id: bytes
    restarts: int
    worker_id: bytes
    address: str


class ActorReady(NamedTuple):
    """Node -> GCS: the worker's ActorStarted (error: its pickled __init__ failure)."""
    actor_id: bytes
    restarts: int
    worker_id: bytes
    address: str
    error: bytes | None


class ReleaseActor(NamedTuple):
    """GCS -> node: the actor died or restarts: stop placing it here, end its worker."""
    actor_id: bytes


class WorkerDied(NamedTuple):
    """Node -> GCS: a worker's connection closed (fate sharing, actor deaths)."""
    worker_id: bytes
    address: str
    how: str                   # its exit ("killed by SIGKILL", ...), or "" when unknown
    on_purpose: bool           # the daemon ended it (a lease returned with kill, a release)


class NodeResources(NamedTuple):
    """Node -> GCS: what is free on this node now (sent on change, at a bounded rate)."""
    available: dict
    pending: int               # lease requests queued here


class ClusterView(NamedTuple):
    """GCS -> every node: each live node as (node id, address, total, available, labels),
    for spilling lease requests to a node that fits (scheduler.py)."""
    nodes: tuple


class KvGet(NamedTuple):
    req: int
    key: bytes


class KvPut(NamedTuple):
    req: int
    key: bytes
    value: bytes
    overwrite: bool


class KvDelete(NamedTuple):
    req: int
    key: bytes


class KvKeys(NamedTuple):
    req: int
    prefix: bytes


class KvReply(NamedTuple):
    req: int
    ok: bool                   # found (get), written (put), deleted (delete)
    value: bytes | None = None
    keys: tuple = ()


# -- state and logs ----------------------------------------------------------
class GetState(NamedTuple):
    """What the cluster holds, as frozen records (_core/records.py). A client asks its node
    daemon, which answers for its cores (GCS tables, scheduler, worker table, store) and,
    with `owners`, asks every connected driver and worker for its tasks and objects (the
    same message, answered with what that process owns); one that does not answer within
    the daemon's bound is named in `missing`. Only the `kinds` asked for come back."""
    req: int
    kinds: tuple = KINDS
    owners: bool = True


class StateReply(NamedTuple):
    req: int
    snapshot: Any              # records.StateSnapshot
    missing: tuple = ()        # addresses of the owners that did not answer in time


class LogLines(NamedTuple):
    job_id: bytes
    prefix: str
    lines: tuple
    stderr: bool


class ProgressUpdate(NamedTuple):
    """A progress bar's state (raylite.experimental.tqdm_ray), from the process that updates
    it to its job's driver, which draws it: on the LogLines path (worker ─► node daemon ─►
    driver), so bars and worker output reach the driver's terminal through one writer."""
    job_id: bytes
    bar_id: str                # "<pid>-<n>": unique in the job
    desc: str
    n: int
    total: int | None          # None: unknown
    position: int | None       # the bar's line among the job's bars, if asked for
    pid: int
    closed: bool


class Warning(NamedTuple):
    text: str


class Shutdown(NamedTuple):
    """A client asks the daemon it started to stop the cluster."""
    req: int


class Ack(NamedTuple):
    req: int
    error: str | None = None


# -- the object store ------------------------------------------------------
class AllocObject(NamedTuple):
    """Reserve room in the node's shared memory (the daemon may spill first)."""
    req: int
    object_id: bytes
    size: int
    owner: str


class AllocReply(NamedTuple):
    req: int
    error: str | None
    reuse: bool              # the segment exists already (recycled): write into it, then truncate
    to_disk: bool = False    # larger than shared memory: write it to the spill directory
    out_of_disk: bool = False  # the error is OutOfDiskError (else ObjectStoreFullError)
    at: str = ""             # this node daemon's address: where other nodes pull the object from


class FreeObjects(NamedTuple):
    object_ids: tuple
    recyclable: tuple = ()   # ids no process can still be reading: their segments may be reused


class AddBorrower(NamedTuple):
    """Borrower -> owner: this process now holds a reference to the object."""
    object_id: bytes


class RemoveBorrower(NamedTuple):
    object_id: bytes


# -- requests and their replies: the envelope (rpc.py) ---------------------------
REPLIES: dict[type, type] = {
    RegisterClient: ClientRegistered,
    RegisterNode: NodeRegistered,
    RequestLease: LeaseGranted,
    GetWorkerExit: WorkerExit,
    GetObject: ObjectValue,
    CreateActor: ActorCreated,
    GetActorInfo: ActorInfo,
    GetState: StateReply,
    GetMetrics: MetricsReply,
    GetTaskEvents: TaskEventsReply,
    Shutdown: Ack,
    AllocObject: AllocReply,
    PullObject: ObjectPulled,
    ReadObject: ObjectChunk,
    GetTransferStats: TransferStats,
    RegisterJob: JobRegistered,
    KvGet: KvReply,
    KvPut: KvReply,
    KvDelete: KvReply,
    KvKeys: KvReply,
    CreatePlacementGroup: PlacementGroupCreated,
    RemovePlacementGroup: Ack,
    GetPlacementGroup: PlacementGroupInfo,
}
