"""The owner's tasks and worker leases (pure).

    submit(task, deps) ─► a dependency pending? WAITING_FOR_ARGS (a waiter on each)
                       │       └─ the last one completes ─► inline the ready values ─┐
                       └──────────────────────────────────────────────────────────────┴─► its key's queue
    dispatch(key): idle lease? ─► (worker, PushTask) : (DAEMON, LeaseRequest) (≤ MAX_LEASE_REQUESTS a key)
    lease_granted(req, conn)   ─► push the key's next task, or (DAEMON, LeaseReturn)
    lease_spilled(req, at)     ─► the same request, to the daemon at `at` (marked spilled)
    lease_refused(req, error)  ─► the key's queued tasks fail with `error` (no node can run them)
    finished(task)             ─► its lease runs the key's next task, or idles (since `now`)
    return_idle(now, age)      ─► (DAEMON, LeaseReturn) for every lease idle that long

A scheduling key is what every call of one (function, options) shares (its
demand and scheduling strategy): tasks of a key queue together and take that key's
leases. Leases come from our node's daemon, or from another node's when ours sent
the request there (spillback): a lease remembers its daemon, and goes back to it.
Locality (locality.py): a task of the default strategy whose arguments in shared memory
are mostly on another node queues on its key *and that node*, whose daemon its lease
requests go to first (it grants, or spills them as any other). One task in
flight per lease, as Ray: a task blocked in get() never holds another task
hostage behind it on the same worker. The first push of a function on a
connection carries its pickled bytes (and the caller's import path); later ones
only its id.

Dependencies (a race once fixed in the shell, now a rule here): the shell
prepares a task's arguments before it takes the lock, so a dependency it saw
pending may have finished by the time `submit` runs. `submit` looks again and
waits only for the ones still pending; when none is, the task goes straight to
its queue (else it would wait for a completion that already happened).

Retries (`retry_error`, `should_retry`): a task whose body raised is retried
while it has retries left and its retry_exceptions match the cause; a task
whose worker died is retried while it has retries left. max_retries < 0 means
forever. Local mode uses the same rule.

Pure: no I/O, no threads, no clock (`now` comes with the event). Connections
are opaque tokens the shell hands in; so is a task's message (the shell's
PushTask, which the core completes with _replace); instructions.py says what
the returned pairs mean.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from ..task_events import PENDING_ARGS, PENDING_NODE
from .instructions import DAEMON, LeaseRequest, LeaseReturn
from .locality import arg_holders, preferred
from .objects import Obj, located

MAX_LEASE_REQUESTS = 16     # outstanding lease requests per scheduling key


def should_retry(cause: BaseException, retry_exceptions: Any) -> bool:
    """Whether retry_exceptions (True, or a tuple of exception types) covers `cause`."""
    if retry_exceptions is True:
        return True
    if isinstance(retry_exceptions, tuple):
        return isinstance(cause, retry_exceptions)
    return False


class Task:
    __slots__ = ("task_id", "msg", "return_ids", "key", "retries", "retry_exceptions", "name",
                 "conn", "worker", "cancelled", "deps", "actor_id", "hold", "arg_ids", "lease",
                 "attempt", "strategy", "events", "env", "locality", "prefer", "parent", "opened")

    def __init__(self, task_id: bytes, msg: Any, return_ids: tuple, name: str, retries: Any,
                 retry_exceptions: Any, hold: Any, actor_id: bytes | None = None, key: Any = None,
                 strategy: tuple = (), events: bool = False, env: Any = None,
                 locality: bool = False):
        self.strategy = strategy     # the wire form of its scheduling strategy (part of its key)
        self.task_id, self.msg, self.return_ids, self.name = task_id, msg, return_ids, name
        self.retries, self.retry_exceptions, self.hold = retries, retry_exceptions, hold
        self.actor_id = actor_id
        self.key = key               # the scheduling key (its env included)
        self.env = env               # the resolved runtime_env its worker needs
        self.conn: Any = None        # the connection it was pushed on
        self.worker: str | None = None  # the address it runs at, once pushed
        self.lease: Lease | None = None
        self.cancelled = False
        self.deps = 0                # dependencies still pending
        self.arg_ids: Any = None     # ids of the refs in its arguments (when it has deps)
        self.attempt = 0             # +1 per retry
        self.events = events         # its state changes go to the owner's TaskEvents
        self.locality = locality     # default strategy: may lease where its arguments are
        self.prefer = ""             # the daemon its arguments' node has (locality.py), "" ours
        self.parent: Any = False     # the id of the task that submitted it (None: a driver),
                                     # read by its first event (events.py)
        self.opened: Any = None      # its attempt's opening, while unsent (events.py)

    def retry_error(self, cause: BaseException) -> bool:
        """Consumes a retry when the body's exception `cause` is one to retry."""
        if self.retries == 0 or not should_retry(cause, self.retry_exceptions):
            return False
        self.retries -= 1
        self.attempt += 1
        return True


