"""ClusterRuntime: the core worker every driver and worker process runs.

    user threads ──submit──► _Key queues ──RequestLease──► node daemon
                                 ▲                              │ LeaseGranted(worker address)
                                 │ TaskDone                     ▼
                        peer reader threads ◄──── direct TCP ───► leased worker
                        (or the thread waiting in get(), when it holds the read turn)
    borrowers ──GetObject──► listener ──► this process's store (it owns what it created)

State owned here, all under `_lock`: the object store (`_store`, id -> _Obj,
with local reference counts in `_counts`), in-flight tasks (`_tasks`), lease
queues per scheduling key (`_keys`), and the caller side of every actor this
process has called (`_actors`, each with its own send lock so calls to one
actor leave in submission order). The daemon sees only leases and actor
lifecycle; task pushes and results go straight between owner and worker.

When the daemon connection drops (the daemon died), `_gone` says so: every
pending daemon call, every task and actor call that has no worker yet, and
every later call fails at once with one RaySystemError naming the cluster;
calls already running on live workers may still finish. shutdown() then
removes what a dead daemon we started left behind (its /dev/shm segments and
session dir).

Ctrl-C (read_turn.shield): on the main thread, submitting a task or actor call
and reading replies in get() run with SIGINT deferred, so a KeyboardInterrupt
never leaves a call booked but unsent or a reply read but unhandled.

Task submission and leases live in cluster_tasks.py; objects, ownership and
reference counting in cluster_objects.py; actor calls in cluster_actors.py;
starting a head for a driver in cluster_start.py.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import sys
import threading
from typing import Any

from .. import _ids
from .._object_store import shm
from .._protocol import messages as m
from .._protocol.read_turn import shield, shielding
from .._protocol.transport import Connection, Listener, connect
from .._serialization import dumps_error
from .._session import token_for
from ..exceptions import RaySystemError
from . import context
from .base import ContextInfo, InitInfo, Runtime
from .cluster_actors import ActorCalls, _Actor
from .cluster_objects import ObjectPlane, _Obj
from .cluster_start import start_head, stop_head
from .cluster_state import owner_state, ray_nodes, resource_sum
from .cluster_tasks import TaskSubmission, _Key, _Task
from .factory import InitRequest


_SWEEP_S = 0.05  # once the daemon is gone: how often calls queued since are failed


class _Reply:
    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None


class ClusterRuntime(TaskSubmission, ObjectPlane, ActorCalls, Runtime):
    name = "cluster"

    def __init__(self, request: InitRequest | None, *, _worker: tuple | None = None):
        shield.reset()
        self._lock = threading.RLock()
        self._store: dict[bytes, _Obj] = {}
        self._counts: dict[bytes, int] = {}
        self._tasks: dict[bytes, _Task] = {}
        self._task_of: dict[bytes, bytes] = {}          # return id -> task id
        self._keys: dict[Any, _Key] = {}
        self._lease_reqs: dict[int, _Key] = {}
        self._inflight: dict[Connection, set] = {}
        self._sent_functions: dict[Connection, set] = {}
        self._blobs: dict[bytes, bytes] = {}            # function id -> pickled function
        self._templates: dict[int, tuple] = {}          # id(options) -> _template()
        self._actors: dict[bytes, _Actor] = {}
        self._actor_reqs: dict[int, bytes] = {}
        self._fetches: dict[int, tuple[bytes, Connection]] = {}
        self._rpcs: dict[int, _Reply] = {}
        self._borrowed_from: dict[bytes, str] = {}      # borrowed object id -> its owner
        self._pending_frees: list[bytes] = []           # shared-memory objects to hand back
        self._pending_msgs: list[tuple] = []            # (owner, RemoveBorrower) from destructors
        self._pending_terminates: list[bytes] = []      # actors whose last handle went
        self._peers: dict[str, Connection] = {}        # connections this process dialed
        self._task_peers: dict[str, Connection] = {}   # ... for pushing tasks to workers
        self._inbound: dict[str, Connection] = {}      # owner address -> its connection to us
        self._connect_lock = threading.Lock()
        self._req = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._gone: str | None = None                   # why the cluster is gone (daemon lost)
        self._stopping = False                          # shutdown() asked the daemon to stop
        self._proc: Any = None
        self.executor: Any = None
        self.actor_id: bytes | None = None
        self.log_to_driver = True
        self._env_vars: dict = {}
        if _worker is not None:
            daemon_address, token, self.worker_id, self.session_dir, self.node_id = _worker
            self._token = token
            self.job_id, self.namespace = b"", ""
            self.node_tag = self.node_id.hex()[:12]
            self._connect(daemon_address)
            return
        self.worker_id = _ids.random_id()
        self.log_to_driver = request.log_to_driver
        self._env_vars = dict((request.runtime_env or {}).get("env_vars") or {})
        if request.mode == "start":
            self._proc, daemon_address, self._token = start_head(request)
        else:
            daemon_address = request.address
            self._token = token_for(daemon_address, request.temp_dir)
        try:
            self._connect(daemon_address)
            reply = self._call(m.RegisterClient(0, "driver", os.getpid(), self.address,
                                                request.namespace, None, None, self._env_vars))
        except BaseException:
            self.shutdown()
            raise
        self.job_id, self.node_id = reply.job_id, reply.node_id
        self.node_tag = self.node_id.hex()[:12]
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
        self._daemon.send(m.RegisterWorker(self.worker_id, os.getpid(), self.address))
        self._spawn(self._maintain, "raylite-leases")

    # -- connections ---------------------------------------------------------
    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _connect(self, daemon_address: str) -> None:
        host = daemon_address.rpartition(":")[0] or "127.0.0.1"
        self._daemon = connect(daemon_address, self._token)
        self._listener = Listener(host, 0, self._token)
        self.address = self._listener.address
        self._handlers = {m.TaskDone: self._task_done, m.ObjectValue: self._object_value,
                          m.GetObject: self._serve_get, m.AddBorrower: self._borrower,
                          m.RemoveBorrower: self._borrower}
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
                self._spawn(self._peer_loop, "raylite-peer", conn, None, None)

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
        self._daemon.send(msg)

    def _to_daemon(self, msg: Any) -> None:
        """A one-way message for a caller who must hear that the cluster is gone."""
        if self._gone is None:
            try:
                self._daemon.send(msg)
                return
            except OSError:
                pass
        raise RaySystemError(self._gone or self._gone_message())

    def _send_all(self, sends: list) -> None:
        for conn, msg in sends:
            try:
                conn.send(msg)
            except OSError:
                pass  # the reader thread of that connection handles the loss

    def _call(self, msg: Any, timeout: float | None = 30.0) -> Any:
        req = next(self._req)
        reply = self._rpcs[req] = _Reply()
        if self._gone is None:  # checked after registering: _daemon_loop sets it, then wakes us
            try:
                self._daemon.send(msg._replace(req=req))
            except OSError:
                reply.event.set()
        else:
            reply.event.set()
        if not reply.event.wait(timeout):
            self._rpcs.pop(req, None)
            raise RaySystemError(f"The node daemon did not answer {type(msg).__name__} within "
                                 f"{timeout}s; it may be overloaded or dead.")
        if reply.value is None:
            self._rpcs.pop(req, None)
            if self._gone is None and self._closing.is_set():
                raise RaySystemError("raylite.shutdown() was called: this process is no longer "
                                     "connected to the cluster. Call raylite.init() again.")
            raise RaySystemError(self._gone or self._gone_message())
        return reply.value

    def _daemon_loop(self) -> None:
        while True:
            try:
                msg = self._daemon.recv()
            except (EOFError, OSError):
                break
            try:
                self._on_daemon(msg)
            except Exception as e:  # never let one bad message stop the loop
                print(f"raylite: error handling {type(msg).__name__}: {e!r}", file=sys.stderr)
        if not self._closing.is_set() and not self._stopping:
            self._gone = self._gone_message()
        for reply in list(self._rpcs.values()):
            reply.event.set()
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
            failed = [t for t in self._tasks.values() if t.conn is None]
            for t in failed:
                self._drop_task(t.task_id)
            for k in self._keys.values():
                k.queue.clear()
                k.requests = 0
            for st in self._actors.values():
                st.queue.clear()
                st.resolving = False
            self._lease_reqs.clear()
            self._actor_reqs.clear()
        error = dumps_error(RaySystemError(self._gone)) if failed else None
        for t in failed:
            for rid in t.return_ids:
                self._complete(rid, None, error)

    def _on_daemon(self, msg: Any) -> None:
        t = type(msg)
        if t is m.LeaseGranted:
            self._lease_granted(msg)
        elif t is m.ActorInfo and msg.req in self._actor_reqs:
            self._actor_resolved(msg)
        elif t is m.ReturnIdleLeases:
            self._return_idle(0.0)
        elif t is m.LogLines:
            if self.log_to_driver:
                out = sys.stderr if msg.stderr else sys.stdout
                out.write("".join(f"{msg.prefix} {line}\n" for line in msg.lines))
                out.flush()
        elif t is m.Warning:
            print(f"raylite warning: {msg.text}", file=sys.stderr, flush=True)
        elif t is m.StartActor:
            self.executor.handle(None, msg)
        elif t is m.GetState:
            self._daemon.send(m.StateReply(msg.req, owner_state(self)))
        elif hasattr(msg, "req"):
            reply = self._rpcs.pop(msg.req, None)
            if reply is not None:
                reply.value = msg
                reply.event.set()

    def _peer_loop(self, conn: Connection, address: str | None, registry: dict | None) -> None:
        turn = conn.turn
        while True:
            turn.background_wait()  # a thread in get() may be reading this connection itself
            if not conn.inbox:      # else: what an interrupted reader left, handled first
                msgs = self._recv_from(conn)
                if msgs is None:
                    break
                conn.inbox.extend(msgs)
            self._handle_inbox(conn)
            turn.background_done()
        conn.close()
        if registry is not None:
            with self._connect_lock:
                if registry.get(address) is conn:
                    del registry[address]
        if not self._closing.is_set():
            self._peer_lost(conn)

    def _recv_from(self, conn: Connection, poll: float | None = None) -> list | None:
        """The next messages from a peer: blocking until some come (recv_some), or those that
        come within `poll` seconds (maybe none); None once the connection is closed or sent
        garbage, which closes it: its reader thread then reports the loss."""
        try:
            return conn.recv_some() if poll is None else conn.poll(poll)
        except (EOFError, OSError):
            return None
        except Exception as e:
            print(f"raylite: unreadable message from {conn.peer}: {e!r}", file=sys.stderr)
            conn.close()
            return None

    def _handle_inbox(self, conn: Connection) -> None:
        """Handles what was read from `conn`, one message at a time: each leaves the inbox as
        its handling starts, so an exception anywhere leaves the rest to the next reader."""
        inbox = conn.inbox
        while inbox:
            self._on_peer(conn, inbox.popleft())

    def _on_peer(self, conn: Connection, msg: Any) -> None:
        try:
            h = self._handlers.get(type(msg))
            if h is not None:
                h(conn, msg)
            elif self.executor is not None:
                self.executor.handle(conn, msg)
        except Exception as e:  # never let one bad message stop the reading
            print(f"raylite: error handling {type(msg).__name__}: {e!r}", file=sys.stderr)

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

    def state(self, kinds: tuple = m.KINDS, owners: bool = True) -> Any:
        """The cluster's records (a StateSnapshot) of `kinds`; with `owners`, the tasks and
        objects of every driver and worker that answers its node daemon in time."""
        return self._call(m.GetState(0, kinds, owners)).snapshot

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
                  *list(self._peers.values()), *list(self._task_peers.values())]:
            if c is not None:
                c.close()

    def shutdown(self) -> None:
        if self._closing.is_set():
            return
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
        error = dumps_error(RaySystemError("raylite.shutdown() was called while this object was "
                                           "still pending."))
        with self._lock:
            pending = [id for id, o in self._store.items() if not o.ready]
        for id in pending:
            self._complete(id, None, error)
        if self._gone is not None and self._proc is not None:
            self._clean_after_daemon()

    def _clean_after_daemon(self) -> None:
        """The daemon we started died without cleaning up: its shared-memory segments (all
        named after its node, only our own files) and its session dir go now."""
        shm.remove_node_segments(self.node_tag)
        shutil.rmtree(self.session_dir, ignore_errors=True)
