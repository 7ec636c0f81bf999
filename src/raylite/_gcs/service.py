"""The GCS service: the cluster's one GCS, an I/O shell around the pure tables.

    head node daemon ──inproc──┐                       ┌── GcsTables (tables.py, pure):
    joined node daemon ──tcp───┼─► one reader thread ──┤   jobs, nodes, actors, names, KV,
    joined node daemon ──tcp───┘   per node ──► rpc    │   written through to a Storage
                                   Endpoint.deliver ──►├── placement.pick_node (pure)
                                   (validated) ──► handler, under self._lock
                                                       └── waiters: GetActorInfo(wait) per actor
          queued replies and notices ◄── per-node queue, sent in order once the lock is released

Who talks to it: only node daemons. Each daemon registers (RegisterNode) on one
connection and forwards its own clients' GCS requests over it: drivers' jobs
(RegisterJob, JobFinished), CreateActor, GetActorInfo, KillActor, KV, cluster state;
its workers' actor lifecycle (ActorPlaced, ActorReady, WorkerDied); and every process's
metric reports (ReportMetrics, one-way), kept in the pure MetricsTable (metrics.py) and
read by GetMetrics. The GCS
answers each request on the connection it came from, paired by the request's id
(rpc.py); the node relays the answer to its client.

Actor placement is the GCS's: a new actor (and each restart) is given to a node
(placement.pick_node: by its scheduling strategy; by default the head when it fits,
else a node whose totals fit) by
PlaceActor(spec, incarnation); that daemon's scheduler queues it until a worker
and resources are free, starts it and reports ActorPlaced, then ActorReady once
__init__ ran. A death (KillActor, the worker's exit, the owner's exit, the node
leaving) is recorded, and the node is told ReleaseActor (stop placing it, end
its worker); a restart is placed again. Reports about an older incarnation are
ignored (tables.py).

Placement groups: the tables' `groups` (groups.py, pure) decide, this service carries
out: PrepareBundles, CommitBundles and ReturnBundles to the nodes chosen, BundlesPrepared
back; an actor in a group is placed on its bundle's node once the group is CREATED (it
waits until then) and ends when the group lets go of its bundles.

Health (health_service.py, health.py): a joined node silent for the timeout is marked dead
as if its link had closed; the other nodes hear NodeDied and tell their clients.

Fate sharing: an actor's non-detached children die with the process that created
them (WorkerDied names its address; a dying actor's worker counts at once), a
driver's non-detached actors with its job (JobFinished, or its node leaving).

Where it runs, measured. The head daemon's process composes this service
(_node/main.py) and talks to it over a direct in-process pipe (inproc.direct_pipe:
the GCS handles the head's messages on the sending thread); joined nodes reach it
through the head's listener (channel b"s", handed over by the head daemon). On the
2-core dev VM under load (medians of alternating runs; `raylite.get_actor` is one
GCS request, 2000 in a row; creating an actor is a request, a placement, a worker's
__init__ and a first call, 30 in a row):

    where the GCS is                           get_actor      an actor + first call
    in the head daemon (before this service)   160-180 us     5.5-7.3 ms
    the head's process, direct pipe            200-260 us     5.3-7.8 ms
    the head's process, queues and threads     500-900 us     6.5-8.3 ms
    its own process, over a Unix socket        600-1700 us    7.0-7.9 ms

Each thread wake-up on the way costs tens of microseconds, far more on a loaded
machine; and a process of its own would add 11 MB (PSS; 21 MB RSS) to an idle
cluster. So the GCS is a component of the head's process, on the direct pipe.

Sends never happen under the lock: a handler queues each message on its node's
queue in order, and the thread that ran it sends what is queued once the lock is
released. One thread sends to a node at a time, so a node sees messages in the
order they were decided; a thread that finds another sending to that node leaves
its messages to it and goes on. So no thread ever waits for another's send, and
the direct link to the head daemon (whose handlers take the node's lock) cannot
deadlock: the node's lock is taken before the GCS's, never after. A joined node
that stops reading its link holds up only the thread sending to it.
"""
from __future__ import annotations

import functools
import logging
import threading
from collections import deque
from typing import Any

