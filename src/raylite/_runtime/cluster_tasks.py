"""Task submission and leases: the I/O of ClusterRuntime around the owner core's tasks.

    submit_task ─► encode args, PushTask ─► core.tasks.submit ─► (daemon, RequestLease) or
                                                                 (worker, PushTask) to send
    LeaseGranted ─► connect the task channel to the worker ─► core.tasks.lease_granted ─► PushTask
      (retry_at: our daemon spilled the request: core.tasks.lease_spilled asks that node's
       daemon, on a connection of ours to it (_daemon_at); error: core.lease_refused fails them)
    TaskDone     ─► core.task_done ─► next task on that lease, results stored, waiters woken
    worker gone  ─► core.peer_lost ─► retries; crashed tasks fail with the daemon's word on how
    every TICK_S, or QUIET_TICK_S when no task or lease is held (maintenance thread): idle
                                                  leases returned, frees flushed,
                                                  unreferenced actors terminated, metrics
                                                  and progress bars reported (cluster_reports.py),
                                                  task events sent (at most every EVENTS_S)

The rules (scheduling keys, one task in flight per lease, lease requests
outstanding, retries, dependencies) live in raylite._core.owner.tasks; this
file serializes, connects and sends.
"""
from __future__ import annotations

import pickle
import time
from typing import Any

from .. import _ids
from .._core.owner import Task
from .._options import placement, strategy_wire
from .._protocol import messages as m
from .._protocol.transport import Connection
from .._runtime_env.resolve import Resolver, inherit
from .._runtime_env.validate import PROCESS_KEYS, described, env_key, merge, refuse_unsupported
from .._serialization import dumps
from . import context
from .object_ref import ObjectRef

_FAST = (int, float, str, bool, type(None))
INHERITED_KEYS = PROCESS_KEYS + ("config",)  # a child giving one of these: its resolved env changes


# In a worker running in a runtime_env's venv (pip): that venv's directory. What it submits
# may run outside the venv (a child that replaces its pip): its packages stay there.
ENV_PREFIX: str | None = None


def driver_sys_path() -> tuple:
    """This process's import path: workers add it so functions defined in the caller's
    modules (a script's folder, a test file's helpers) unpickle there too (but a runtime_env
    venv's own directories, ENV_PREFIX)."""
    import os
    import sys

    paths = tuple(os.path.abspath(p or os.curdir) for p in sys.path)
    if ENV_PREFIX is not None:
        paths = tuple(p for p in paths if p != ENV_PREFIX and not p.startswith(ENV_PREFIX + os.sep))
    return paths


IDLE_LEASE_S = 0.2          # an idle lease is returned after this long
TICK_S = IDLE_LEASE_S / 4   # the maintenance thread's wait while tasks or leases are held
QUIET_TICK_S = 0.2          # ... and once there have been none for QUIET_AFTER ticks
QUIET_AFTER = 4
EVENTS_S = 0.5              # task events are sent at most this often (Ray: every second; each
                            # batch wakes the sender, the daemon and the GCS: 0.1 s cost the
                            # one-at-a-time loop 1.5 points more, docs/performance.md)
UPLOAD_TIMEOUT_S = 300.0    # a runtime_env package put into the GCS's KV


class _KvStore:
    """The cluster's KV, as the runtime_env Resolver stores packages in it."""

    def __init__(self, rt: Any):
        self.rt = rt

    def has(self, key: bytes) -> bool:
        return key in self.rt._call(m.KvKeys(0, key)).keys

    def put(self, key: bytes, data: bytes) -> None:
        self.rt._call(m.KvPut(0, key, data, False), timeout=UPLOAD_TIMEOUT_S)


