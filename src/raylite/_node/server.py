"""The node daemon's I/O shell (on the head node it also serves the GCS tables).

    accept thread ──► one reader thread per connection ──► _handle(client, msg)
                                                              │  (under self._lock)
                                          rpc.Endpoint.deliver: validate.problem, then
                                          the handler of the message's type (_HANDLERS)
         NodeScheduler (pure) ◄── events ─────────────────────┤
         GcsTables (pure)     ◄── events ─────────────────────┘
                 └── instructions ──► _execute(): queue grants, ask the zygote for/to kill workers
    self._lock released ──► the queued messages leave through each peer's outbox (outbox.py)

No send happens while the lock is held, and a peer that does not read costs only
itself: its outbox grows to a bound, then it is dropped. Mixed in here: worker
processes (spawn, registration, exits, the fork server) from worker_procs.py;
what the node reports (its state as records, warnings) from reports.py;
the object store's handlers (allocation, spilling, freeing) from objects.py.

Handlers run under the lock and stay quick; one whose work is slow leaves
it in `client.after`, which the reader thread runs once the lock is
released: AllocObject copies objects to the spill directory that way (which
may take seconds) and never stalls the other connections.

Connections are drivers (jobs), workers (which are also owners of nested
tasks) and joining node daemons. A bad message is logged and dropped; a
connection that closes releases what it held: a driver's leases, tasks and
non-detached actors; a worker's lease or actor (restarted if allowed).

The head process composes the node scheduler with the GCS tables; it uses
only `_gcs.tables` (pure data), never the GCS's I/O, so the two stay apart.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from .. import _ids
from .. import _private_files as private
from .._gcs.tables import GcsTables
from .._object_store import shm
from .._object_store.store import StoreAccounting
from .._protocol import messages as m
from .._protocol import validate
from .._protocol.rpc import Endpoint
from .._protocol.transport import Connection, Listener
from . import scheduler as sch
from .outbox import Outbox, StateLock
from .outbox import send as _send
from .objects import ObjectStoreHandlers
from .reports import Reports
from .worker_pool import Zygote
from .worker_procs import WorkerProcesses

log = logging.getLogger("raylite.node")


class _Client:
    __slots__ = ("conn", "kind", "job_id", "worker_id", "pid", "address", "namespace", "env_vars",
                 "node_id", "after")

    def __init__(self, conn: Connection):
        self.conn = conn
        self.kind = "unknown"
        self.job_id: bytes | None = None
        self.worker_id: bytes | None = None
        self.pid = 0
        self.address = ""
        self.namespace = ""
        self.env_vars: dict | None = None
        self.node_id: bytes | None = None
        self.after: Any = None   # a handler's slow part, run once the lock is released
        conn.outbox = Outbox(conn)  # what we send it; queued while the server's lock is held

    @property
    def peer(self) -> str:
        return self.conn.peer


class NodeServer(WorkerProcesses, Reports, ObjectStoreHandlers):
    def __init__(self, listener: Listener, zygote: Zygote, total: dict, session_dir: str,
                 warm_workers: int, owner_pid: int | None = None, node_id: bytes | None = None):
        self.store = StoreAccounting(int(total.get("object_store_memory", 0)))
        self.spill_dir = shm.spill_dir(session_dir)
        private.make_dir(self.spill_dir)  # 0700 and ours, or NotPrivateError
        self._spilling = 0   # bytes being copied to the spill dir right now
        self.listener = listener
        self.session_dir = session_dir
        self.node_id = node_id or _ids.random_id()
        self.owner_pid = owner_pid
        self.sched = sch.NodeScheduler(total, _ids.new_id)
        self.gcs = GcsTables()
        self.gcs.add_node(self.node_id, listener.address, total, os.uname().nodename, is_head=True)
        self.warm_workers = warm_workers
        self._lock = StateLock()
        self._clients: dict[Connection, _Client] = {}
        self._workers: dict[bytes, _Client] = {}       # worker id -> its connection
        self._killed: set[bytes] = set()               # workers we killed on purpose
        self._actor_waiters: dict[bytes, list] = {}    # actor id -> [(conn, req)]
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

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._execute([sch.Spawn(self.warm_workers)] if self.warm_workers else [],
                          count_starting=True)
        self._start_zygote_thread()
        threading.Thread(target=self._accept_loop, name="raylite-accept", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            if self.stopped.is_set():
                return
            self.stopped.set()
            zygote, self.zygote = self.zygote, None
        try:
            self._stop(zygote)
        finally:
            self.finished.set()

    def _stop(self, zygote: Zygote | None) -> None:
        self.listener.close()  # first: a worker killed below mid-handshake is no refusal to log
        if zygote is not None:
            zygote.stop()  # it kills and reaps every worker before it exits
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
        if msg.kind == "driver":
            c.job_id = _ids.random_id(4)
            c.namespace = msg.namespace or f"anonymous-{_ids.random_id(8).hex()}"
            c.env_vars = msg.env_vars
            self.gcs.add_job(c.job_id, c.namespace, msg.pid)
        _send(c.conn, m.ClientRegistered(msg.req, c.job_id or b"", self.node_id, c.namespace,
                                         self.session_dir))

    def _on_register_node(self, c: _Client, msg: m.RegisterNode) -> None:
        c.kind, c.node_id, c.address = "node", msg.node_id, msg.address
        self.gcs.add_node(msg.node_id, msg.address, msg.resources, msg.hostname)
        _send(c.conn, m.NodeRegistered(msg.req, True))

    def _on_request_lease(self, c: _Client, msg: m.RequestLease) -> None:
        self._execute(self.sched.request_lease(c.conn, msg.req, msg.demand, msg.name))

    def _on_return_lease(self, c: _Client, msg: m.ReturnLease) -> None:
        if msg.kill_worker:
            lease = self.sched.leases.get(msg.lease_id)
            if lease is not None:
                self._killed.add(lease.worker_id)
        self._execute(self.sched.return_lease(msg.lease_id, msg.kill_worker))

    def _on_worker_blocked(self, c: _Client, msg: m.WorkerBlocked) -> None:
        if c.worker_id is not None:
            self._execute(self.sched.set_blocked(c.worker_id, msg.blocked))

    def _on_create_actor(self, c: _Client, msg: m.CreateActor) -> None:
        spec = msg.spec
        actor_id, meta, error = self.gcs.register_actor(spec, msg.get_if_exists)
        _send(c.conn, m.ActorCreated(msg.req, actor_id, meta, error))
        if error is None and actor_id == spec.actor_id:
            self._execute(self.sched.place_actor(spec.actor_id, spec.demand, spec.placement,
                                                 spec.meta.class_name))

    def _on_actor_started(self, c: _Client, msg: m.ActorStarted) -> None:
        if msg.error is None:
            self.gcs.actor_started(msg.actor_id, c.worker_id, c.address)
        else:
            self.gcs.actor_died(msg.actor_id, msg.error, may_restart=False, reason="its __init__ raised")
            self._release_actor_worker(msg.actor_id, c.worker_id)
            if msg.actor_id in self.gcs.actors:  # what its __init__ created dies with it
                self._owner_gone(c.address, self._actor_name(msg.actor_id))
        self._notify_actor(msg.actor_id)

    def _on_get_actor_info(self, c: _Client, msg: m.GetActorInfo) -> None:
        entry = self.gcs.lookup(msg.actor_id, msg.name, msg.namespace)
        if entry is not None and msg.wait and entry.state in ("PENDING", "RESTARTING"):
            self._actor_waiters.setdefault(entry.spec.actor_id, []).append((c.conn, msg.req))
            return
        _send(c.conn, _actor_info(msg.req, entry))

    def _on_kill_actor(self, c: _Client, msg: m.KillActor) -> None:
        self._kill_actor(msg.actor_id, msg.no_restart, msg.reason)

    def _on_log_lines(self, c: _Client, msg: m.LogLines) -> None:
        for x in self._clients.values():
            if x.kind == "driver" and x.job_id == msg.job_id:
                _send(x.conn, msg)
                return

    def _on_shutdown(self, c: _Client, msg: m.Shutdown) -> None:
        _send(c.conn, m.Ack(msg.req))
        threading.Thread(target=self.stop, daemon=True).start()

    # -- actors --------------------------------------------------------------
    def _notify_actor(self, actor_id: bytes) -> None:
        entry = self.gcs.actors.get(actor_id)
        if entry is None or entry.state in ("PENDING", "RESTARTING"):
            return
        for conn, req in self._actor_waiters.pop(actor_id, []):
            _send(conn, _actor_info(req, entry))

    def _release_actor_worker(self, actor_id: bytes, worker_id: bytes | None) -> None:
        lease_id = self.sched.lease_of_actor(actor_id)
        if worker_id is not None:
            self._killed.add(worker_id)
        if lease_id is not None:
            self._execute(self.sched.return_lease(lease_id, kill_worker=True))

    def _kill_actor(self, actor_id: bytes, no_restart: bool, why: str) -> None:
        from .._serialization import dumps_error
        from ..exceptions import ActorDiedError

        entry = self.gcs.actors.get(actor_id)
        if entry is None or entry.state == "DEAD":
            return
        worker_id = entry.worker_id
        worker = self._workers.get(worker_id) if worker_id is not None else None
        address = worker.address if worker is not None else entry.address  # even in __init__
        death = dumps_error(ActorDiedError(f"The actor {entry.spec.meta.class_name} is dead: {why}.",
                                           actor_id.hex()))
        self.sched.cancel_actor_placement(actor_id)
        state = self.gcs.actor_died(actor_id, death, may_restart=not no_restart, reason=why)
        self._release_actor_worker(actor_id, worker_id)
        if state == "RESTARTING":
            self._execute(self.sched.place_actor(actor_id, entry.spec.demand, entry.spec.placement,
                                                 entry.spec.meta.class_name))
        self._notify_actor(actor_id)
        self._owner_gone(address, self._actor_name(actor_id))  # its process is going away

    def _actor_name(self, actor_id: bytes) -> str:
        return f"the actor {self.gcs.actors[actor_id].spec.meta.class_name}"

    def _owner_gone(self, address: str | None, who: str) -> None:
        """Fate sharing: the non-detached actors created by the process at `address` (an
        actor's or a task's worker) die with it, whether it is gone or restarts elsewhere."""
        from .._actor_ends import owner_exited

        for actor_id in self.gcs.owned_by(address or ""):
            self._kill_actor(actor_id, True, owner_exited(who))

    # -- disconnects ---------------------------------------------------------
    def _disconnected(self, c: _Client) -> None:
        self._clients.pop(c.conn, None)
        self._execute(self.sched.owner_gone(c.conn))
        if c.address and c.kind != "node":
            self._delete_objects(self.store.owner_gone(c.address))
        if c.kind == "node" and c.node_id is not None:
            self.gcs.remove_node(c.node_id)
        elif c.kind == "worker" and c.worker_id is not None:
            hosted = self.gcs.actor_on_worker(c.worker_id)  # before _worker_gone forgets it
            self._worker_gone(c.worker_id)
            self._owner_gone(c.address, self._actor_name(hosted) if hosted is not None
                             else "the worker process that created it")
        elif c.kind == "driver" and c.job_id is not None:
            for actor_id in self.gcs.finish_job(c.job_id):
                self._kill_actor(actor_id, True, "its driver exited")
            if self.owner_pid is not None and c.pid == self.owner_pid:
                threading.Thread(target=self.stop, daemon=True).start()

    def _worker_gone(self, worker_id: bytes) -> None:
        from .._serialization import dumps_error
        from ..exceptions import ActorDiedError

        self._workers.pop(worker_id, None)
        how = self._forget_worker(worker_id)
        on_purpose = worker_id in self._killed
        self._killed.discard(worker_id)
        actor_id = self.gcs.actor_on_worker(worker_id)  # alive, or still in its __init__
        self._execute(self.sched.worker_died(worker_id))
        if actor_id is not None and not on_purpose:
            entry = self.gcs.actors[actor_id]
            why = f"its worker process exited unexpectedly ({how or 'killed, crashed, or out of memory'})"
            death = dumps_error(ActorDiedError(
                f"The actor {entry.spec.meta.class_name} died: {why}.", actor_id.hex()))
            if self.gcs.actor_died(actor_id, death, may_restart=True, reason=why) == "RESTARTING":
                self._execute(self.sched.place_actor(actor_id, entry.spec.demand,
                                                     entry.spec.placement, entry.spec.meta.class_name))
            self._notify_actor(actor_id)
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
                    self._spawn()
            elif t is sch.Kill:
                self._killed.add(ins.worker_id)
                self._kill_worker(ins.worker_id)
            elif t is sch.Infeasible:
                self._warn_infeasible(ins)
            elif t is sch.RevokeIdle:
                now = time.monotonic()
                if now - self._last_revoke > 0.02:
                    self._last_revoke = now
                    owners = {lease.owner for lease in self.sched.leases.values() if lease.owner}
                    for conn in owners:
                        _send(conn, m.ReturnIdleLeases())

    def _start_actor(self, ins: sch.StartActor) -> None:
        entry = self.gcs.actors.get(ins.actor_id)
        worker = self._workers.get(ins.worker_id)
        if entry is None or entry.state == "DEAD" or worker is None:
            self._execute(self.sched.return_lease(ins.lease_id))
            return
        entry.worker_id = ins.worker_id
        worker.job_id = entry.spec.job_id
        _send(worker.conn, m.StartActor(entry.spec, ins.gpu_ids, entry.restarts))


def _actor_info(req: int, entry: Any) -> m.ActorInfo:
    if entry is None:
        return m.ActorInfo(req, None, "UNKNOWN", None, None, None)
    return m.ActorInfo(req, entry.spec.actor_id, entry.state, entry.address, entry.spec.meta,
                       entry.death, entry.spec.max_task_retries)


_HANDLERS = {
    m.RegisterClient: NodeServer._on_register_client,
    m.RegisterWorker: NodeServer._on_register_worker,
    m.GetWorkerExit: NodeServer._on_get_worker_exit,
    m.RegisterNode: NodeServer._on_register_node,
    m.RequestLease: NodeServer._on_request_lease,
    m.ReturnLease: NodeServer._on_return_lease,
    m.WorkerBlocked: NodeServer._on_worker_blocked,
    m.CreateActor: NodeServer._on_create_actor,
    m.ActorStarted: NodeServer._on_actor_started,
    m.GetActorInfo: NodeServer._on_get_actor_info,
    m.KillActor: NodeServer._on_kill_actor,
    m.GetState: NodeServer._on_get_state,
    m.LogLines: NodeServer._on_log_lines,
    m.Shutdown: NodeServer._on_shutdown,
    m.AllocObject: NodeServer._on_alloc_object,
    m.FreeObjects: NodeServer._on_free_objects,
    m.StateReply: NodeServer._on_state_reply,
}
