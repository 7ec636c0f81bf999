"""The node daemon's I/O shell: leases, workers and the node's objects; the GCS's client.

    accept thread ──► one reader thread per connection ──► _handle(client, msg)
         │                                                    │  (under self._lock)
         │                        rpc.Endpoint.deliver: validate.problem, then
         │                        the handler of the message's type (_HANDLERS)
         │            NodeScheduler (pure) ◄── events ────────┤
         │                 └── instructions ──► _execute(): queue grants, ask the zygote
         │                                      for/to kill workers, start actors
         │            GCS requests ──► forwarded on the GCS link (gcs_link.py), replies relayed
         └─ channel b"s" (a node joining the head) ──► handed to the GCS (gcs_accept, head only)
    self._lock released ──► the queued messages leave through each peer's outbox (outbox.py)

No send happens while the lock is held, and a peer that does not read costs only
itself: its outbox grows to a bound, then it is dropped. Mixed in here: worker
processes (spawn, registration, exits, the fork server) from worker_procs.py;
the link to the GCS (jobs, actors, named actors, KV) from gcs_link.py;
what the node reports (its state as records, warnings) from reports.py;
the object store's handlers (allocation, spilling, freeing) from objects.py;
objects between nodes (pulls, serving copies, freeing copies elsewhere) from transfer.py.

Handlers run under the lock and stay quick; one whose work is slow leaves
it in `client.after`, which the reader thread runs once the lock is
released: AllocObject copies objects to the spill directory that way (which
may take seconds) and never stalls the other connections.

Connections are drivers (jobs) and workers (which are also owners of nested
tasks). A bad message is logged and dropped; a connection that closes releases
what it held: a driver's leases and tasks (the GCS ends its job's non-detached
actors), a worker's lease (the GCS restarts its actor if allowed).

The daemon keeps no GCS state: who owns what is the GCS's (_gcs/service.py);
this daemon owns its node's resources, leases, workers and shared memory.
The two never import each other: the head's `main.py` composes them.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .. import _ids
from .. import _private_files as private
from .._object_store import shm
from .._object_store.store import StoreAccounting
from .._protocol import messages as m
from .._protocol import validate
from .._protocol.rpc import Endpoint
from .._protocol.transport import Connection, Listener
from . import scheduler as sch
from .gcs_link import GcsLink
from .outbox import Outbox, StateLock
from .outbox import send as _send
from .objects import ObjectStoreHandlers
from .transfer import ObjectTransfers
from .reports import Reports
from .runtime_envs import RuntimeEnvs
from .spill_progress import SpillProgress
from .worker_pool import Zygote
from .worker_procs import WorkerProcesses

log = logging.getLogger("raylite.node")


class _Client:
    __slots__ = ("conn", "kind", "job_id", "worker_id", "pid", "address", "namespace", "env_vars",
                 "after")

    def __init__(self, conn: Connection):
        self.conn = conn
        self.kind = "unknown"
        self.job_id: bytes | None = None
        self.worker_id: bytes | None = None
        self.pid = 0
        self.address = ""
        self.namespace = ""
        self.env_vars: dict | None = None
        self.after: Any = None   # a handler's slow part, run once the lock is released
        conn.outbox = Outbox(conn)  # what we send it; queued while the server's lock is held

    @property
    def peer(self) -> str:
        return self.conn.peer


class NodeServer(GcsLink, WorkerProcesses, RuntimeEnvs, Reports, ObjectStoreHandlers,
                 ObjectTransfers):
    def __init__(self, listener: Listener, zygote: Zygote, total: dict, session_dir: str,
                 warm_workers: int, owner_pid: int | None = None, node_id: bytes | None = None,
                 idle_kill_s: float = 1.0):
        self.store = StoreAccounting(int(total.get("object_store_memory", 0)))
        self.spill_dir = shm.spill_dir(session_dir)
        private.make_dir(self.spill_dir)  # 0700 and ours, or NotPrivateError
        self._spilling = 0   # bytes being copied to the spill dir right now
        self.spill_progress = SpillProgress()  # ... and how far those copies are (status)
        self.listener = listener
        self.at = listener.address   # where other nodes reach us (main.py sets the advertised one)
        self.session_dir = session_dir
        self.node_id = node_id or _ids.random_id()
        self.owner_pid = owner_pid
        self.sched = sch.NodeScheduler(total, _ids.new_id, node_id=self.node_id.hex())
        self.total = total
        self.gcs_accept: Any = None  # the head: where node connections to the GCS go
        self.warm_workers = warm_workers
        self.idle_kill_s = idle_kill_s   # idle workers beyond warm_workers go after this (0: never)
        self._lock = StateLock()
        self._clients: dict[Connection, _Client] = {}
        self._workers: dict[bytes, _Client] = {}       # worker id -> its connection
        self._killed: set[bytes] = set()               # workers we killed on purpose
        self._last_revoke = 0.0
        self._reports: dict[int, Any] = {}             # state requests awaiting owners (reports.py)
        # The one dispatch: peers are _Clients; sends go through their outboxes.
        self.endpoint = Endpoint(send=lambda c, msg: c.conn.outbox.put(msg),
                                 validator=validate.problem, log=log)
        for msg_type, handler in _HANDLERS.items():
            self.endpoint.on(msg_type, handler.__get__(self))
        self.stopped = threading.Event()     # stop() has begun: refuse new work
        self.finished = threading.Event()    # stop() is done: processes and segments are gone
        self._init_workers(zygote)
        self._init_envs()
        self._init_link()
        self._init_transfers()

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._execute([sch.Spawn(self.warm_workers)] if self.warm_workers else [],
                          count_starting=True)
        self._start_zygote_thread()
        threading.Thread(target=self._accept_loop, name="raylite-accept", daemon=True).start()

    def wait_warm(self, timeout: float) -> bool:
        """Waits (polling, at most `timeout` seconds) until one of the warm workers asked for
        at start has registered, so that a driver's first task finds it idle (the others go
        on starting); True if one did. Workers that fail to start only make this wait its
        bound."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self.sched.idle or not self.warm_workers:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)

    def tick(self, now: float) -> None:
        """Called by the daemon's main thread every half second: stops the idle workers beyond
        warm_workers that have been idle for idle_kill_s (NodeScheduler.reap_idle)."""
        if not self.idle_kill_s:
            return
        with self._lock:
            if not self.stopped.is_set():
                self._execute(self.sched.reap_idle(now, self.warm_workers, self.idle_kill_s))

    def stop(self) -> None:
        with self._lock:
            if self.stopped.is_set():
                return
            self.stopped.set()
            self._report_due.set()  # the report thread sees stopped, and ends
            zygote, self.zygote = self.zygote, None
        try:
            self._stop(zygote)
        finally:
            self.finished.set()

    def _stop(self, zygote: Zygote | None) -> None:
        self.listener.close()  # first: a worker killed below mid-handshake is no refusal to log
        if zygote is not None:
            zygote.stop()  # it kills and reaps every worker before it exits
        self._stop_envs()  # a pip install under way is ended
        with self._lock:
            for c in list(self._clients):
                c.close()
            self._delete_objects(self.store.free(list(self.store.objects)))
            for pid in self.store.drain_pool():
                shm.unlink(self._pool_path(pid))

    def _accept_loop(self) -> None:
        while not self.stopped.is_set():
            try:
                conn = self.listener.accept()  # refusals are logged there, rate-limited
            except (OSError, ValueError):  # closed under us: we are shutting down
                return
            if conn.channel == b"s":  # a node daemon joining: the GCS's, if it lives here
                if self.gcs_accept is not None:
                    self.gcs_accept(conn)
                else:
                    log.warning("refused a node joining through %s: this node is not the head "
                                "(join the head's address instead)", conn.peer)
                    conn.close()
                continue
            client = _Client(conn)
            with self._lock:
                self._clients[conn] = client
            threading.Thread(target=self._read_loop, args=(client,), daemon=True,
                             name="raylite-conn").start()

    def _read_loop(self, client: _Client) -> None:
        conn = client.conn
        conn.outbox.state = self._lock  # from now on its sends wait for the lock's release
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            except Exception as e:  # garbage on the wire: drop the connection, keep the daemon
                log.warning("unreadable message from %s: %s", conn.peer, e)
                break
            with self._lock:
                self._handle(client, msg)
            if client.after is not None:  # e.g. spill copies: never under the lock
                after, client.after = client.after, None
                try:
                    after()
                except Exception:
                    log.exception("error handling %s from %s", type(msg).__name__, conn.peer)
        conn.close()
        self.endpoint.lost(client)
        if client.worker_id is not None:
            self._await_exit(client.worker_id)
        with self._lock:
            if not self.stopped.is_set():
                self._disconnected(client)

    # -- dispatch ------------------------------------------------------------
    def _handle(self, c: _Client, msg: Any) -> None:
        """Dispatches a message by type (the endpoint), once every field has passed
        validate.problem(); anything else is refused: logged (at most once per connection a
        minute, and a few lines a minute in all), nothing changed. A handler's exception is
        logged; the reader goes on."""
        self.endpoint.deliver(c, msg)

    def _on_register_client(self, c: _Client, msg: m.RegisterClient) -> None:
        c.kind, c.pid, c.address = msg.kind, msg.pid, msg.address
        if msg.kind == "driver":  # answered once the GCS named its job (gcs_link.py)
            c.env_vars = msg.env_vars
            self._register_driver(c, msg)
            return
        _send(c.conn, m.ClientRegistered(msg.req, b"", self.node_id, "", self.session_dir))

    def _on_request_lease(self, c: _Client, msg: m.RequestLease) -> None:
        self._execute(self.sched.request_lease(c.conn, msg.req, msg.demand, msg.name,
                                               msg.strategy, msg.spilled, self._env_key(msg.env)))

    def _on_return_lease(self, c: _Client, msg: m.ReturnLease) -> None:
        if msg.kill_worker:
            lease = self.sched.leases.get(msg.lease_id)
            if lease is not None:
                self._killed.add(lease.worker_id)
        self._execute(self.sched.return_lease(msg.lease_id, msg.kill_worker))

    def _on_worker_blocked(self, c: _Client, msg: m.WorkerBlocked) -> None:
        if c.worker_id is not None:
            self._execute(self.sched.set_blocked(c.worker_id, msg.blocked))

    def _on_log_lines(self, c: _Client, msg: m.LogLines | m.ProgressUpdate) -> None:
        """Worker output and progress bars: to the driver of their job, on this node."""
        for x in self._clients.values():
            if x.kind == "driver" and x.job_id == msg.job_id:
                _send(x.conn, msg)
                return

    def _on_shutdown(self, c: _Client, msg: m.Shutdown) -> None:
        _send(c.conn, m.Ack(msg.req))
        threading.Thread(target=self.stop, daemon=True).start()

    # -- disconnects ---------------------------------------------------------
    def _disconnected(self, c: _Client) -> None:
        self._clients.pop(c.conn, None)
        self._execute(self.sched.owner_gone(c.conn))
        if c.address:
            self._delete_objects(self.store.owner_gone(c.address))
        if c.kind == "worker" and c.worker_id is not None:
            self._worker_gone(c)
        elif c.kind == "driver":
            if c.job_id is not None:
                self._to_gcs(m.JobFinished(c.job_id))
            if self.owner_pid is not None and c.pid == self.owner_pid:
                threading.Thread(target=self.stop, daemon=True).start()

    def _worker_gone(self, c: _Client) -> None:
        """A worker's connection closed: the GCS hears how (its actor, what it created)."""
        worker_id = c.worker_id
        self._workers.pop(worker_id, None)
        how = self._forget_worker(worker_id)
        on_purpose = worker_id in self._killed
        self._killed.discard(worker_id)
        self._execute(self.sched.worker_died(worker_id))
        self._report_worker_gone(c, how, on_purpose)
        if len(self.sched.workers) + self.sched.starting < self.warm_workers:
            self._execute([sch.Spawn(1)], count_starting=True)

    # -- instructions --------------------------------------------------------
    def _execute(self, instructions: list, count_starting: bool = False) -> None:
        for ins in instructions:
            t = type(ins)
            if t is sch.Grant:
                w = self._workers.get(ins.worker_id)
                _send(ins.owner, m.LeaseGranted(ins.req, ins.lease_id, ins.worker_id,
                                                w.address if w else "", ins.gpu_ids))
            elif t is sch.StartActor:
                self._start_actor(ins)
            elif t is sch.Spawn:
                if count_starting:
                    self.sched.worker_started(ins.count)
                for _ in range(ins.count):
                    if ins.env is None:
                        self._spawn()
                    else:
                        self._spawn_env(ins.env)
            elif t is sch.Kill:
                self._killed.add(ins.worker_id)
                self._kill_worker(ins.worker_id)
            elif t is sch.Spill:
                _send(ins.owner, m.LeaseGranted(ins.req, b"", b"", "", (), ins.address))
            elif t is sch.Refuse:
                _send(ins.owner, m.LeaseGranted(ins.req, b"", b"", "", (), "",
                                                *((None, ins.why) if ins.group_removed else (ins.why,))))
            elif t is sch.Infeasible:
                self._warn_infeasible(ins)
            elif t is sch.Prepared:
                self._to_gcs(m.BundlesPrepared(ins.group))
            elif t is sch.RevokeIdle:
                now = time.monotonic()
                if now - self._last_revoke > 0.02:
                    self._last_revoke = now
                    owners = {lease.owner for lease in self.sched.leases.values() if lease.owner}
                    for conn in owners:
                        _send(conn, m.ReturnIdleLeases())
        self._resources_changed()