class TaskSubmission:
    """Methods of ClusterRuntime that submit tasks, hold leases and handle their results."""

    # -- argument preparation ------------------------------------------------
    def _prepare_args(self, args: tuple, kwargs: dict) -> tuple[Any, dict, list, list]:
        """Serializes (args, kwargs); returns (blob, inlined values, ids of unready owned
        dependencies, refs held).

        Large arguments go to shared memory as an object this process owns and
        frees once the task is done; the blob is then a ShmObject.
        """
        if not kwargs and all(type(a) in _FAST for a in args):  # the common case, no refs inside
            return pickle.dumps((args, kwargs), 5), {}, [], []
        data, refs = self.encode((args, kwargs), _ids.new_id(), self.address)
        if not refs:
            return data, {}, [], refs
        top = {id(a) for a in args if isinstance(a, ObjectRef)} | \
              {id(v) for v in kwargs.values() if isinstance(v, ObjectRef)}
        ids = [r._id for r in refs if id(r) in top]
        with self._lock:
            inlined, deps = self._objects.inline_args(ids)
        return data, inlined, deps, refs

    def _function_blob(self, fn: Any, payload: Any) -> tuple[bytes, bytes]:
        blob = fn._blob
        if blob is None or blob[0] is not self:
            fn._blob = blob = (self, _ids.new_id(), dumps(payload))
            self._core.tasks.add_function(blob[1], blob[2])
        return blob[1], blob[2]

    def _env_parts(self, own: dict | None, parent: dict | None) -> tuple:
        """(env_vars, resolved env, env as given) of a task or actor whose options say `own`,
        by Ray's inheritance rule: its keys over its parent's, env_vars merged. The parent is
        the job (init()'s runtime_env) in a driver; in a worker, the running task or actor
        (`parent`: its env as given, context.TaskScope.runtime_env), whose process keys are
        this worker's (workers are keyed on them). Packing and uploading happen once per
        directory; ValueError for what raylite does not run."""
        refuse_unsupported(own)
        mine = (own or {}).get("env_vars") or {}
        if not self.in_worker:
            renv = self.resolved_env
            if own and any(k in own for k in PROCESS_KEYS):
                renv = self._packer().resolve(merge(self._job_env, own))
            return {**self._env_vars, **mine} or None, renv, described(self._job_env, own)
        renv = self.resolved_env
        if own and any(k in own for k in INHERITED_KEYS):
            renv = inherit(self.resolved_env, own, self._packer().resolve(own))
        return {**((parent or {}).get("env_vars") or {}), **mine} or None, renv, \
            described(parent, own)

    def _parent_env(self) -> dict | None:
        """In a worker: the env as given of the task or actor running here, which what it
        submits inherits; on a thread of its own (no scope), the last task's (a worker runs
        one task at a time, and its process is in that env, as Ray's workers are)."""
        s = context.current()
        if s is not None:
            return s.runtime_env
        return getattr(self.executor, "given", None)

    def _packer(self) -> Resolver:
        if self._resolver is None:
            self._resolver = Resolver(_KvStore(self))
        return self._resolver

    # -- tasks ---------------------------------------------------------------
    def _template(self, function: Any, options: Any) -> tuple:
        """What every call of (function, options) shares, computed once (in a worker: once
        per parent env, which a nested task inherits)."""
        parent = self._parent_env() if self.in_worker else None
        t = self._templates.get(id(options))
        if t is None or t[0] is not options or t[1] is not function or function._blob is None \
                or t[11] is not parent:
            fid, _ = self._function_blob(function, function._function)
            env, renv, given = self._env_parts(options.runtime_env, parent)
            demand = options.demand()
            strategy = strategy_wire(options.scheduling_strategy)
            t = (options, function, fid, options.name or function._name, env, demand,
                 (tuple(sorted(demand.items())), strategy) if renv is None else
                 (tuple(sorted(demand.items())), strategy, env_key(renv)), strategy,
                 placement(options.scheduling_strategy), renv, given, parent)
            if len(self._templates) >= 1024:  # .options() in a loop makes a new one each call
                self._templates.clear()
            self._templates[id(options)] = t
        return t

    def submit_task(self, function: Any, args: tuple, kwargs: dict, options: Any) -> list[ObjectRef]:
        _, _, fid, name, env, demand, key, strategy, group, renv, given, _ = self._template(function, options)
        data, inlined, deps, hold = self._prepare_args(args, kwargs)
        task_id = _ids.new_id()
        return_ids = (_ids.new_id(),) if options.num_returns == 1 else \
            tuple(_ids.new_id() for _ in range(options.num_returns))
        events = options.enable_task_events and self._events_on
        if events and not deps:  # its opening, for its worker to report its run whole
            parent_of = self._core.events.parent_of
            parent = None if parent_of is None else parent_of()
            opened = (time.time(), parent)
        else:
            opened = None
        msg = m.PushTask(task_id, fid, None, data, inlined, return_ids, name, self.job_id,
                         self.namespace, env, (), demand, self.address, options.max_calls,
                         (), group, 0, events, None, given, opened)
        task = Task(task_id, msg, return_ids, name, options.max_retries, options.retry_exceptions,
                    hold, None, key, strategy, events=events, env=renv,
                    locality=not strategy and group is None)
        if opened is not None:
            task.parent = parent
        with self._lock:
            out = self._core.tasks.submit(task, deps, [r._id for r in hold] if deps else None)
            refs = [ObjectRef(rid, self.address, self) for rid in return_ids]
        self._send_all(out)
        if events:
            self._note_sent()
        return refs

    def _note_sent(self) -> None:
        """The opening of the task or call just sent, noted now, while it runs: not on the
        caller's way to the send (_core/owner/events.py: later)."""
        with self._lock:
            self._core.events.settle()

    def _lease_granted(self, msg: m.LeaseGranted) -> None:
        if msg.retry_at or msg.error is not None or msg.refused is not None:
            with self._lock:  # spillback, no node can run it, or its placement group was removed
                out = self._core.tasks.lease_spilled(msg.req, msg.retry_at, self._closing.is_set()) \
                    if msg.retry_at else self._core.lease_refused(msg.req, msg.error or msg.refused,
                                                                  msg.refused is not None)
            self._send_all(out)
            return
        try:
            conn = self._peer(msg.address, b"t")
        except (ConnectionError, OSError):
            conn = None
        with self._lock:
            out = self._core.tasks.lease_granted(msg.req, msg.lease_id, msg.gpu_ids, msg.address,
                                                 conn, self._closing.is_set())
        self._send_all(out)

    def _task_done(self, conn: Connection, msg: m.TaskDone) -> None:
        with self._lock:
            out = self._core.task_done(conn, msg.task_id, msg.results, msg.error, msg.retryable,
                                       time.monotonic(), msg.ran)
        self._send_all(out)

    def _peer_lost(self, conn: Connection) -> None:
        died = self._dead_conns.pop(conn, "")  # its node died (cluster_nodes.py)
        with self._lock:
            out, crashed = self._core.peer_lost(conn, died)
        self._send_all(out)
        if crashed:  # a WorkerCrashedError saying how, once the daemon has told us
            lease = crashed[0].lease
            how = f"its node {died}" if died else \
                self._worker_exit(conn.peer, lease.daemon if lease is not None else "")
            with self._lock:
                out = self._core.fail_crashed(crashed, how)
            self._send_all(out)

    def _worker_exit(self, address: str, daemon: str = "") -> str:
        """How the worker at `address` died ("killed by SIGKILL", "exited with code 3"), as its
        node daemon (ours, or the one at `daemon` that leased it) saw it; "" when it cannot
        tell within a few seconds."""
        try:
            if not daemon:
                return self._call(m.GetWorkerExit(0, address), timeout=5.0).reason
            return self.endpoint.call(self._daemon_at(daemon), m.GetWorkerExit(0, address)) \
                .result(5.0).reason
        except Exception:  # the daemon is gone or slow: the error says less, but comes
            return ""

    def _return_idle(self, older_than: float) -> bool:
        """Returns the leases idle for `older_than` seconds; True when this process holds
        no lease, asks for none and has no task in flight (nothing to time here)."""
        with self._lock:
            now = time.monotonic()
            out = self._core.tasks.return_idle(now, older_than)
            if self._core.lineage.parked:  # tasks waiting to hear their argument's node died
                out += self._core.lineage.expire(now, self._park_s)
            quiet = self._core.tasks.quiet()
        self._send_all(out)
        return quiet

    def _maintain(self) -> None:
        """Every TICK_S while this process has tasks or leases (an idle lease goes back
        IDLE_LEASE_S after its last task), every QUIET_TICK_S once it has had none for
        QUIET_AFTER ticks: an idle driver or worker wakes 5 times a second, not 20. Each
        wake sends what waits (task events at most every EVENTS_S, frees, reports)."""
        wait, quiet_for, events_at = TICK_S, 0, 0.0
        while not self._closing.wait(wait):
            now = time.monotonic()
            if now - events_at >= EVENTS_S:
                events_at = now
                self.send_task_events()
            quiet_for = quiet_for + 1 if self._return_idle(IDLE_LEASE_S) else 0
            wait = QUIET_TICK_S if quiet_for >= QUIET_AFTER else TICK_S
            self._report(now)
            self._flush_frees()
            if self._stream_drops:
                self._flush_stream_drops()
            if self._core.actors.terminates:
                self._terminate_unreferenced()

    def pack_task_events(self) -> None:
        """While the caller's thread waits for a reply (get() reading it: cluster_objects.py),
        it packs the whole tasks made so far (PART or more: _core/owner/events.py): work the
        sender thread would otherwise do holding the interpreter the caller wants back."""
        core = self._core
        if not self._events_lock.acquire(blocking=False):
            return  # the sender is at it
        try:
            with self._lock:
                part = core.events.take_part()
            if part is not None:
                core.events.part(part)
        finally:
            self._events_lock.release()

    def send_task_events(self) -> None:
        """Sends the task events this process has made since the last call (the owner core's,
        and the executor's runs of tasks, in a worker) to its daemon, for the GCS's store."""
        core, ex = self._core, self.executor
        with self._events_lock:  # batches leave in the order they were taken
            if core.events.waiting():
                with self._lock:  # only the swap holds the lock the caller's threads want
                    taken = core.events.swap()
                events, lost, whole = core.events.build(*taken)
            else:
                events, lost, whole = [], 0, ()
            if ex is not None and (ex.ran or ex.started or ex.running is not None):
                events += ex.take_events()
            runs = ()
            if ex is not None and (ex.runs or ex.packed):
                runs, bad = ex.take_runs()
                lost += bad
            if events or lost or whole or runs:
                try:
                    self._daemon.send(m.TaskEvents(tuple(events), lost, whole=whole, runs=runs))
                except OSError:
                    pass  # the daemon is gone: so is the store these were for

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        with self._lock:
            out, running = self._core.cancel(ref._id, force)
        self._send_all(out)
        if running is not None:  # on the general channel: the task channel's reader runs the task
            conn, task_id = running
            try:
                self._peer(conn.peer).send(m.CancelTask(task_id, force))
            except (ConnectionError, OSError):
                pass
