"""ClusterRuntime: the core worker every driver and worker process runs.

    user threads ──submit──► _Key queues ──RequestLease──► node daemon
                                 ▲                              │ LeaseGranted(worker address)
                                 │ TaskDone                     ▼
                        peer reader threads ◄──── direct TCP ───► leased worker
    borrowers ──GetObject──► listener ──► this process's store (it owns what it created)

State owned here, all under `_lock`: the object store (`_store`, id -> _Obj,
with local reference counts in `_counts`), in-flight tasks (`_tasks`), lease
queues per scheduling key (`_keys`), and the caller side of every actor this
process has called (`_actors`, each with its own send lock so calls to one
actor leave in submission order). The daemon sees only leases and actor
lifecycle; task pushes and results go straight between owner and worker.

Objects, ownership and reference counting live in cluster_objects.py; actor
calls in cluster_actors.py; starting a head for a driver in cluster_start.py.
"""
from __future__ import annotations

import itertools
import os
import pickle
import sys
import threading
import time
from collections import deque
from typing import Any, Sequence

from .. import _ids
from .._protocol import messages as m
from .._protocol.transport import Connection, Listener, connect
from .._object_store import shm
from .._serialization import dumps, dumps_error, loads
from ..exceptions import (ActorDiedError, OwnerDiedError, RaySystemError, TaskCancelledError,
                          WorkerCrashedError)
from . import context, execution
from .base import ActorMeta, ContextInfo, InitInfo, Runtime
from .cluster_actors import ActorCalls, _Actor
from .cluster_objects import ObjectPlane, _Obj
from .cluster_start import start_head, stop_head, token_for
from .factory import InitRequest
from .object_ref import ObjectRef

_FAST = (int, float, str, bool, type(None))
IDLE_LEASE_S = 0.2          # an idle lease is returned after this long
MAX_LEASE_REQUESTS = 16     # outstanding lease requests per scheduling key


class _Task:
    __slots__ = ("task_id", "msg", "return_ids", "key", "retries", "retry_exceptions", "name",
                 "conn", "cancelled", "deps", "actor_id", "hold", "lease")

    def __init__(self, task_id: bytes, msg: Any, return_ids: tuple, name: str, retries: int,
                 retry_exceptions: Any, hold: list, actor_id: bytes | None = None):
        self.task_id, self.msg, self.return_ids, self.name = task_id, msg, return_ids, name
        self.retries, self.retry_exceptions, self.hold = retries, retry_exceptions, hold
        self.actor_id = actor_id
        self.key: Any = None
        self.conn: Connection | None = None
        self.lease: Any = None
        self.cancelled = False
        self.deps = 0


class _Lease:
    __slots__ = ("lease_id", "conn", "gpu_ids", "key", "task", "idle_since")

    def __init__(self, lease_id: bytes, conn: Connection, gpu_ids: tuple, key: Any):
        self.lease_id, self.conn, self.gpu_ids, self.key = lease_id, conn, gpu_ids, key
        self.task: _Task | None = None
        self.idle_since = 0.0


class _Key:
    __slots__ = ("demand", "name", "queue", "idle", "requests")

    def __init__(self, demand: dict, name: str):
        self.demand, self.name = demand, name
        self.queue: deque[_Task] = deque()
        self.idle: list[_Lease] = []
        self.requests = 0


class _Reply:
    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None