from .. import _ids
from .._core.actor_attempts import ACTOR_DIED, UNSCHEDULABLE, WORKER_DIED
from .._core.records import KINDS
from .._core.task_events import MAX_PER_JOB, TaskEventTable
from .._actor_ends import ended_error, owner_exited
from .._protocol import messages as m
from .._protocol import validate
from .._protocol.rpc import Endpoint
from .._serialization import dumps_error
from ..exceptions import ActorDiedError, ActorUnschedulableError
from .actor_events import CreationEvents
from .group_service import GroupHandlers
from .health import HEALTH_CHECK_TIMEOUT_S
from .health_service import LEFT as _LEFT, HealthHandlers
from .metrics import MetricsTable
from .placement import Unplaceable, pick_node
from .storage import MemoryStorage, Storage
from .store_service import StoreHandlers
from .tables import GcsTables

log = logging.getLogger("raylite.gcs")

_WAITING = ("PENDING", "RESTARTING")


class _Node:
    """One node daemon's connection: who it is, and what is queued for it."""

    __slots__ = ("conn", "node_id", "queue", "mutex", "dirty")

    def __init__(self, conn: Any):
        self.conn = conn
        self.node_id: bytes | None = None   # set by its RegisterNode
        self.queue: deque = deque()          # messages decided, not yet sent
        self.mutex = threading.Lock()        # one sender at a time: order kept
        self.dirty = False