class Lease:
    __slots__ = ("lease_id", "conn", "gpu_ids", "key", "task", "idle_since", "address", "daemon")

    def __init__(self, lease_id: bytes, conn: Any, gpu_ids: tuple, key: Any, address: str,
                 daemon: str = ""):
        self.lease_id, self.conn, self.gpu_ids, self.key = lease_id, conn, gpu_ids, key
        self.address = address
        self.daemon = daemon         # the daemon that granted it ("" our own)
        self.task: Task | None = None
        self.idle_since = 0.0


class Key:
    __slots__ = ("demand", "name", "queue", "idle", "requests", "strategy", "env", "daemon")

    def __init__(self, demand: dict, name: str, strategy: tuple = (), env: Any = None,
                 daemon: str = ""):
        self.demand, self.name, self.strategy, self.env = demand, name, strategy, env
        self.daemon = daemon         # its lease requests go to this daemon first ("" ours)
        self.queue: deque[Task] = deque()
        self.idle: list[Lease] = []
        self.requests = 0            # lease requests outstanding


class TaskTable:
    """In-flight tasks, their scheduling keys and leases (call with the shell's lock held)."""

    def __init__(self, owner: Any, sys_path: Any):
        self.owner = owner
        self.objects = owner.objects
        self.log = owner.log
        self.events = owner.events
        self.sys_path = sys_path                   # () -> the caller's import path, at push time
        self.tasks: dict[bytes, Task] = {}
        self.keys: dict[Any, Key] = {}
        self.lease_reqs: dict[int, tuple] = {}     # request -> (its key, the daemon asked)
        self.inflight: dict[Any, set] = {}         # connection -> ids of the tasks pushed on it
        self.sent_functions: dict[Any, set] = {}   # connection -> function ids it has the bytes of
        self.functions: dict[bytes, bytes] = {}    # function id -> pickled function
        self.node = ""                             # our node's tag (the shell sets it)

    def add_function(self, function_id: bytes, pickled: bytes) -> None:
        """A function's bytes, sent with its first push on each connection."""
        self.functions[function_id] = pickled

    # -- submission ------------------------------------------------------------
    def submit(self, task: Task, deps: list | None = None, arg_ids: list | None = None) -> list:
        """A new task (`deps`: ids of owned objects its arguments wait for, as the shell saw
        them; `arg_ids`: every ref id in its arguments). Returns instructions."""
        entries = self.objects.entries
        tid = task.task_id
        for rid in task.return_ids:
            entries[rid] = Obj(True, None, None, tid)
        self.tasks[tid] = task
        self.log.append(("submit", tid))
        if not deps:
            if task.events:  # noted once the shell has sent it (events.later)
                if task.msg.opened is not None:  # its worker tells how it ran
                    self.events.later_run(task)
                else:
                    self.events.later(task, PENDING_NODE)
            out: list = []
            self.enqueue(task, out)
            return out
        task.arg_ids = arg_ids if arg_ids is not None else deps
        pending = [o for o in map(entries.__getitem__, deps) if not o.ready]
        if task.events:
            self.events.new(task, PENDING_ARGS)  # dep_ready says when they are
        if not pending:  # all finished since the shell looked: inline them and go
            task.deps = 1
            out = []
            self.dep_ready(task, out)
            return out
        self.wait_for(task, pending)
        return []

    @staticmethod
    def wait_for(task: Task, pending: list) -> None:
        """`task` waits for the entries `pending` (dep_ready counts them down)."""
        task.deps = len(pending)
        for o in pending:
            if o.waiters is None:
                o.waiters = [task]
            else:
                o.waiters.append(task)

    def dep_ready(self, task: Task, out: list) -> None:
        task.deps -= 1
        if task.deps > 0 or task.task_id not in self.tasks:
            return
        # Every dependency is ready now: inline their values (or fail like them).
        entries = self.objects.entries
        inlined = dict(task.msg.inlined)
        for id in task.arg_ids:
            o = entries.get(id)
            if o is not None and o.ready and id not in inlined and o.owned:
                inlined[id] = (o.data, o.error)
                o.shared = True
        task.msg = task.msg._replace(inlined=inlined)
        if task.events and task.arg_ids is not None:
            self.events.add(task.task_id, task.attempt, PENDING_NODE)
        self.enqueue(task, out)

    def enqueue(self, task: Task, out: list) -> None:
        if task.locality and self.node:  # the node with most of its arguments' bytes first
            msg = task.msg
            task.prefer = preferred(arg_holders(msg.args, msg.inlined, self.objects.entries),
                                    self.node) if msg.inlined or located(msg.args) else ""
        key = self.key_of(task)
        k = self.keys.get(key)
        if k is None:
            k = self.keys[key] = Key(task.msg.resources, task.name, task.strategy, task.env,
                                     task.prefer)
        k.queue.append(task)
        self.dispatch(k, out)

    @staticmethod
    def key_of(task: Task) -> Any:
        """The key it queues on: its scheduling key, and the node its arguments prefer."""
        return (task.key, task.prefer) if task.prefer else task.key

    def dispatch(self, k: Key, out: list) -> None:
        while k.queue and k.idle:
            out.append(self.push(k.idle.pop(), k.queue.popleft()))
        want = min(len(k.queue), MAX_LEASE_REQUESTS) - k.requests
        if want > 0:
            owner = self.owner
            for _ in range(want):
                req = next(owner.reqs)
                self.lease_reqs[req] = (k, k.daemon)
                k.requests += 1
                out.append((DAEMON, LeaseRequest(req, k.demand, k.name, k.strategy,
                                                 daemon=k.daemon, env=k.env)))

    def push(self, lease: Lease, task: Task) -> tuple:
        conn = lease.conn
        lease.task, task.lease, task.conn, task.worker = task, lease, conn, lease.address
        s = self.inflight.get(conn)
        if s is None:
            s = self.inflight[conn] = set()
        s.add(task.task_id)
        msg = task.msg
        if task.attempt:  # a retry's opening is its owner's (events.new): its run too
            msg = msg._replace(attempt=task.attempt, opened=None)
        if lease.gpu_ids:
            msg = msg._replace(gpu_ids=lease.gpu_ids)
        sent = self.sent_functions.get(conn)
        if sent is None:
            sent = self.sent_functions[conn] = set()
        if msg.function_id not in sent:
            sent.add(msg.function_id)
            msg = msg._replace(function=self.functions[msg.function_id], sys_path=self.sys_path())
        return conn, msg

    # -- leases ----------------------------------------------------------------
    def lease_granted(self, req: int, lease_id: bytes, gpu_ids: tuple, address: str, conn: Any,
                      closing: bool) -> list:
        """The daemon granted a lease on the worker at `address`; `conn` is the shell's task
        connection to it (None when it could not connect)."""
        k, daemon = self.lease_reqs.pop(req, (None, ""))
        if k is not None:
            k.requests -= 1
        self.log.append(("lease", lease_id, address))
        if k is None or conn is None or closing:
            out = [(DAEMON, LeaseReturn(lease_id, conn is None, daemon))]
            if k is not None:
                self.dispatch(k, out)
            return out
        lease = Lease(lease_id, conn, gpu_ids, k, address, daemon)
        if k.queue:
            return [self.push(lease, k.queue.popleft())]
        return [(DAEMON, LeaseReturn(lease_id, False, daemon))]

    def lease_spilled(self, req: int, at: str, closing: bool) -> list:
        """Our daemon sent the request on to the daemon at `at` (another node's): ask it
        there, marked spilled (it grants or queues, never sends it on again)."""
        k, _ = self.lease_reqs.pop(req, (None, ""))
        if k is None:
            return []
        self.log.append(("spilled", req, at))
        if closing or not k.queue:
            k.requests -= 1
            return []
        again = next(self.owner.reqs)
        self.lease_reqs[again] = (k, at)
        return [(DAEMON, LeaseRequest(again, k.demand, k.name, k.strategy, True, at, k.env))]

    def lease_refused(self, req: int) -> list:
        """No node can ever run the key's tasks: returns its queued tasks, now dropped (the
        owner fails them)."""
        k, _ = self.lease_reqs.pop(req, (None, ""))
        if k is None:
            return []
        k.requests -= 1
        failed = list(k.queue)
        k.queue.clear()
        for t in failed:
            self.drop(t.task_id)
        return failed

    def release(self, task: Task, now: float, out: list) -> None:
        """The task left its worker: the lease runs the key's next task, or idles; a SPREAD
        key's goes back at once (as Ray's: each new task leases anew, so tasks submitted one
        at a time go round the nodes too, not all to the first one's idle lease)."""
        lease = task.lease
        if lease is None:
            return
        lease.task = None
        k = lease.key
        if k.queue:
            out.append(self.push(lease, k.queue.popleft()))
        elif k.strategy[:1] == ("SPREAD",):
            out.append((DAEMON, LeaseReturn(lease.lease_id, False, lease.daemon)))
        else:
            lease.idle_since = now
            k.idle.append(lease)

    def return_idle(self, now: float, older_than: float) -> list:
        out: list = []
        for k in self.keys.values():
            if not k.idle:
                continue
            keep = []
            for lease in k.idle:
                if now - lease.idle_since >= older_than:
                    out.append((DAEMON, LeaseReturn(lease.lease_id, False, lease.daemon)))
                else:
                    keep.append(lease)
            k.idle = keep
        return out

    def quiet(self) -> bool:
        """No task in flight, no lease held (busy or idle), none asked for."""
        return not self.tasks and not self.lease_reqs \
            and not any(k.idle or k.requests for k in self.keys.values())

    def drop(self, task_id: bytes) -> Task | None:
        """Forgets a finished task; its arguments in shared memory are freed (never recycled:
        the worker mapped them), unless its lineage is kept (lineage_book.py frees them)."""
        task = self.tasks.pop(task_id, None)
        if task is not None and task.msg is not None:
            args = task.msg.args
            if located(args) and task_id not in self.owner.lineage.book.kept:
                self.objects.frees.append((args.object_id, True, None, ()))  # on this node
        return task

    def running_here(self, task: Task, where: str) -> None:
        """Local mode: a task running now, on the caller's thread (`where` names it)."""
        task.conn = task.worker = where
        self.tasks[task.task_id] = task

    def requeue(self, task: Task, out: list) -> None:
        """A task (not an actor call) to run again: back in its key's queue."""
        task.lease = task.conn = task.worker = None
        if task.events:
            self.events.new(task, PENDING_NODE)
        self.enqueue(task, out)

    def conn_lost(self, conn: Any) -> tuple[list, set]:
        """Forgets what ran on `conn`: (ids of the tasks pushed on it, in submission order;
        keys whose leases died with it)."""
        self.sent_functions.pop(conn, None)
        for k in self.keys.values():
            if k.idle:
                k.idle = [lease for lease in k.idle if lease.conn is not conn]
        ids = sorted(self.inflight.pop(conn, ()))  # ids grow in submission order
        lost_keys = {t.lease.key for t in map(self.tasks.get, ids) if t and t.lease}
        return ids, lost_keys

    def node_died(self, daemon: str, out: list) -> set:
        """The node whose daemon is at `daemon` is dead: its idle leases are forgotten, lease
        requests asked of it are asked of our own daemon again; returns the connections of
        the leases it granted (the shell closes them: conn_lost follows for each)."""
        conns = {t.lease.conn for t in self.tasks.values()
                 if t.lease is not None and t.lease.daemon == daemon}
        for k in self.keys.values():
            if any(lease.daemon == daemon for lease in k.idle):
                conns.update(lease.conn for lease in k.idle if lease.daemon == daemon)
                k.idle = [lease for lease in k.idle if lease.daemon != daemon]
        asked = [req for req, (_, at) in self.lease_reqs.items() if at == daemon]
        again = []
        for req in asked:
            k, _ = self.lease_reqs.pop(req)
            k.requests -= 1
            if k not in again:
                again.append(k)
        for k in again:
            self.dispatch(k, out)
        self.log.append(("node_died", daemon, len(conns), len(asked)))
        return conns

    def forget_queued(self) -> list:
        """Every task that has no worker yet leaves its queue (the daemon is gone); returns them."""
        failed = [t for t in self.tasks.values() if t.conn is None]
        for t in failed:
            self.drop(t.task_id)
        for k in self.keys.values():
            k.queue.clear()
            k.requests = 0
        self.lease_reqs.clear()
        return failed

    def unqueue(self, task: Task) -> bool:
        k = self.keys.get(self.key_of(task)) if task.key is not None else None
        if k is not None and task in k.queue:
            k.queue.remove(task)
            return True
        return False