class ClusterRuntime(ObjectPlane, ActorCalls, Runtime):
    name = "cluster"

    def __init__(self, request: InitRequest | None, *, _worker: tuple | None = None):
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
        self._peers: dict[str, Connection] = {}        # connections this process dialed
        self._task_peers: dict[str, Connection] = {}   # ... for pushing tasks to workers
        self._inbound: dict[str, Connection] = {}      # owner address -> its connection to us
        self._connect_lock = threading.Lock()
        self._req = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
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
            if conn is None:
                continue
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

    def _send_all(self, sends: list) -> None:
        for conn, msg in sends:
            try:
                conn.send(msg)
            except OSError:
                pass  # the reader thread of that connection handles the loss

    def _call(self, msg: Any, timeout: float | None = 30.0) -> Any:
        req = next(self._req)
        reply = self._rpcs[req] = _Reply()
        self._daemon.send(msg._replace(req=req))
        if not reply.event.wait(timeout):
            self._rpcs.pop(req, None)
            raise RaySystemError(f"The node daemon did not answer {type(msg).__name__} within "
                                 f"{timeout}s; it may be overloaded or dead.")
        if reply.value is None:
            raise RaySystemError("Lost the connection to the node daemon; the cluster is gone. "
                                 "Call raylite.shutdown() and init() again.")
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
        for reply in list(self._rpcs.values()):
            reply.event.set()
        if self.executor is not None:
            self.executor.stop()

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
        elif t is m.ListObjects:
            self._daemon.send(m.ObjectList(msg.req, self.address,
                                           "worker" if self.executor else "driver", self.list_objects()))
        elif hasattr(msg, "req"):
            reply = self._rpcs.pop(msg.req, None)
            if reply is not None:
                reply.value = msg
                reply.event.set()

    def _peer_loop(self, conn: Connection, address: str | None, registry: dict | None) -> None:
        handlers = self._handlers
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            except Exception as e:
                print(f"raylite: unreadable message from {conn.peer}: {e!r}", file=sys.stderr)
                break
            try:
                h = handlers.get(type(msg))
                if h is not None:
                    h(conn, msg)
                elif self.executor is not None:
                    self.executor.handle(conn, msg)
            except Exception as e:
                print(f"raylite: error handling {type(msg).__name__}: {e!r}", file=sys.stderr)
        conn.close()
        if registry is not None:
            with self._connect_lock:
                if registry.get(address) is conn:
                    del registry[address]
        if not self._closing.is_set():
            self._peer_lost(conn)

    # -- argument preparation ------------------------------------------------
    def _prepare_args(self, args: tuple, kwargs: dict) -> tuple[Any, dict, list, list]:
        """Serializes (args, kwargs); returns (blob, inlined values, unready owned deps, refs held).

        Large arguments go to shared memory as an object this process owns and
        frees once the task is done; the blob is then a ShmObject.
        """
        from .. import _ids

        if not kwargs and all(type(a) in _FAST for a in args):  # the common case, no refs inside
            return pickle.dumps((args, kwargs), 5), {}, [], []
        data, refs = self.encode((args, kwargs), _ids.new_id(), self.address)
        if not refs:
            return data, {}, [], refs
        top = {id(a) for a in args if isinstance(a, ObjectRef)} | \
              {id(v) for v in kwargs.values() if isinstance(v, ObjectRef)}
        inlined, deps = {}, []
        with self._lock:
            for r in refs:
                o = self._store.get(r._id)
                if id(r) not in top or o is None:
                    continue
                if o.ready:
                    inlined[r._id] = (o.data, o.error)
                    o.shared = True
                elif o.owned:
                    deps.append(r)
        return data, inlined, deps, refs

    def _function_blob(self, fn: Any, payload: Any) -> tuple[bytes, bytes]:
        blob = fn._blob
        if blob is None or blob[0] is not self:
            fn._blob = blob = (self, _ids.new_id(), dumps(payload))
            self._blobs[blob[1]] = blob[2]
        return blob[1], blob[2]

    # -- tasks ---------------------------------------------------------------
    def _template(self, function: Any, options: Any) -> tuple:
        """What every call of (function, options) shares, computed once."""
        t = self._templates.get(id(options))
        if t is None or t[0] is not options or t[1] is not function or function._blob is None:
            fid, _ = self._function_blob(function, function._function)
            env = {**self._env_vars, **((options.runtime_env or {}).get("env_vars") or {})} or None
            demand = options.demand()
            t = (options, function, fid, options.name or function._name, env, demand,
                 tuple(sorted(demand.items())))
            self._templates[id(options)] = t
        return t

    def submit_task(self, function: Any, args: tuple, kwargs: dict, options: Any) -> list[ObjectRef]:
        _, _, fid, name, env, demand, key = self._template(function, options)
        data, inlined, deps, hold = self._prepare_args(args, kwargs)
        task_id = _ids.new_id()
        return_ids = (_ids.new_id(),) if options.num_returns == 1 else \
            tuple(_ids.new_id() for _ in range(options.num_returns))
        msg = m.PushTask(task_id, fid, None, data, inlined, return_ids, name, self.job_id,
                         self.namespace, env, (), demand, self.address, options.max_calls)
        task = _Task(task_id, msg, return_ids, name, options.max_retries, options.retry_exceptions, hold)
        task.key = key
        with self._lock:
            for rid in return_ids:
                self._store[rid] = _Obj(True)
                self._task_of[rid] = task_id
            self._tasks[task_id] = task
            refs = [ObjectRef(rid, self.address, self) for rid in return_ids]
            if deps:
                task.deps = len(deps)
                for r in deps:
                    o = self._store[r._id]
                    if o.callbacks is None:
                        o.callbacks = []
                    o.callbacks.append(lambda t=task: self._dep_ready(t))
                sends: list = []
            else:
                sends = self._enqueue(task, demand)
        self._send_all(sends)
        return refs

    def _dep_ready(self, task: _Task) -> None:
        with self._lock:
            task.deps -= 1
            if task.deps > 0 or task.task_id not in self._tasks:
                return
            # Every dependency is ready now: inline their values (or fail like them).
            inlined = dict(task.msg.inlined)
            for r in task.hold:
                o = self._store.get(r._id)
                if o is not None and o.ready and r._id not in inlined and o.owned:
                    inlined[r._id] = (o.data, o.error)
                    o.shared = True
            task.msg = task.msg._replace(inlined=inlined)
            sends = self._enqueue(task, task.msg.resources)
        self._send_all(sends)

    def _enqueue(self, task: _Task, demand: dict) -> list:
        k = self._keys.get(task.key)
        if k is None:
            k = self._keys[task.key] = _Key(demand, task.name)
        k.queue.append(task)
        return self._dispatch(k)

    def _dispatch(self, k: _Key) -> list:
        sends = []
        while k.queue and k.idle:
            sends.append(self._push(k.idle.pop(), k.queue.popleft()))
        want = min(len(k.queue), MAX_LEASE_REQUESTS) - k.requests
        for _ in range(want):
            req = next(self._req)
            self._lease_reqs[req] = k
            k.requests += 1
            sends.append((self._daemon, m.RequestLease(req, k.demand, k.name)))
        return sends

    def _push(self, lease: _Lease, task: _Task) -> tuple:
        lease.task, task.lease, task.conn = task, lease, lease.conn
        self._inflight.setdefault(lease.conn, set()).add(task.task_id)
        msg = task.msg
        if lease.gpu_ids:
            msg = msg._replace(gpu_ids=lease.gpu_ids)
        sent = self._sent_functions.setdefault(lease.conn, set())
        if msg.function_id not in sent:
            sent.add(msg.function_id)
            msg = msg._replace(function=self._function_payload(msg.function_id))
        return lease.conn, msg

    def _function_payload(self, fid: bytes) -> bytes:
        return self._blobs[fid]

    def _lease_granted(self, msg: m.LeaseGranted) -> None:
        try:
            conn = self._peer(msg.address, b"t")
        except (ConnectionError, OSError):
            conn = None
        with self._lock:
            k = self._lease_reqs.pop(msg.req, None)
            if k is not None:
                k.requests -= 1
            if k is None or conn is None or self._closing.is_set():
                sends = [(self._daemon, m.ReturnLease(msg.lease_id, conn is None))]
                if k is not None:
                    sends += self._dispatch(k)
            else:
                lease = _Lease(msg.lease_id, conn, msg.gpu_ids, k)
                if k.queue:
                    sends = [self._push(lease, k.queue.popleft())]
                else:
                    sends = [(self._daemon, m.ReturnLease(msg.lease_id))]
        self._send_all(sends)

    def _task_done(self, conn: Connection, msg: m.TaskDone) -> None:
        sends: list = []
        with self._lock:
            task = self._tasks.get(msg.task_id)
            if task is None:
                return
            self._inflight.get(conn, set()).discard(msg.task_id)
            lease = task.lease
            if lease is not None:
                lease.task = None
                k = lease.key
                if k.queue:
                    sends.append(self._push(lease, k.queue.popleft()))
                else:
                    lease.idle_since = time.monotonic()
                    k.idle.append(lease)
            error = msg.error
            if error is not None and task.cancelled:
                error = dumps_error(TaskCancelledError(task.task_id.hex()))
            elif error is not None and msg.retryable and task.retry_exceptions and task.retries != 0:
                cause = getattr(loads(error), "cause", None)
                if cause is not None and execution.should_retry(cause, task.retry_exceptions):
                    task.retries -= 1
                    sends += self._resubmit(task)
                    error = None
                    msg = None
            if msg is not None:
                self._drop_task(task.task_id)
        self._send_all(sends)
        if msg is None:
            return
        if error is not None:
            for rid in task.return_ids:
                self._complete(rid, None, error)
        else:
            for rid, data in zip(task.return_ids, msg.results):
                self._complete(rid, data, None)

    def _drop_task(self, task_id: bytes) -> None:
        """Forgets a finished task (lock held); its shared-memory arguments are freed."""
        task = self._tasks.pop(task_id, None)
        if task is not None and type(task.msg.args) is shm.ShmObject:
            self._pending_frees.append((task.msg.args.object_id, False))

    def _resubmit(self, task: _Task) -> list:
        task.lease = task.conn = None
        if task.actor_id is not None:
            st = self._actors[task.actor_id]
            st.queue.appendleft(task)
            return self._resolve_actor(st)
        return self._enqueue(task, task.msg.resources)

    def _peer_lost(self, conn: Connection) -> None:
        failed: list[tuple[_Task, bytes]] = []
        sends: list = []
        with self._lock:
            self._sent_functions.pop(conn, None)
            for k in self._keys.values():
                k.idle = [lease for lease in k.idle if lease.conn is not conn]
            lost_objects = [oid for req, (oid, c) in list(self._fetches.items())
                            if c is conn and self._fetches.pop(req)]
            ids = sorted(self._inflight.pop(conn, ()),
                         key=lambda t: self._tasks[t].return_ids[:1] if t in self._tasks else ())
            for task_id in ids:
                task = self._tasks.get(task_id)
                if task is None:
                    continue
                if task.actor_id is not None:
                    st = self._actors.get(task.actor_id)
                    if st is not None and st.conn is conn:
                        st.conn, st.state = None, "UNKNOWN"
                if task.cancelled:
                    err = TaskCancelledError(task.task_id.hex())
                elif task.retries != 0:
                    task.retries -= 1
                    sends += self._resubmit(task)
                    continue
                elif task.actor_id is not None:
                    err = ActorDiedError(f"The actor died while running {task.name}: its worker "
                                         "process exited (killed, crashed, or out of memory).",
                                         task.actor_id.hex())
                else:
                    err = WorkerCrashedError(f"The worker running {task.name} died (killed, crashed "
                                             "or out of memory) and its retries are spent "
                                             "(raise max_retries to retry more).")
                self._drop_task(task_id)
                failed.append((task, dumps_error(err)))
        self._send_all(sends)
        for task, err in failed:
            for rid in task.return_ids:
                self._complete(rid, None, err)
        for oid in lost_objects:
            self._complete(oid, None, dumps_error(OwnerDiedError(
                oid.hex(), f"Object {oid.hex()} is lost: its owner process exited.")))

    def _return_idle(self, older_than: float) -> None:
        now = time.monotonic()
        sends = []
        with self._lock:
            for k in self._keys.values():
                keep = []
                for lease in k.idle:
                    if now - lease.idle_since >= older_than:
                        sends.append((self._daemon, m.ReturnLease(lease.lease_id)))
                    else:
                        keep.append(lease)
                k.idle = keep
        self._send_all(sends)

    def _maintain(self) -> None:
        while not self._closing.wait(IDLE_LEASE_S / 4):
            self._return_idle(IDLE_LEASE_S)
            self._flush_frees()

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        with self._lock:
            task = self._tasks.get(self._task_of.get(ref._id, b""))
            if task is None:
                return
            if task.actor_id is not None and force:
                raise ValueError("force=True is not supported for actor tasks; use raylite.kill() "
                                 "on the actor instead.")
            task.cancelled = True
            if task.conn is None:
                if task.key is not None and task.key in self._keys and task in self._keys[task.key].queue:
                    self._keys[task.key].queue.remove(task)
                elif task.actor_id is not None and task in self._actors[task.actor_id].queue:
                    self._actors[task.actor_id].queue.remove(task)
                self._drop_task(task.task_id)
                queued = True
            else:
                queued = False
                conn = task.conn
        if queued:
            err = dumps_error(TaskCancelledError(task.task_id.hex()))
            for rid in task.return_ids:
                self._complete(rid, None, err)
        else:  # on the general channel: the task channel's reader is busy running the task
            try:
                self._peer(conn.peer).send(m.CancelTask(task.task_id, force))
            except (ConnectionError, OSError):
                pass

    # -- cluster state and context --------------------------------------------
    def set_job(self, job_id: bytes, namespace: str) -> None:
        """A worker serves this job now (its namespace applies to get_actor and names)."""
        self.job_id, self.namespace = job_id, namespace

    def _state(self) -> m.ClusterState:
        return self._call(m.GetClusterState(0))

    def nodes(self) -> list[dict]:
        return self._state().nodes

    def cluster_resources(self) -> dict:
        return dict(self._state().total)

    def available_resources(self) -> dict:
        return {k: v for k, v in self._state().available.items() if v > 0}

    def context(self) -> ContextInfo:
        s = context.current()
        return ContextInfo(job_id=((s.job_id if s else None) or self.job_id).hex(),
                           node_id=self.node_id.hex(), worker_id=self.worker_id.hex(),
                           namespace=self.namespace,
                           task_id=s.task_id.hex() if s and s.task_id else None,
                           actor_id=s.actor_id.hex() if s and s.actor_id else None,
                           actor_name=s.actor_name if s else None,
                           assigned_resources=dict(s.resources) if s else {},
                           gpu_ids=s.gpu_ids if s else (),
                           was_restarted=s.was_restarted if s else False)

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
            try:
                self._call(m.Shutdown(0), timeout=5)
            except Exception:
                pass  # the daemon is already gone; stop_head() reaps it
        self.close_connections()
        if self._proc is not None:
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
