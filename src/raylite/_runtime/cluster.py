"""ClusterRuntime: the core worker every driver and worker process runs.

    user threads ──submit──► _Key queues ──RequestLease──► node daemon
                                 ▲                              │ LeaseGranted(worker address)
                                 │ TaskDone                     ▼
                        peer reader threads ◄──── direct TCP ───► leased worker
                        (or the thread waiting in get(), when it holds the read turn)
    borrowers ──GetObject──► listener ──► this process's store (it owns what it created)

Every message this process receives, on any connection and from any of its
readers (a connection's reader thread: `endpoint.serve`; the thread in get()
holding the read turn; a worker's main thread), goes through one
`rpc.Endpoint.deliver`: the handlers registered in `_connect` (and by the
worker's Executor) by message type, and replies to `_call`'s requests matched by
id. Lease, actor-location and fetch requests book their ids (from the same
`endpoint.ids`) in the owner's own maps; their replies reach the handlers
registered for the reply types.

Who owns which state. The owner's state (objects and reference counts,
borrowers, waiters, tasks and leases, lease requests, retries, actor calls and
their order, handle lifetimes) lives in one pure core, `_core`
(raylite._core.owner.Owner), changed only under `_lock`:

    reader / user thread ──with _lock──► _core.<event>(...) ──► instructions
                         ◄───────────────────────────────────┘
    after the lock: _send_all(instructions): (WAKE, token) woken, (DAEMON, request)
                    sent as its wire message, (conn, msg) sent

This shell keeps only what touches the world: the connections (`_daemon`,
`_peers`, `_task_peers`, `_inbound`), the threads, the daemon requests awaiting
This shell keeps only what touches the world: the connections (`_daemon`,
`_peers`, `_task_peers`, `_inbound`), the endpoint, the threads, each actor's
send lock (`_send_locks`), the per-options submission templates, and the
lifecycle flags (`_closing`, `_gone`, `_stopping`). The daemon sees only leases
and actor lifecycle; task pushes and results go straight between owner and worker.

When the daemon connection drops (the daemon died), `_gone` says so: every
pending daemon call, every task and actor call that has no worker yet, and
every later call fails at once with one RaySystemError naming the cluster;
calls already running on live workers may still finish. shutdown() then
removes what a dead daemon we started left behind (its /dev/shm segments and
session dir).

Ctrl-C (read_turn.shield): on the main thread, submitting a task or actor call
and reading replies in get() run with SIGINT deferred, so a KeyboardInterrupt
never leaves a call booked but unsent or a reply read but unhandled.

The I/O around the core is split by topic: task submission and leases in
cluster_tasks.py; encoding, mapping, fetching and waiting for objects in
cluster_objects.py; actor calls in cluster_actors.py; streaming generator tasks
in cluster_streams.py; starting a head for a driver in cluster_start.py; metrics,
progress bars and worker output in cluster_reports.py; other nodes' deaths in
cluster_nodes.py.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from .. import _ids
from .._core.owner import DAEMON, WAKE, ActorLookup, LeaseRequest, LeaseReturn, Owner
from .._object_store import shm
from .._protocol import messages as m
from .._protocol import rpc
from .._protocol.read_turn import shield, shielding
from .._protocol.transport import Connection, Listener, connect, source_ip
from .._serialization import dumps_error, loads
from ..exceptions import RaySystemError
from . import context
from .base import ContextInfo, InitInfo, Runtime
from .cluster_actors import ActorCalls
from .cluster_groups import PlacementGroups
from .cluster_nodes import NodeDeaths
from .cluster_objects import ObjectPlane
from .cluster_reports import Reports
from .cluster_start import HeadStart, join_token, stop_head
from .cluster_state import owner_state, ray_nodes, resource_sum
from .cluster_streams import ClusterStreams
from .cluster_tasks import TaskSubmission, driver_sys_path
from .factory import InitRequest


_SWEEP_S = 0.05  # once the daemon is gone: how often calls queued since are failed
# The owner core's requests to the daemon, as wire messages.
_WIRE = {LeaseRequest: lambda x: m.RequestLease(*x[:5], x.env),
         LeaseReturn: lambda x: m.ReturnLease(x.lease_id, x.kill_worker),
         ActorLookup: lambda x: m.GetActorInfo(x.req, x.actor_id, None, None, True)}


class ClusterRuntime(TaskSubmission, ObjectPlane, ActorCalls, ClusterStreams, Reports,
                     PlacementGroups, NodeDeaths, Runtime):
    name = "cluster"

    def __init__(self, request: InitRequest | None, *, _worker: tuple | None = None,
                 head: HeadStart | None = None):
        shield.reset()
        self._lock = threading.RLock()
        self._core: Owner | None = None                 # the owner's state (made in _connect)
        self._templates: dict[int, tuple] = {}          # id(options) -> _template()
        self._send_locks: dict[bytes, Any] = {}         # actor id -> its send lock
        self._peers: dict[str, Connection] = {}        # connections this process dialed
        self._task_peers: dict[str, Connection] = {}   # ... for pushing tasks to workers
        self._inbound: dict[str, Connection] = {}      # owner address -> its connection to us
        self._accepted: set = set()                     # connections others made to us (b"g")
        self._connect_lock = threading.Lock()
        self._events_lock = threading.Lock()            # one sender of task events at a time
        self.endpoint = rpc.Endpoint()
        self._req = self.endpoint.ids    # the owner's own request ids never meet _call's
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._gone: str | None = None                   # why the cluster is gone (daemon lost)
        self._stopping = False                          # shutdown() asked the daemon to stop
        self._proc: Any = None
        self.executor: Any = None
        self.actor_id: bytes | None = None
        self.log_to_driver = True
        self._events_on = True                          # enable_task_events (init's keyword)
        self.in_worker = _worker is not None            # a worker's: nested tasks inherit its env
        self._env_vars: dict = {}                       # the job's env_vars (a driver's)
        self._job_env: dict | None = None               # the runtime_env init() got, as given
        self.resolved_env: dict | None = None           # ... resolved: what tasks inherit
        self._resolver: Any = None                      # packs and uploads (_runtime_env)
        self._init_node_deaths()                        # other nodes' deaths (cluster_nodes.py)
        if _worker is not None:
            daemon_address, token, self.worker_id, self.session_dir, self.node_id = _worker
            self._token = token
            self.job_id, self.namespace = b"", ""
            self.node_tag = self.node_id.hex()[:12]
            self._connect(daemon_address)
            self._core.tasks.node = self.node_tag  # tasks lease where their arguments are
            return
        self.worker_id = _ids.random_id()
        self.log_to_driver = request.log_to_driver
        self._events_on = request.task_events
        self._env_vars = dict((request.runtime_env or {}).get("env_vars") or {})
        if request.mode == "start":  # `head`: cluster_boot spawned it before importing us
            self._proc, daemon_address, self._token = (head or HeadStart(request)).wait_ready()
        else:
            daemon_address = request.address
            self._token = join_token(daemon_address, request.temp_dir)
        try:
            self._connect(daemon_address)
            reply = self._call(m.RegisterClient(0, "driver", os.getpid(), self.address,
                                                request.namespace, None, None, self._env_vars))
            self._job_env = request.runtime_env
            self.resolved_env = self._packer().resolve(request.runtime_env)  # packed, uploaded once
        except BaseException:
            self.shutdown()
            raise
        self.job_id, self.node_id = reply.job_id, reply.node_id
        self._core.events.job_id = reply.job_id
        self.node_tag = self._core.tasks.node = self.node_id.hex()[:12]
        self.namespace, self.session_dir = reply.namespace, reply.session_dir
        self.daemon_address = daemon_address
        self._spawn(self._maintain, "raylite-leases")

    @classmethod
    def for_worker(cls, daemon_address: str, token: bytes, worker_id: bytes, session_dir: str,
                   node_id: bytes) -> "ClusterRuntime":
        rt = cls(None, _worker=(daemon_address, token, worker_id, session_dir, node_id))
        rt.daemon_address = daemon_address
        return rt

    def register_worker(self) -> None:
        self.endpoint.notify(self._daemon, m.RegisterWorker(self.worker_id, os.getpid(), self.address))
        self._spawn(self._maintain, "raylite-leases")

    # -- connections ---------------------------------------------------------
    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _connect(self, daemon_address: str) -> None:
        # Our listener: on the address the daemon's node reaches us at (its own IP when the
        # daemon is on this machine, this machine's IP on the route to it when it is not).
        host = source_ip(daemon_address.rpartition(":")[0] or "127.0.0.1")
        self._daemon = connect(daemon_address, self._token)
        self._listener = Listener(host, 0, self._token)
        self.address = self._listener.address
        parent_of = context.task_id if self.in_worker else None  # a driver runs no task
        self._core = Owner(self.address, self.endpoint.ids, driver_sys_path, dumps_error, loads,
                           time.time, parent_of, max_lineage_bytes=self._lineage_bytes)
        self._objects = self._core.objects  # its object table, used on every get and put
        on = self.endpoint.on
        on(m.TaskDone, self._task_done)
        on(m.GetObject, self._serve_get)
        on(m.AddBorrower, self._borrower)
        on(m.RemoveBorrower, self._borrower)
        on(m.ObjectCopied, self._object_copied)
        on(m.ObjectValue, self._object_value)     # replies to requests booked in the owner core:
        on(m.LeaseGranted, lambda conn, msg: self._lease_reply(msg))    # its fetches, lease requests
        on(m.ActorInfo, self._on_actor_info)      # and actor lookups
        on(m.ReturnIdleLeases, lambda conn, msg: self._return_idle(0.0))
        on(m.LogLines, self._on_log_lines)
        on(m.ProgressUpdate, self._on_progress_update)
        on(m.Warning, lambda conn, msg: print(f"raylite warning: {msg.text}", file=sys.stderr,
                                              flush=True))
        on(m.GetState, self._on_get_state)
        on(m.NodeDied, self._on_node_died)
        self._streams_connect()
        self._spawn(self._daemon_loop, "raylite-daemon")
        self._spawn(self._accept_loop, "raylite-accept")

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn = self._listener.accept()
            except (OSError, ValueError):  # closed under us: we are shutting down
                return
            if conn.channel == b"t" and self.executor is not None:
                self.executor.add_connection(conn)  # read by the thread that runs the tasks
            else:
                self._accepted.add(conn)  # closed by shutdown: a peer may be waiting for that
                if self._closing.is_set():  # shutdown's close_connections may have missed it
                    conn.close()
                    return
                self._spawn(self._peer_loop, "raylite-peer", conn, None, self._accepted)

    def _peer(self, address: str, channel: bytes = b"g") -> Connection:
        """Our connection to a peer: channel b"t" carries task pushes (read by the worker's
        executing thread), b"g" everything else (read at once by a reader thread)."""
        peers = self._task_peers if channel == b"t" else self._peers
        conn = peers.get(address)
        if conn is not None:
            return conn
        with self._connect_lock:
            conn = peers.get(address)
            if conn is None:
                conn = connect(address, self._token, channel=channel)
                peers[address] = conn
                self._spawn(self._peer_loop, "raylite-peer", conn, address, peers)
        return conn

    def _daemon_at(self, address: str) -> Connection:
        """Our connection to another node's daemon (leases spilled there); our own node's
        daemon for its own address."""
        if address == self.daemon_address:
            return self._daemon
        self._dead_daemon(address)
        return self._peer(address)

    def register_inbound(self, owner: str, conn: Connection) -> None:
        """Borrow notices to `owner` go on its task connection to us, so they arrive
        before the task's own reply (requests awaiting a reply never do)."""
        if self._inbound.get(owner) is not conn:
            with self._connect_lock:
                self._inbound[owner] = conn

    def inbound_closed(self, conn: Connection) -> None:
        with self._connect_lock:
            for a in [a for a, c in self._inbound.items() if c is conn]:
                del self._inbound[a]

    def _notify(self, address: str, msg: Any) -> None:
        """A one-way message to a peer, on its connection to us when it has one."""
        conn = self._inbound.get(address)
        try:
            (conn or self._peer(address)).send(msg)
        except (ConnectionError, OSError):
            pass  # the peer is gone; whatever it owned is lost with it

    def send_daemon(self, msg: Any) -> None:
        self.endpoint.notify(self._daemon, msg)

    def _to_daemon(self, msg: Any) -> None:
        """A one-way message for a caller who must hear that the cluster is gone."""
        if self._gone is None:
            try:
                self.endpoint.notify(self._daemon, msg)
                return
            except OSError:
                pass
        raise RaySystemError(self._gone or self._gone_message())

    def _send_all(self, out: list) -> None:
        """Carries out the owner core's instructions, in order, outside the lock: wake-ups,
        the daemon's requests as wire messages, sends to workers (a lost connection is its
        reader thread's business)."""
        for target, x in out:
            if target is WAKE:
                x()
                continue
            try:
                if target is DAEMON:
                    at = getattr(x, "daemon", "")
                    (self._daemon_at(at) if at else self._daemon).send(_WIRE[type(x)](x))
                else:
                    target.send(x)
            except (OSError, ConnectionError):
                if target is DAEMON and type(x) is LeaseRequest and x.daemon and \
                        x.daemon != self.daemon_address:
                    # that node's daemon cannot be reached: ours takes the request (spilled:
                    # it grants or queues it here, and never sends it on)
                    self._lease_granted(m.LeaseGranted(x.req, b"", b"", "", (),
                                                       self.daemon_address))

    def _call(self, msg: Any, timeout: float | None = 30.0, on_wait: Any = None) -> Any:
        """A request to the node daemon, answered within `timeout` seconds, or RaySystemError;
        with on_wait, a waiter is shown while the answer is late (spill_wait.result_saying)."""
        call = self.endpoint.call(self._daemon, msg)
        if self._gone is not None:  # looked at after booking: _daemon_loop sets it, then fails us
            call.fail(ConnectionError(self._gone))
        try:
            if on_wait is None or timeout is None:
                return call.result(timeout)
            from .spill_wait import result_saying
            return result_saying(call, timeout, on_wait)
        except TimeoutError:
            raise RaySystemError(f"The node daemon did not answer {type(msg).__name__} within "
                                 f"{timeout}s; it may be overloaded or dead.") from None
        except ConnectionError:
            if self._gone is None and self._closing.is_set():
                raise RaySystemError("raylite.shutdown() was called: this process is no longer "
                                     "connected to the cluster. Call raylite.init() again.") from None
            raise RaySystemError(self._gone or self._gone_message()) from None

    def _daemon_loop(self) -> None:
        self.endpoint.serve(self._daemon)  # until the daemon goes: its calls have failed then
        if not self._closing.is_set() and not self._stopping:
            self._gone = self._gone_message()
        self.endpoint.lost(self._daemon)   # again, now that _gone says why: calls booked since
        if self.executor is not None:
            self.executor.stop()
        elif self._gone is not None:
            # Until shutdown(): calls that were queued, retried or made since fail too.
            self._fail_queued()
            while not self._closing.wait(_SWEEP_S):
                self._fail_queued()

    def _gone_message(self) -> str:
        """Why every call fails from now on: the node daemon (our way into the cluster) is gone."""
        how = "its node daemon exited"
        if self._proc is not None:  # we started it: say how it ended
            try:
                code = self._proc.wait(0.5)
            except Exception:
                code = None
            if code is not None and code < 0:
                try:
                    how += f", killed by {signal.Signals(-code).name}"
                except ValueError:
                    how += f", killed by signal {-code}"
            elif code is not None:
                how += f" with exit code {code}"
        address = getattr(self, "daemon_address", None) or self._daemon.peer
        return (f"The raylite cluster at {address} is gone ({how}). Call raylite.shutdown() "
                "and raylite.init() again.")

    def _fail_queued(self) -> None:
        """Fails every task and actor call that has no worker yet: with the daemon gone none
        will get one. Calls already running on a live worker may still finish."""
        with self._lock:
            out = self._core.fail_queued(RaySystemError(self._gone))
        self._send_all(out)

    def _on_actor_info(self, conn: Any, msg: m.ActorInfo) -> None:
        if msg.req in self._core.actors.reqs:
            self._actor_resolved(msg)

    def _on_get_state(self, conn: Any, msg: m.GetState) -> None:
        self.endpoint.reply(conn, msg, m.StateReply(msg.req, owner_state(self)))

    def _peer_loop(self, conn: Connection, address: str | None, registry: Any) -> None:
        self.endpoint.serve(conn)  # until it closes; its pending calls have failed then
        if type(registry) is set:
            registry.discard(conn)
        elif registry is not None:
            with self._connect_lock:
                if registry.get(address) is conn:
                    del registry[address]
        if not self._closing.is_set():
            self._peer_lost(conn)

    _recv_from = staticmethod(rpc.read)

    # -- Ctrl-C: a call is booked and sent whole (read_turn.shield) ----------------
    def submit_task(self, function: Any, args: tuple, kwargs: dict, options: Any) -> list:
        if self._gone is not None:
            raise RaySystemError(self._gone)
        if not shielding():
            return TaskSubmission.submit_task(self, function, args, kwargs, options)
        shield.on = True  # else a lease could be left holding a task that was never sent
        try:
            return TaskSubmission.submit_task(self, function, args, kwargs, options)
        finally:
            shield.on = False
            if shield.pending is not None:
                shield.off()

    def submit_actor_task(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                          options: Any) -> list:
        if self._gone is not None:
            raise RaySystemError(self._gone)
        if not shielding():
            return ActorCalls.submit_actor_task(self, actor_id, method, args, kwargs, options)
        shield.on = True
        try:
            return ActorCalls.submit_actor_task(self, actor_id, method, args, kwargs, options)
        finally:
            shield.on = False
            if shield.pending is not None:
                shield.off()

    def _terminate_unreferenced(self) -> None:
        try:
            ActorCalls._terminate_unreferenced(self)
        except RaySystemError:
            pass  # the cluster is gone, and its actors with it

    # -- cluster state and context --------------------------------------------
    def set_job(self, job_id: bytes, namespace: str) -> None:
        """A worker serves this job now (its namespace applies to get_actor and names)."""
        self.job_id, self.namespace = job_id, namespace
        self._core.events.job_id = job_id

    def state(self, kinds: tuple = m.KINDS, owners: bool = True) -> Any:
        """The cluster's records (a StateSnapshot) of `kinds`; with `owners`, the tasks and
        objects of every driver and worker that answers its node daemon in time."""
        return self._call(m.GetState(0, kinds, owners)).snapshot

    def named_actors(self) -> list[tuple[str, str]]:
        return [(a.namespace, a.name) for a in self.state(("actors",), False).actors
                if a.name and a.state != "DEAD"]

    def task_events(self, request: Any, timeout: float) -> Any:
        self.send_task_events()  # first, on the connection the request takes: ours are in it
        return self._call(request, timeout)

    def nodes(self) -> list[dict]:
        return ray_nodes(self.state(("nodes",), False))

    def cluster_resources(self) -> dict:
        return resource_sum(self.state(("nodes",), False), "resources_total")

    def available_resources(self) -> dict:
        free = resource_sum(self.state(("nodes",), False), "resources_available")
        return {k: v for k, v in free.items() if v > 0}

    def context(self) -> ContextInfo:
        return context.info(self.job_id, self.node_id, self.worker_id, self.namespace)

    def is_cancelled(self, task_id: bytes) -> bool:
        ex = self.executor
        return ex is not None and task_id in ex.cancelled

    def info(self) -> InitInfo:
        return InitInfo(address=self.daemon_address, node_id=self.node_id.hex(),
                        namespace=self.namespace, session_dir=self.session_dir, mode="cluster")

    # -- shutdown --------------------------------------------------------------
    def close_connections(self) -> None:
        self._closing.set()
        for c in [getattr(self, "_daemon", None), getattr(self, "_listener", None),
                  *list(self._peers.values()), *list(self._task_peers.values()),
                  *self._accepted.copy()]:
            if c is not None:
                c.close()

    def shutdown(self) -> None:
        if self._closing.is_set():
            return
        if self._gone is None and getattr(self, "_daemon", None) is not None:
            self.flush_reports()
        if self._core is not None and getattr(self, "_daemon", None) is not None:
            self.send_task_events()  # the last ones: a short script's tasks are listed too
        if self._proc is not None and getattr(self, "_daemon", None) is not None:
            self._stopping = True  # its goodbye is no loss
            try:
                self._call(m.Shutdown(0), timeout=5)
            except Exception:
                pass  # the daemon is already gone; stop_head() reaps it
        self.close_connections()
        shield.disarm()
        if self._proc is not None:
            if self._gone is not None and self._proc.poll() is None:
                self._proc.terminate()  # it dropped us but lives on: it was not told to stop
            stop_head(self._proc)
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join(timeout=2)
        if self._core is not None:
            error = dumps_error(RaySystemError("raylite.shutdown() was called while this object "
                                               "was still pending."))
            with self._lock:
                out = self._core.fail_pending(error)
            self._send_all(out)
        if self._gone is not None and self._proc is not None:
            # The daemon we started died without cleaning up: its segments go (named after
            # its node: only ours), and its session dir but its logs, as at a clean stop.
            from .._session import end
            shm.remove_node_segments(self.node_tag)
            end(self.session_dir)
