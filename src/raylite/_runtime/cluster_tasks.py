"""Task submission and worker leases, mixed into ClusterRuntime.

    submit_task ─► owned top-level args not ready? wait (_dep_ready) ─► _Key queue
    _dispatch: idle lease? push the task : RequestLease (≤ MAX_LEASE_REQUESTS per key)
    LeaseGranted ─► task channel to the worker ─► PushTask ─► TaskDone ─► next task or idle
    idle lease ─► returned after IDLE_LEASE_S, or at once when the daemon asks
    worker gone ─► retry (max_retries) or WorkerCrashedError; cancel ─► CancelTask

One task in flight per lease, as Ray: a task blocked in get() never holds
another task hostage behind it on the same worker.
"""
from __future__ import annotations

import pickle
import time
from collections import deque
from typing import Any

from .. import _ids
from .._object_store import shm
from .._protocol import messages as m
from .._protocol.transport import Connection
from .._serialization import dumps, dumps_error, loads
from ..exceptions import OwnerDiedError, TaskCancelledError, WorkerCrashedError
from . import execution
from .cluster_objects import _Obj
from .object_ref import ObjectRef

_FAST = (int, float, str, bool, type(None))


def driver_sys_path() -> tuple:
    """This process's import path: workers add it so functions defined in the caller's
    modules (a script's folder, a test file's helpers) unpickle there too."""
    import os
    import sys

    return tuple(os.path.abspath(p or os.curdir) for p in sys.path)
IDLE_LEASE_S = 0.2          # an idle lease is returned after this long
MAX_LEASE_REQUESTS = 16     # outstanding lease requests per scheduling key


class _Task:
    __slots__ = ("task_id", "msg", "return_ids", "key", "retries", "retry_exceptions", "name",
                 "conn", "cancelled", "deps", "actor_id", "hold", "lease", "attempt")

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
        self.attempt = 0          # +1 per retry


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


class TaskSubmission:
    """Methods of ClusterRuntime that submit tasks, hold leases and handle their results."""

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
            if len(self._templates) >= 1024:  # .options() in a loop makes a new one each call
                self._templates.clear()
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
            # A dependency may have finished since _prepare_args looked: wait only for the rest.
            pending = [self._store[r._id] for r in deps if not self._store[r._id].ready]
            sends: list = []
            if pending:
                task.deps = len(pending)
                for o in pending:
                    if o.callbacks is None:
                        o.callbacks = []
                    o.callbacks.append(lambda t=task: self._dep_ready(t))
            elif deps:
                task.deps = 1  # all finished meanwhile: _dep_ready below inlines and enqueues
            else:
                sends = self._enqueue(task, demand)
        if deps and not pending:
            self._dep_ready(task)
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
            msg = msg._replace(function=self._function_payload(msg.function_id),
                               sys_path=driver_sys_path())
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
        task.attempt += 1
        if task.actor_id is not None:  # back in the actor's queue, in submission order
            return self._requeue_calls(self._actors[task.actor_id], [task])
        task.lease = task.conn = None
        return self._enqueue(task, task.msg.resources)

    def _peer_lost(self, conn: Connection) -> None:
        failed: list[tuple[_Task, Exception | None]] = []
        sends: list = []
        with self._lock:
            self._sent_functions.pop(conn, None)
            for k in self._keys.values():
                k.idle = [lease for lease in k.idle if lease.conn is not conn]
            lost_objects = [oid for req, (oid, c) in list(self._fetches.items())
                            if c is conn and self._fetches.pop(req)]
            calls = []  # actor calls: the daemon's word on the actor decides their fate
            ids = sorted(self._inflight.pop(conn, ()))  # ids grow in submission order
            # Leases that died with the worker: what still waits for them needs new leases.
            lost_keys = {t.lease.key for t in map(self._tasks.get, ids) if t and t.lease}
            for task_id in ids:
                task = self._tasks.get(task_id)
                if task is None:
                    continue
                if task.cancelled:
                    err = TaskCancelledError(task.task_id.hex())
                elif task.actor_id is not None:
                    calls.append(task)
                    continue
                elif task.retries != 0:
                    task.retries -= 1
                    sends += self._resubmit(task)
                    continue
                else:
                    err = None  # a WorkerCrashedError saying how, once the daemon has told us
                self._drop_task(task_id)
                failed.append((task, err))
            sends += self._actor_conn_lost(conn, calls)
            for k in lost_keys:
                sends += self._dispatch(k)
        self._send_all(sends)
        how = self._worker_exit(conn.peer) if any(e is None for _, e in failed) else ""
        for task, err in failed:
            data = dumps_error(err or WorkerCrashedError(
                f"The worker running {task.name} died ({how or 'killed, crashed or out of memory'})"
                " and its retries are spent (raise max_retries to retry more)."))
            for rid in task.return_ids:
                self._complete(rid, None, data)
        for oid in lost_objects:
            self._complete(oid, None, dumps_error(OwnerDiedError(
                oid.hex(), f"Object {oid.hex()} is lost: its owner process exited.")))

    def _worker_exit(self, address: str) -> str:
        """How the worker at `address` died ("killed by SIGKILL", "exited with code 3"), as its
        node daemon saw it; "" when it cannot tell within a few seconds."""
        try:
            return self._call(m.GetWorkerExit(0, address), timeout=5.0).reason
        except Exception:  # the daemon is gone or slow: the error says less, but comes
            return ""

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
            if self._pending_terminates:
                self._terminate_unreferenced()

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