class GcsService(GroupHandlers, StoreHandlers, HealthHandlers, CreationEvents):
    def __init__(self, storage: Storage | None = None, head_node_id: bytes | None = None,
                 task_events_per_job: int = MAX_PER_JOB,
                 health_timeout_s: float = HEALTH_CHECK_TIMEOUT_S, clock: Any = None):
        self.tables = GcsTables(storage if storage is not None else MemoryStorage())
        self.metrics = MetricsTable()
        self.task_events = TaskEventTable(task_events_per_job)  # not stored: history, bounded
        self.head_node_id = head_node_id
        self._lock = threading.Lock()
        self._dirty: list[_Node] = []
        self._nodes: dict[Any, _Node] = {}          # connection -> its node
        self._by_id: dict[bytes, _Node] = {}        # registered node id -> its node
        self._waiters: dict[bytes, list] = {}       # actor id -> [(conn, GetActorInfo)]
        self._unplaced: list[bytes] = []            # actors waiting for any node to be alive
        self._viewed = False                        # a ClusterView went out since 2 nodes lived
        self._spread = 0                            # SPREAD actors: the round-robin position
        self._in_group: dict[bytes, list] = {}      # group id -> actors waiting for it
        self._listeners: list = []
        self._init_health(health_timeout_s, clock)
        self.stopped = False
        self.ep = Endpoint(send=self._queue, validator=validate.problem, log=log)
        for msg_type, handler in _HANDLERS.items():
            self.ep.on(msg_type, functools.partial(self._locked, handler))

    # -- connections -------------------------------------------------------------
    def serve(self, listener: Any) -> None:
        """Accepts node connections from `listener` (in-process or TCP) on a thread."""
        self._listeners.append(listener)
        self._serve_health()
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True,
                         name="raylite-gcs-accept").start()

    def _accept_loop(self, listener: Any) -> None:
        while not self.stopped:
            try:
                conn = listener.accept()
            except (OSError, ValueError):  # closed: we are stopping
                return
            self.adopt(conn)

    def attach(self, conn: Any) -> None:
        """Books a node connection whose messages someone else delivers (deliver())."""
        with self._lock:
            self._nodes[conn] = _Node(conn)

    def adopt(self, conn: Any, checked: bool = False) -> None:
        """Serves a node connection: books it and reads it on a thread of its own, or, for
        a direct in-process one, handles each message on its sender's thread (`checked`:
        the head daemon's own link, whose messages that daemon validated or built: they
        are not checked twice)."""
        self.attach(conn)
        self._serve_health()
        if hasattr(conn, "handle_with"):
            conn.handle_with(self.ep.deliver_checked if checked else self.ep.deliver,
                             self.lost)
            return
        threading.Thread(target=self._read_loop, args=(conn,), daemon=True,
                         name="raylite-gcs-node").start()

    def _read_loop(self, conn: Any) -> None:
        try:
            while True:
                for msg in conn.recv_some():
                    self.ep.deliver(conn, msg)
        except (EOFError, OSError):
            pass
        except Exception as e:  # garbage on the wire: drop that node, keep the GCS
            log.warning("unreadable message from %s: %s", getattr(conn, "peer", conn), e)
        conn.close()
        self.lost(conn)

    def deliver(self, conn: Any, msg: Any) -> None:
        """Handles one message from a node (what its reader thread does with each)."""
        self.ep.deliver(conn, msg)

    def lost(self, conn: Any) -> None:
        """A node's connection is gone: it leaves the cluster with what ran there."""
        self._locked(GcsService._node_lost, conn, None)

    def stop(self) -> None:
        self.stopped = True
        self._halt.set()
        for listener in self._listeners:
            listener.close()
        with self._lock:
            conns = list(self._nodes)
        for conn in conns:
            conn.close()

    # -- the lock and the queues ------------------------------------------------
    def _locked(self, handler: Any, conn: Any, msg: Any) -> None:
        with self._lock:
            try:
                node = self._nodes.get(conn)
                if node is None:
                    if msg is not None:
                        self.ep.refuse(conn, msg, "the connection is not a node's (or it left)")
                elif msg is not None and node.node_id is None and type(msg) is not m.RegisterNode:
                    self.ep.refuse(conn, msg, "the node has not registered (RegisterNode first)")
                else:
                    if msg is not None and node.node_id is not None:
                        self.health.heard(node.node_id, self.clock())
                    handler(self, node, msg)
            finally:
                dirty, self._dirty = self._dirty, []
                for node in dirty:
                    node.dirty = False
        for node in dirty:
            self._flush(node)

    def _queue(self, conn: Any, msg: Any) -> None:
        """The endpoint's send: queues `msg` for the node (lock held); sent after release."""
        node = self._nodes.get(conn)
        if node is None:
            return  # it left: nothing to tell it
        node.queue.append(msg)
        if not node.dirty:
            node.dirty = True
            self._dirty.append(node)

    def _flush(self, node: _Node) -> None:
        """Sends what is queued for `node`, unless another thread is sending to it: that
        one sends this too (it drains the queue, then looks again once it let go)."""
        q = node.queue
        while q and node.mutex.acquire(False):
            try:
                while q:
                    msg = q.popleft()
                    try:
                        node.conn.send(msg)
                    except OSError:  # gone: its reader sees the close and reports the loss
                        q.clear()
            finally:
                node.mutex.release()

    def _tell(self, node_id: bytes | None, msg: Any) -> bool:
        node = self._by_id.get(node_id) if node_id is not None else None
        if node is None:
            return False
        self._queue(node.conn, msg)
        return True

    # -- nodes and jobs ------------------------------------------------------------
    def _on_register_node(self, node: _Node, msg: m.RegisterNode) -> None:
        known = self.tables.nodes.get(msg.node_id)
        error = None
        if node.node_id is not None:
            error = f"this connection registered node {node.node_id.hex()} already"
        elif known is not None and known.alive:
            error = f"a node with the id {msg.node_id.hex()} is registered already"
        if error is not None:
            self.ep.reply(node.conn, msg, m.NodeRegistered(msg.req, False, error))
            return
        node.node_id = msg.node_id
        self._by_id[msg.node_id] = node
        is_head = msg.node_id == self.head_node_id
        self.tables.add_node(msg.node_id, msg.address, msg.resources, msg.hostname,
                             is_head=is_head, labels=msg.labels)
        # the head's node shares this process: nothing to watch
        heartbeat_s = 0.0 if is_head else self._watch(msg.node_id)
        self.ep.reply(node.conn, msg, m.NodeRegistered(msg.req, True, None, heartbeat_s))
        self._broadcast_view()
        waiting, self._unplaced = self._unplaced, []
        for actor_id in waiting:
            self._place(actor_id)
        self._groups_do(self.tables.groups.retry(self.tables.nodes.values()))

    def _on_node_resources(self, node: _Node, msg: m.NodeResources) -> None:
        if self.tables.node_available(node.node_id, msg.available):
            self._broadcast_view()

    def _broadcast_view(self) -> None:
        """Every node hears what is free on every live node (each reports at a bounded
        rate, so this is bounded too); a lone node needs no view of others."""
        if len(self._by_id) < 2 and not self._viewed:
            return
        self._viewed = len(self._by_id) > 1
        view = m.ClusterView(self.tables.cluster_view())
        for n in self._by_id.values():
            self._queue(n.conn, view)

    def _on_register_job(self, node: _Node, msg: m.RegisterJob) -> None:
        job_id = _ids.random_id(4)
        while job_id in self.tables.jobs:
            job_id = _ids.random_id(4)
        namespace = msg.namespace or f"anonymous-{_ids.random_id(8).hex()}"
        self.tables.add_job(job_id, namespace, msg.pid, node.node_id)
        self.ep.reply(node.conn, msg, m.JobRegistered(msg.req, job_id, namespace))

    def _on_job_finished(self, node: _Node, msg: m.JobFinished) -> None:
        job = self.tables.jobs.get(msg.job_id)
        if job is None or job.node_id != node.node_id:
            self.ep.refuse(node.conn, msg, "no job of that node has that id")
            return
        for actor_id in self.tables.finish_job(msg.job_id):
            self._kill(actor_id, True, "its driver exited")
        self._groups_do(self.tables.groups.job_finished(msg.job_id, self._alive_nodes()))

    def _on_get_state(self, node: _Node, msg: m.GetState) -> None:
        """The GCS's records (nodes, jobs, actors) of the kinds asked; nobody else's."""
        snap = self.tables.state()
        snap = snap._replace(**{k: () for k in KINDS if k not in msg.kinds})
        self.ep.reply(node.conn, msg, m.StateReply(msg.req, snap))

    def _node_lost(self, node: _Node, _: Any, why: str = _LEFT) -> None:
        del self._nodes[node.conn]
        self.ep.lost(node.conn)
        if self.stopped:  # the GCS itself is going: nothing to move anywhere
            return
        for actor_id, waiters in list(self._waiters.items()):
            waiters[:] = [(c, r) for c, r in waiters if c is not node.conn]
            if not waiters:
                del self._waiters[actor_id]
        node_id = node.node_id
        if node_id is None or self._by_id.get(node_id) is not node:
            return
        del self._by_id[node_id]
        self._node_gone(node_id, why)

    # -- actors --------------------------------------------------------------------
    def _on_create_actor(self, node: _Node, msg: m.CreateActor) -> None:
        spec = msg.spec
        actor_id, meta, error = self.tables.register_actor(spec, msg.get_if_exists)
        self.ep.reply(node.conn, msg, m.ActorCreated(msg.req, actor_id, meta, error))
        if error is None and actor_id == spec.actor_id:
            self._place(actor_id)

    def _place(self, actor_id: bytes) -> None:
        entry = self.tables.actors.get(actor_id)
        if entry is None or entry.state == "DEAD":
            return
        if entry.spec.placement_group is not None:
            self._place_in_group(actor_id, entry)
            return
        strategy = entry.spec.strategy
        if strategy == ("SPREAD",):
            self._spread += 1
        node_id = pick_node(self.tables.nodes.values(), entry.spec.placement, self.head_node_id,
                            strategy, self._spread)
        if type(node_id) is Unplaceable:
            death = dumps_error(ActorUnschedulableError(
                f"The actor {entry.spec.meta.class_name} cannot be placed: {node_id.why}."))
            self._actor_died(actor_id, death, False, node_id.why, UNSCHEDULABLE, False)
            self._notify(actor_id)
            return
        if node_id is None or node_id not in self._by_id:
            self._unplaced.append(actor_id)  # placed once a node registers
            return
        self.tables.actor_assigned(actor_id, node_id)
        self._tell(node_id, m.PlaceActor(entry.spec, entry.restarts))

    def _on_actor_placed(self, node: _Node, msg: m.ActorPlaced) -> None:
        self.tables.actor_placed(msg.actor_id, msg.restarts, node.node_id, msg.worker_id,
                                 msg.address)

    def _on_actor_ready(self, node: _Node, msg: m.ActorReady) -> None:
        entry = self.tables.actors.get(msg.actor_id)
        if entry is None or entry.node_id != node.node_id or entry.restarts != msg.restarts:
            return  # an older incarnation's report, or another node's actor
        if msg.error is None:
            self.tables.actor_started(msg.actor_id, msg.worker_id, msg.address, msg.restarts)
        else:  # its __init__ failed: its daemon ended the worker already
            self.tables.actor_died(msg.actor_id, msg.error, may_restart=False,
                                   reason="its __init__ raised")
            self._owner_gone(msg.address, _name(entry))  # what its __init__ created dies too
        self._notify(msg.actor_id)

    def _on_get_actor_info(self, node: _Node, msg: m.GetActorInfo) -> None:
        entry = self.tables.lookup(msg.actor_id, msg.name, msg.namespace)
        if entry is not None and msg.wait and entry.state in _WAITING:
            self._waiters.setdefault(entry.spec.actor_id, []).append((node.conn, msg))
            return
        self.ep.reply(node.conn, msg, _actor_info(msg.req, entry))

    def _on_kill_actor(self, node: _Node, msg: m.KillActor) -> None:
        self._kill(msg.actor_id, msg.no_restart, msg.reason)

    def _on_worker_died(self, node: _Node, msg: m.WorkerDied) -> None:
        hosted = self.tables.actor_on_worker(msg.worker_id)
        if hosted is not None and self.tables.actors[hosted].node_id != node.node_id:
            hosted = None  # not a worker of that node's
        who = "the worker process that created it"
        if hosted is not None:
            who = _name(self.tables.actors[hosted])
            if not msg.on_purpose:
                self._died(hosted, "its worker process exited unexpectedly "
                                   f"({msg.how or 'killed, crashed, or out of memory'})")
        self._owner_gone(msg.address, who)

    def _died(self, actor_id: bytes, why: str, error_type: str = WORKER_DIED) -> None:
        """The actor's process is gone without anyone asking: it restarts if it may."""
        entry = self.tables.actors[actor_id]
        address = entry.worker_address
        death = dumps_error(ActorDiedError(f"The actor {entry.spec.meta.class_name} died: {why}.",
                                           actor_id.hex()))
        if self._actor_died(actor_id, death, True, why, error_type, False) == "RESTARTING":
            self._place(actor_id)
        self._notify(actor_id)
        self._owner_gone(address, _name(entry))

    def _kill(self, actor_id: bytes, no_restart: bool, why: str) -> None:
        entry = self.tables.actors.get(actor_id)
        if entry is None or entry.state == "DEAD":
            return
        address, node_id = entry.worker_address or entry.address, entry.node_id
        death = dumps_error(ended_error(entry.spec.meta.class_name, actor_id, why))
        state = self._actor_died(actor_id, death, not no_restart, why, ACTOR_DIED, True)
        if not self._tell(node_id, m.ReleaseActor(actor_id)) and actor_id in self._unplaced:
            self._unplaced.remove(actor_id)
        if state == "RESTARTING":
            self._place(actor_id)
        self._notify(actor_id)
        self._owner_gone(address, _name(entry))  # its process is going away

    def _owner_gone(self, address: str | None, who: str) -> None:
        """Fate sharing: the non-detached actors created by the process at `address` (an
        actor's or a task's worker) die with it, whether it is gone or restarts elsewhere."""
        for actor_id in self.tables.owned_by(address or ""):
            self._kill(actor_id, True, owner_exited(who))

    def _notify(self, actor_id: bytes) -> None:
        entry = self.tables.actors.get(actor_id)
        if entry is None or entry.state in _WAITING:
            return
        for conn, request in self._waiters.pop(actor_id, []):
            self.ep.reply(conn, request, _actor_info(request.req, entry))

    def statistics(self) -> dict:
        with self._lock:
            return dict(self.tables.statistics(), storage=self.tables.storage.statistics(),
                        unplaced=len(self._unplaced), metrics=self.metrics.statistics(),
                        task_events=self.task_events.statistics(),
                        health=self.health.statistics(),
                        waiters=sum(len(w) for w in self._waiters.values()))


