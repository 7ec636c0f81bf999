"""Owner: the pure state of an owner process (driver or worker), one core for every runtime.

    shell (ClusterRuntime / LocalRuntime)                Owner (this package, no I/O)
    ──────────────────────────────────────               ─────────────────────────────────────
    with lock: out = owner.<event>(...)      ────────►   objects  ObjectTable  entries, counts,
                                                                  borrowers, waiters, frees
    outside the lock, in order, for each     ◄────────   tasks    TaskTable    tasks, keys, leases,
    (target, x) in out:                                           lease requests, retries
        WAKE       ─► x()  (wake a waiter)               actors   ActorTable   calls and their
        DAEMON     ─► its wire message to the daemon                           order, restarts,
        connection ─► connection.send(x)                                       handle lifetimes
                                                         streams  StreamTable  generator items
                                                                  as they come, their consumer

Events are plain method calls made with the shell's lock held; each returns a
list of instructions (instructions.py) for the shell to carry out after it lets
go of the lock. What the core cannot do itself it asks for in its return values
(`peer_lost` returns the crashed tasks whose errors need the daemon's word on
how their worker died). Connections are opaque tokens from the shell. Request
ids come from `reqs`, shared with the shell's own requests so replies never
mix. Errors are opaque: `encode_error` turns an exception the core raises into
what the runtime stores (pickled bytes in a cluster, the exception itself in
local mode), `decode_error` reads one back (to match retry_exceptions or say
why an actor died).

Every event of note lands in `log` (a bounded deque) for debugging; `state()`
answers a state request with frozen records (raylite._core.records). What the
owner sees of a task's life (a new attempt, pending on arguments or a worker,
failed, retried, cancelled) also goes to `events` (events.py), for tasks that
record them; a success is the worker's to tell. The shell sends them to the
GCS's task-event store in batches. Their
time comes from `clock`, a function the shell hands in (as sys_path).
"""
from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from ...exceptions import (RayTaskError, TaskCancelledError, TaskPlacementGroupRemoved,
                           TaskUnschedulableError, WorkerCrashedError)
from ..records import ActorRecord, ObjectRecord, StateSnapshot, TaskRecord
from ..task_events import FAILED
from .actors import ActorTable
from .events import TaskEvents, _no_clock
from .instructions import WAKE
from .lineage import Lineage
from .lineage_book import MAX_LINEAGE_BYTES
from .objects import LOG_SIZE, ObjectTable, Waiter, copies_of, located
from .streams import Stream, StreamTable
from .tasks import TaskTable


def _same(x: Any) -> Any:
    return x