_HANDLERS = {
    m.RegisterClient: NodeServer._on_register_client,
    m.RegisterWorker: NodeServer._on_register_worker,
    m.GetWorkerExit: NodeServer._on_get_worker_exit,
    m.RequestLease: NodeServer._on_request_lease,
    m.ReturnLease: NodeServer._on_return_lease,
    m.WorkerBlocked: NodeServer._on_worker_blocked,
    m.CreateActor: NodeServer._forward,
    m.ActorStarted: NodeServer._on_actor_started,
    m.GetActorInfo: NodeServer._forward,
    m.KillActor: NodeServer._on_kill_actor,
    m.CreatePlacementGroup: NodeServer._forward,
    m.RemovePlacementGroup: NodeServer._forward,
    m.GetPlacementGroup: NodeServer._forward,
    m.KvGet: NodeServer._forward,
    m.KvPut: NodeServer._forward,
    m.KvDelete: NodeServer._forward,
    m.KvKeys: NodeServer._forward,
    m.GetState: NodeServer._on_get_state,
    m.TaskEvents: NodeServer._on_task_events,
    m.GetTaskEvents: NodeServer._forward,
    m.LogLines: NodeServer._on_log_lines,
    m.ProgressUpdate: NodeServer._on_log_lines,
    m.ReportMetrics: NodeServer._on_report_metrics,
    m.GetMetrics: NodeServer._forward,
    m.Shutdown: NodeServer._on_shutdown,
    m.AllocObject: NodeServer._on_alloc_object,
    m.FreeObjects: NodeServer._on_free_objects,
    m.PullObject: NodeServer._on_pull_object,
    m.ReadObject: NodeServer._on_read_object,
    m.DropCopies: NodeServer._on_drop_copies,
    m.GetTransferStats: NodeServer._on_get_transfer_stats,
    m.StateReply: NodeServer._on_state_reply,
}