def _name(entry: Any) -> str:
    return f"the actor {entry.spec.meta.class_name}"


def _actor_info(req: int, entry: Any) -> m.ActorInfo:
    if entry is None:
        return m.ActorInfo(req, None, "UNKNOWN", None, None, None)
    return m.ActorInfo(req, entry.spec.actor_id, entry.state, entry.address, entry.spec.meta,
                       entry.death, entry.spec.max_task_retries)


_HANDLERS = {
    m.RegisterNode: GcsService._on_register_node,
    m.RegisterJob: GcsService._on_register_job,
    m.NodeResources: GcsService._on_node_resources,
    m.NodeHeartbeat: HealthHandlers._on_node_heartbeat,
    m.JobFinished: GcsService._on_job_finished,
    m.GetState: GcsService._on_get_state,
    m.TaskEvents: GcsService._on_task_events,
    m.GetTaskEvents: GcsService._on_get_task_events,
    m.CreateActor: GcsService._on_create_actor,
    m.ActorPlaced: GcsService._on_actor_placed,
    m.ActorReady: GcsService._on_actor_ready,
    m.GetActorInfo: GcsService._on_get_actor_info,
    m.KillActor: GcsService._on_kill_actor,
    m.WorkerDied: GcsService._on_worker_died,
    m.CreatePlacementGroup: GroupHandlers._on_create_group,
    m.RemovePlacementGroup: GroupHandlers._on_remove_group,
    m.GetPlacementGroup: GroupHandlers._on_get_group,
    m.BundlesPrepared: GroupHandlers._on_bundles_prepared,
    m.KvGet: GcsService._on_kv_get,
    m.KvPut: GcsService._on_kv_put,
    m.KvDelete: GcsService._on_kv_delete,
    m.KvKeys: GcsService._on_kv_keys,
    m.ReportMetrics: GcsService._on_report_metrics,
    m.GetMetrics: GcsService._on_get_metrics,
}