class Owner:
    """The owner's state: `objects`, `tasks`, `actors` (one table each) and the events that
    cross them; `address` is the process's own (who owns what it makes)."""

    def __init__(self, address: str, reqs: Any = None, sys_path: Any = tuple,
                 encode_error: Any = _same, decode_error: Any = _same, clock: Any = None,
                 parent_of: Any = None, max_lineage_bytes: int = MAX_LINEAGE_BYTES):
        self.address = address
        self.reqs = reqs if reqs is not None else itertools.count(1)
        self.encode_error = encode_error
        self.decode_error = decode_error
        self.log: deque = deque(maxlen=LOG_SIZE)
        self.events = TaskEvents(clock or _no_clock, decode_error, parent_of=parent_of)
        self.objects = ObjectTable(address, encode_error, self.log)
        self.tasks = TaskTable(self, sys_path)
        self.events.live = self.tasks.tasks
        self.actors = ActorTable(self)
        self.streams = StreamTable(self)
        self.lineage = Lineage(self, max_lineage_bytes)

    # -- completions -----------------------------------------------------------
    def complete(self, id: bytes, data: Any, error: Any, owned: bool = True,
                 out: list | None = None) -> list:
        """Stores a value; what it releases (waiting threads, dependent tasks) lands in `out`."""
        if out is None:
            out = []
        waiters = self.objects.complete(id, data, error, owned)
        if waiters:
            self.release(waiters, out)
        return out

    def release(self, waiters: list, out: list) -> None:
        for w in waiters:
            if type(w) is Waiter:
                w.n -= 1
                if w.n == 0:
                    out.append((WAKE, w.wake))
            elif type(w) is Stream:  # a streaming task's done entry: the stream is over
                self.streams.ended(w, out)
            else:  # a task waiting for its arguments
                self.tasks.dep_ready(w, out)

    def fetch_failed(self, req: int, id: bytes, owner: str) -> list:
        """The owner of a borrowed object cannot be reached: the object fails at once."""
        objects = self.objects
        objects.fetches.pop(req, None)
        return self.complete(id, None, objects.unreachable_error(id, owner), False)

    def fail(self, task: Any, error: Any, out: list) -> None:
        if task.events and error is not None:
            self.events.ended(task, error)
        for rid in task.return_ids:
            self.complete(rid, None, error, True, out)

    # -- task events -----------------------------------------------------------
    def lease_refused(self, req: int, why: str, group_removed: bool = False) -> list:
        """The daemon will never grant lease request `req`: every task queued on its key fails,
        with TaskUnschedulableError when no node can ever run them (e.g. hard node affinity
        to a node that is not alive), or TaskPlacementGroupRemoved when their placement group
        was removed."""
        out: list = []
        failed = self.tasks.lease_refused(req)
        if failed:
            name = failed[0].name
            error = self.encode_error(
                TaskPlacementGroupRemoved(f"The task {name} cannot run: {why}") if group_removed
                else TaskUnschedulableError(f"The task {name} cannot be scheduled: {why}."))
            for task in failed:
                self.fail(task, error, out)
        return out

    def task_done(self, conn: Any, task_id: bytes, results: tuple, error: Any, retryable: bool,
                  now: float, ran: Any = None) -> list:
        """A worker's TaskDone for a task or an actor call (`ran`: with task events, its run's
        start and end, and the first time on `conn` who ran it)."""
        tasks = self.tasks
        task = tasks.tasks.get(task_id)
        if task is None:
            return []
        if ran is not None and task.events:
            events, op = self.events, task.opened
            if op is not None and op[0] == events.gen and error is None and type(ran) is tuple \
                    and len(ran) == 2 and op[2] == task.attempt:
                task.opened = None  # events.finished()'s common case, inline: a whole record
                events.whole.append((op, ran[0], ran[1], conn))  # (the call cost ~0.4 us)
            else:
                events.finished(task, ran, conn, error is None)
        self.log.append(("done", task_id))
        out: list = []
        s = tasks.inflight.get(conn)
        if s is not None:
            s.discard(task_id)
        if task.lease is not None:
            tasks.release(task, now, out)
        if error is not None:
            if task.cancelled:
                error = self.encode_error(TaskCancelledError(task_id.hex()))
            elif self.lineage.arg_lost(task, error, now, out):  # a system failure (lineage.py)
                return out
            elif retryable and task.retry_exceptions and task.retries != 0:
                cause = getattr(self.decode_error(error), "cause", None)
                if cause is not None and task.retry_error(cause):
                    self.log.append(("retry", task_id))
                    if task.events:
                        self.events.ended(task, error, task.attempt - 1)
                    self.resubmit(task, out)
                    return out
        if task.actor_id is not None and self.lineage.rebuilding:
            self.lineage.rebuilding.discard(task_id)
        if error is None:  # kept to rebuild its outputs (lineage_book.py), before drop
            self.lineage.book.keep(task, results)
        tasks.drop(task_id)
        if task.events and error is not None:
            self.events.ended(task, error)
        complete = self.complete
        if error is not None and task_id in self.streams.streams and not task.cancelled \
                and isinstance(self.decode_error(error), RayTaskError) \
                and self.streams.body_failed(task_id, error):  # the body raised: Ray's rule
            complete(task.return_ids[0], self.streams.end_data, None, True, out)
            return out
        if error is not None:  # results before the error (a generator's values) stay readable
            n = len(results)
            for i, rid in enumerate(task.return_ids):
                if i < n:
                    complete(rid, results[i], None, True, out)
                else:
                    complete(rid, None, error, True, out)
        else:
            for rid, data in zip(task.return_ids, results):
                complete(rid, data, None, True, out)
        return out

    def resubmit(self, task: Any, out: list) -> None:
        if task.actor_id is not None:  # back in the actor's queue, in submission order
            self.actors.requeue(self.actors.actors[task.actor_id], [task], out)
        else:
            self.tasks.requeue(task, out)

    def node_died(self, daemon: str) -> tuple[list, set]:
        """The node whose daemon is at `daemon` is dead (the GCS said so: silent past its
        timeout, or its link closed). Returns (instructions: lease requests asked there go to
        our own daemon; the connections to its workers that hold our leases): the shell
        closes those, and calls peer_lost(conn, why) for each."""
        out: list = []
        return out, self.tasks.node_died(daemon, out)

    def peer_lost(self, conn: Any, node_died: str = "") -> tuple[list, list]:
        """`conn` dropped: tasks on it are retried or fail, actor calls wait for the daemon's
        word, fetches over it are lost. Returns (instructions, crashed tasks): the shell asks
        the daemon how their worker died, then calls fail_crashed. With `node_died` (how the
        peer's node died), an actor call in flight with no retries left fails at once with
        ActorUnavailableError: it may or may not have run."""
        tasks = self.tasks
        ids, lost_keys = tasks.conn_lost(conn)
        self.events.forget(conn)
        self.log.append(("peer_lost", len(ids)))
        out: list = []
        crashed: list = []
        calls: list = []  # actor calls: the daemon's word on the actor decides their fate
        for task_id in ids:
            task = tasks.tasks.get(task_id)
            if task is None:
                continue
            if task.cancelled:
                tasks.drop(task_id)
                self.fail(task, self.encode_error(TaskCancelledError(task_id.hex())), out)
            elif task.actor_id is not None:
                calls.append(task)
            elif task.retries != 0:
                task.retries -= 1
                task.attempt += 1
                if task.events:
                    self.events.add(task_id, task.attempt - 1, FAILED, (
                        "WORKER_DIED", f"The worker running {task.name} died; it is retried."))
                self.resubmit(task, out)
            else:
                tasks.drop(task_id)
                crashed.append(task)
        self.actors.conn_lost(conn, calls, out, node_died)
        for k in lost_keys:  # leases that died with the worker: queued tasks need new ones
            tasks.dispatch(k, out)
        objects = self.objects
        for oid in objects.fetches_lost(conn):
            self.complete(oid, None, objects.owner_gone_error(oid), False, out)
        return out, crashed

    def fail_crashed(self, crashed: list, how: str) -> list:
        """Fails tasks whose worker died with no retries left; `how` is the daemon's word
        ("killed by SIGKILL", ...) or ""."""
        out: list = []
        for task in crashed:
            self.fail(task, self.encode_error(WorkerCrashedError(
                f"The worker running {task.name} died ({how or 'killed, crashed or out of memory'})"
                " and its retries are spent (raise max_retries to retry more).")), out)
        return out

    def fail_queued(self, exc: BaseException) -> list:
        """The daemon is gone: every task and actor call without a worker fails with `exc`."""
        failed = self.tasks.forget_queued()
        self.actors.forget_queued()
        out: list = []
        if failed:
            error = self.encode_error(exc)
            for t in failed:
                self.fail(t, error, out)
        return out

    def fail_pending(self, error: Any) -> list:
        """Shutdown: every object still pending fails with `error`."""
        out: list = []
        for id in self.objects.pending():
            self.complete(id, None, error, True, out)
        return out

    def cancel(self, id: bytes, force: bool) -> tuple[list, Any]:
        """Cancels the task making object `id`: a queued one fails at once; for a running one
        returns (its connection, its id): the shell sends CancelTask to that worker."""
        o = self.objects.entries.get(id)
        task = self.tasks.tasks.get(o.task_id) if o is not None and o.task_id else None
        if task is None:
            return [], None
        if task.actor_id is not None and force:
            raise ValueError("force=True is not supported for actor tasks; use raylite.kill() "
                             "on the actor instead.")
        task.cancelled = True
        self.log.append(("cancel", task.task_id))
        if task.conn is not None:
            return [], (task.conn, task.task_id)
        if not self.tasks.unqueue(task) and task.actor_id is not None:
            self.actors.unqueue(task)
        self.tasks.drop(task.task_id)
        out: list = []
        self.fail(task, self.encode_error(TaskCancelledError(task.task_id.hex())), out)
        return out, None

    # -- state -----------------------------------------------------------------
    def state(self, kinds: tuple = ("actors", "tasks", "objects")) -> StateSnapshot:
        """What this owner knows, as frozen records: the tasks in flight, the objects it owns
        or holds, and (its caller's view of) the actors it calls; only `kinds` are built.

            a task    WAITING_FOR_ARGS (owned arguments not ready) ─► WAITING_FOR_LEASE, or
                      QUEUED for an actor ─► RUNNING once pushed (`worker`: where)
            an object owned: PENDING ─► INLINE | SHARED_MEMORY | ERROR
                      held here, owned elsewhere: BORROWED (owner None when unknown here)
        """
        me = self.address
        tasks = tuple(self._task_record(t) for t in self.tasks.tasks.values()) \
            if "tasks" in kinds else ()
        objects = self._object_records() if "objects" in kinds else ()
        actors = tuple(self._actor_record(st) for st in self.actors.actors.values()) \
            if "actors" in kinds else ()
        return StateSnapshot(f"owner {me}", actors=actors, tasks=tasks, objects=objects)

    def _task_record(self, t: Any) -> TaskRecord:
        if t.deps > 0:
            state = "WAITING_FOR_ARGS"
        elif t.conn is not None:
            state = "RUNNING"
        else:
            state = "QUEUED" if t.actor_id is not None else "WAITING_FOR_LEASE"
        return TaskRecord(t.task_id.hex(), t.name, state, self.address,
                          t.worker if t.conn is not None else None, t.attempt,
                          t.actor_id.hex() if t.actor_id else None)

    def _object_records(self) -> tuple:
        objs, me = self.objects, self.address
        counts, lenders = objs.counts, objs.borrowed_from
        out = []
        for id, o in objs.entries.items():
            data = o.data
            size = data.size if located(data) else len(data) if data is not None else None
            if not o.owned:
                out.append(ObjectRecord(id.hex(), lenders.get(id), "BORROWED", size,
                                        counts.get(id, 0), 0))
                continue
            if not o.ready:
                state = "PENDING"
            elif o.error is not None:
                state, size = "ERROR", None
            else:
                state = "SHARED_MEMORY" if located(data) else "INLINE"
            nodes = tuple(n for n, _ in copies_of(o)) if state == "SHARED_MEMORY" else None
            out.append(ObjectRecord(id.hex(), me, state, size, counts.get(id, 0), o.borrowers,
                                    nodes))
        out += [ObjectRecord(id.hex(), owner, "BORROWED", None, counts.get(id, 0), 0)
                for id, owner in lenders.items() if id not in objs.entries]  # not fetched here
        return tuple(out)

    def _actor_record(self, st: Any) -> ActorRecord:
        death = None
        if st.death is not None:
            death = str(self.decode_error(st.death)).partition("\n")[0]
        return ActorRecord(st.actor_id.hex(), st.class_name, None, "",
                           "PENDING" if st.state == "UNKNOWN" else st.state, st.address, 0, False,
                           death)
