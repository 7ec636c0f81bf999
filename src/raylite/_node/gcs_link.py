"""The node daemon's link to the cluster's GCS (mixed into NodeServer; shares its lock).

    drivers, workers ──CreateActor, GetActorInfo, KillActor, Kv*──► this daemon ──forwarded──┐
    a driver's RegisterClient ──► RegisterJob ─► GCS ─► JobRegistered ─► ClientRegistered  │
    GetState (nodes, jobs, actors) ──► the GCS's records, merged in reports.py ────────────┤
    GetTaskEvents ──► the GCS's task-event store (filtered there) ─────────────────────────┤
    TaskEvents (a batch, one-way) ──► the GCS, with the sender's address, worker id, pid ──┤
                              ◄── the GCS's reply, relayed to the client with its own req ◄┘
    GCS ──PlaceActor(spec, incarnation)──► scheduler.place_actor ──StartActor──► a worker
        ◄──ActorPlaced(worker)── once started; ActorReady ◄── the worker's ActorStarted
    GCS ──ReleaseActor──► stop placing it, end its worker (the lease returned with a kill)
    GCS ──PrepareBundles──► scheduler.prepare_bundles ──Prepared──► BundlesPrepared ──► GCS
        ──CommitBundles / ReturnBundles──► scheduler.commit_bundles / return_bundles
    a worker's connection closed ──► WorkerDied(worker, address, how, on purpose?) ──► GCS
    a driver's connection closed ──► JobFinished ──► GCS (its non-detached actors end)
    what is free here changed ──► the report thread, at most every REPORT_INTERVAL_S ──►
        NodeResources(available, pending) ──► GCS ──ClusterView(every live node)──► every
        node's scheduler (update_cluster: where lease requests may spill, spillback.py)
    nothing sent for heartbeat_s (NodeRegistered says; the head's own node: never) ──►
        NodeHeartbeat ──► GCS (a joined node silent for its timeout is marked dead)
    GCS ──NodeDied(node, address, why)──► every driver and worker here

The daemon holds no GCS tables: the GCS (_gcs/service.py) is the one authority on
jobs, nodes and actors. On the head it runs in this daemon's process and the link
is a direct in-process connection (inproc.direct_pipe): a message is handled on the
thread that sends it, the GCS's answers come back the same way, under this
daemon's lock. A joined node's link is a TCP connection to the head's listener on
channel b"s" (the head daemon hands it to the GCS), read by one thread that
handles what it reads under the daemon's lock. Either way replies complete the
forwarded calls (rpc.Endpoint; their callbacks relay the answer) and PlaceActor
and ReleaseActor drive the scheduler. Sends to clients go through their outboxes,
so none happens under the lock. When the link closes the daemon stops: a node
without its GCS is not part of a cluster.

What this side keeps: the actors the GCS asked it to start and not yet started
(`_placing`: actor id -> (spec, incarnation)) and which worker hosts which actor
incarnation (`_hosting`), so that a worker's ActorStarted and exit reach the GCS
with the incarnation they concern.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

from .._protocol import messages as m
from .._protocol import validate
from .._protocol.rpc import Endpoint
from . import scheduler as sch
from .outbox import Outbox
from .outbox import send as _send

log = logging.getLogger("raylite.node")

REGISTER_TIMEOUT_S = 10.0
REPORT_INTERVAL_S = 0.05   # at most this often the GCS hears what is free on this node


class GcsLink:
    _lock: Any
    _clients: dict
    _workers: dict
    _killed: set
    _dead_sources: dict
    _sources_died: Any
    sched: Any
    node_id: bytes
    session_dir: str
    stopped: threading.Event

    def _init_link(self) -> None:
        self.gcs_conn: Any = None
        self.gcs_ep = Endpoint(send=_send, validator=validate.problem, log=log)
        self.gcs_ep.on(m.PlaceActor, self._on_place_actor)
        self.gcs_ep.on(m.ReleaseActor, self._on_release_actor)
        self.gcs_ep.on(m.PrepareBundles, lambda conn, msg: self._execute(
            self.sched.prepare_bundles(msg.group_id, msg.bundles)))
        self.gcs_ep.on(m.CommitBundles, lambda conn, msg: self._execute(
            self.sched.commit_bundles(msg.group_id)))
        self.gcs_ep.on(m.ReturnBundles, lambda conn, msg: self._execute(
            self.sched.return_bundles(msg.group_id, msg.removed)))
        self._placing: dict[bytes, tuple] = {}    # actor id -> (spec, incarnation), not yet started
        self._hosting: dict[bytes, tuple] = {}    # worker id -> (actor id, incarnation)
        self.gcs_ep.on(m.ClusterView, self._on_cluster_view)
        self.gcs_ep.on(m.NodeDied, self._on_node_died)
        self._reported: dict = {}                 # what the GCS last heard is free here
        self._report_due = threading.Event()
        self._heartbeat_s: float | None = None    # a NodeHeartbeat when silent this long

    def attach_gcs(self, conn: Any, address: str, total: dict, labels: dict | None = None) -> None:
        """Registers this node with the GCS on `conn` and reads the link from now on;
        RuntimeError when the GCS refuses, ConnectionError when it does not answer."""
        conn.outbox = Outbox(conn, self._lock)
        self.gcs_conn = conn
        if hasattr(conn, "handle_with"):  # the head's in-process GCS: no reader thread
            conn.handle_with(self._link_deliver, self._link_lost)
        call = self.gcs_ep.call(conn, m.RegisterNode(0, self.node_id, address, total,
                                                     os.uname().nodename, labels or {}))
        if not hasattr(conn, "handle_with"):
            threading.Thread(target=self._gcs_loop, args=(conn,), daemon=True,
                             name="raylite-gcs-link").start()
        try:
            reply = call.result(REGISTER_TIMEOUT_S)
        except (TimeoutError, ConnectionError) as e:
            raise ConnectionError(f"the GCS at {conn.peer} did not answer this node's "
                                  f"registration: {e}") from None
        if not reply.ok:
            raise RuntimeError(f"the GCS at {conn.peer} refused this node: {reply.error}")
        self._reported = dict(total)
        self._heartbeat_s = reply.heartbeat_s or None
        threading.Thread(target=self._report_loop, daemon=True, name="raylite-report").start()

    # -- what is free here, and on the other nodes --------------------------------------
    def _resources_changed(self) -> None:
        """After each scheduler event (lock held): the report thread wakes when what is
        free here is no longer what the GCS last heard."""
        if self.sched.available != self._reported and not self._report_due.is_set():
            self._report_due.set()

    def _report_loop(self) -> None:
        """Sends what is free here when it changed; when nothing changed for a heartbeat
        period, a NodeHeartbeat instead (the GCS marks a silent node dead: health.py)."""
        while True:
            due = self._report_due.wait(self._heartbeat_s)
            if self.stopped.is_set():
                return
            if not due:
                with self._lock:
                    self._to_gcs(m.NodeHeartbeat())
                continue
            with self._lock:
                self._report_due.clear()
                self._reported = dict(self.sched.available)
                free = {k: max(v, 0.0) for k, v in self._reported.items()}
                self._to_gcs(m.NodeResources(free, len(self.sched.queue)))
            if self.stopped.wait(REPORT_INTERVAL_S):
                return

    def _on_cluster_view(self, conn: Any, msg: m.ClusterView) -> None:
        if self._dead_sources:  # a new node at a dead one's address is a live source
            for node in msg.nodes:
                self._dead_sources.pop(node[1], None)
        self._execute(self.sched.update_cluster(msg.nodes))

    def _on_node_died(self, conn: Any, msg: m.NodeDied) -> None:
        """Another node is dead: every driver and worker here hears it (their leases, actors
        and objects there are lost), and pulls from it fail (transfer.py)."""
        log.info("node %s at %s %s", msg.node_id.hex(), msg.address, msg.why)
        self._sources_died(msg.address, msg.why)
        for c in self._clients.values():
            if c.kind in ("driver", "worker"):
                _send(c.conn, msg)

    def _gcs_loop(self, conn: Any) -> None:
        try:
            while True:
                msgs = conn.recv_some()
                with self._lock:
                    for msg in msgs:
                        self.gcs_ep.deliver(conn, msg)
        except (EOFError, OSError):
            pass
        except Exception as e:  # garbage on the wire
            log.warning("unreadable message from the GCS at %s: %s", conn.peer, e)
        conn.close()
        self._link_lost(conn)

    def _link_deliver(self, conn: Any, msg: Any) -> None:
        with self._lock:
            self.gcs_ep.deliver(conn, msg)

    def _link_lost(self, conn: Any) -> None:
        with self._lock:
            self.gcs_ep.lost(conn)
        if not self.stopped.is_set():
            log.warning("lost the GCS at %s: this node stops", conn.peer)
            threading.Thread(target=self.stop, daemon=True).start()

    # -- forwarding clients' requests -----------------------------------------------
    def _forward(self, c: Any, msg: Any) -> None:
        """A client's GCS request: asked on the link, the reply relayed with its req."""
        conn = c.conn
        self.gcs_ep.call(self.gcs_conn, msg).add_done_callback(
            lambda call: self._relay(conn, msg, call))

    def _relay(self, conn: Any, request: Any, call: Any) -> None:
        if call.error is None:  # else the link is gone, and this daemon with it
            self.gcs_ep.reply(conn, request, call.value)

    def _to_gcs(self, msg: Any) -> None:
        if self.gcs_conn is None:  # not attached (a daemon built without a cluster, in tests)
            return
        try:
            self.gcs_ep.notify(self.gcs_conn, msg)
        except OSError:
            pass  # the link is gone: its reader stops this daemon

    def _on_kill_actor(self, c: Any, msg: m.KillActor) -> None:
        self._to_gcs(msg)

    def _on_report_metrics(self, c: Any, msg: m.ReportMetrics) -> None:
        self._to_gcs(msg)
    def _on_task_events(self, c: Any, msg: m.TaskEvents) -> None:
        """A client's batch of task events, to the GCS's store with who sent it (sent after
        this daemon's lock is released, as every message on the link)."""
        self._to_gcs(msg._replace(address=c.address or None, worker_id=c.worker_id,
                                  pid=c.pid or 0))

    def _register_driver(self, c: Any, msg: m.RegisterClient) -> None:
        conn = c.conn
        self.gcs_ep.call(self.gcs_conn, m.RegisterJob(0, msg.namespace, msg.pid, msg.address)) \
            .add_done_callback(lambda call: self._job_registered(c, conn, msg, call))

    def _job_registered(self, c: Any, conn: Any, msg: m.RegisterClient, call: Any) -> None:
        if call.error is not None:
            return
        job = call.value
        if self._clients.get(conn) is not c:  # it left before its job had a name
            self._to_gcs(m.JobFinished(job.job_id))
            return
        c.job_id, c.namespace = job.job_id, job.namespace
        _send(conn, m.ClientRegistered(msg.req, job.job_id, self.node_id, job.namespace,
                                       self.session_dir))

    # -- actors the GCS places here ---------------------------------------------------
    def _on_place_actor(self, conn: Any, msg: m.PlaceActor) -> None:
        spec = msg.spec
        self._placing[spec.actor_id] = (spec, msg.restarts)
        self._execute(self.sched.place_actor(spec.actor_id, spec.demand, spec.placement,
                                             spec.meta.class_name,
                                             self._env_key(spec.runtime_env)))

    def _on_release_actor(self, conn: Any, msg: m.ReleaseActor) -> None:
        self._placing.pop(msg.actor_id, None)
        self.sched.cancel_actor_placement(msg.actor_id)
        self._release_actor_worker(msg.actor_id)

    def _release_actor_worker(self, actor_id: bytes) -> None:
        lease_id = self.sched.lease_of_actor(actor_id)
        if lease_id is not None:
            self._killed.add(self.sched.leases[lease_id].worker_id)
            self._execute(self.sched.return_lease(lease_id, kill_worker=True))

    def _start_actor(self, ins: sch.StartActor) -> None:
        placing = self._placing.pop(ins.actor_id, None)
        worker = self._workers.get(ins.worker_id)
        if placing is None or worker is None:  # released meanwhile, or the worker just died
            self._execute(self.sched.return_lease(ins.lease_id))
            return
        spec, restarts = placing
        worker.job_id = spec.job_id
        self._hosting[ins.worker_id] = (spec.actor_id, restarts)
        _send(worker.conn, m.StartActor(spec, ins.gpu_ids, restarts))
        self._to_gcs(m.ActorPlaced(spec.actor_id, restarts, ins.worker_id, worker.address))

    def _on_actor_started(self, c: Any, msg: m.ActorStarted) -> None:
        hosted = self._hosting.get(c.worker_id) if c.worker_id is not None else None
        if hosted is None or hosted[0] != msg.actor_id:
            log.warning("ignored an ActorStarted for %s from %s: it hosts no such actor",
                        msg.actor_id.hex(), c.conn.peer)
            return
        if msg.error is not None:  # its __init__ failed: the worker is of no more use
            del self._hosting[c.worker_id]
            self._release_actor_worker(msg.actor_id)
        self._to_gcs(m.ActorReady(msg.actor_id, hosted[1], c.worker_id, c.address, msg.error))

    def _report_worker_gone(self, c: Any, how: str | None, on_purpose: bool) -> None:
        self._hosting.pop(c.worker_id, None)
        if c.address:
            self._to_gcs(m.WorkerDied(c.worker_id, c.address, how or "", on_purpose))
