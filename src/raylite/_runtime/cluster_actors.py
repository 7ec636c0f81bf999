"""The caller side of actors, mixed into ClusterRuntime.

    create_actor ──CreateActor──► daemon (GCS: name check, placement) ──StartActor──► worker
    handle.m.remote() ──► _Actor.queue until the address is known (GetActorInfo, wait)
                      ──► _Actor.outbox ──(st.lock: one sender at a time)──► actor worker

Calls leave in submission order: they are appended to the outbox under the
runtime lock and sent, in that order, under the actor's own send lock (so a
full socket never blocks the reader threads that hold the runtime lock).

When the actor's connection drops, the daemon is asked what happened (it
knows whether the actor exited on purpose, crashed or is restarting):

    connection lost ─► in-flight calls with retries left ─► front of _Actor.queue, in
                       │                                    submission order (task ids grow)
                       └ the others ─► _Actor.lost ─┐
    ActorInfo ALIVE (restarted) ─► queue sent to it; lost calls fail with the death
    ActorInfo DEAD              ─► queue and lost calls fail with the daemon's reason
                                   ("it called exit_actor()", "its worker process
                                   exited unexpectedly", "its owner, ..., exited")
"""
from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from .. import _ids
from .._protocol import messages as m
from .._serialization import dumps_error, loads
from ..exceptions import (ActorAlreadyExistsError, ActorDiedError, PendingCallsLimitExceeded,
                          RayTaskError)
from .base import ActorMeta
from .cluster_tasks import driver_sys_path
from .object_ref import ObjectRef

if TYPE_CHECKING:
    from .._protocol.transport import Connection
    from .cluster_tasks import _Task


class _Actor:
    __slots__ = ("actor_id", "state", "conn", "queue", "resolving", "death", "retries", "lock", "outbox",
                 "max_pending", "handles", "collect", "escaped", "lost")

    def __init__(self, actor_id: bytes, retries: int = 0):
        self.actor_id = actor_id
        self.state = "UNKNOWN"
        self.conn: Connection | None = None
        self.queue: deque[_Task] = deque()
        self.resolving = False
        self.death: bytes | None = None
        self.retries = retries
        self.lock = threading.RLock()
        self.outbox: deque = deque()
        self.max_pending = -1
        self.handles = 0          # live ActorHandle instances in this process
        self.collect = False      # created here, unnamed, not detached: ends with its handles
        self.escaped = False      # a handle was pickled to another process
        self.lost: list[_Task] = []  # in flight when the connection dropped, no retries left


def _death_error(actor_id: bytes, death: bytes | None) -> bytes:
    if death is None:
        return dumps_error(ActorDiedError(f"Actor {actor_id.hex()} is unknown to the cluster: it "
                                          "was never created here, or its cluster was restarted.",
                                          actor_id.hex()))
    err = loads(death)
    if isinstance(err, RayTaskError):  # its __init__ raised
        return dumps_error(ActorDiedError(f"The actor died because its __init__ raised:\n{err}",
                                          actor_id.hex(), err.cause))
    return death


def _lost_call_error(actor_id: bytes, task: Any, death: bytes | None) -> bytes:
    """For a call the actor was running when its process went away and that is not retried;
    `death` is why the actor's last incarnation ended (the daemon keeps it while restarting)."""
    why = f"{loads(death)} " if death is not None else "The connection to the actor was lost. "
    return dumps_error(ActorDiedError(
        f"{why}This call ({task.name}) was running then and is not retried (set "
        "max_task_retries to retry calls when an actor restarts).", actor_id.hex()))


class ActorCalls:
    """Methods of ClusterRuntime that create, call, look up and kill actors."""

    def create_actor(self, actor_class: Any, args: tuple, kwargs: dict, options: Any) -> tuple[bytes, ActorMeta]:
        cid, blob = self._function_blob(actor_class, actor_class._cls)
        data, inlined, deps, _ = self._prepare_args(args, kwargs)
        if deps:  # the constructor's arguments must exist before the actor is placed
            self.get(deps, None)
            data, inlined, _, _ = self._prepare_args(args, kwargs)
        env = {**self._env_vars, **((options.runtime_env or {}).get("env_vars") or {})} or None
        spec = m.ActorSpec(
            actor_id=_ids.new_id(), class_id=cid, cls=blob, meta=actor_class._meta, args=data,
            inlined=inlined, owner=self.address, job_id=self.job_id,
            namespace=options.namespace or self.namespace, name=options.name,
            detached=options.lifetime == "detached", demand=options.demand(),
            placement=options.placement_demand(), max_restarts=options.max_restarts,
            max_concurrency=options.max_concurrency, env_vars=env,
            max_task_retries=options.max_task_retries,
            concurrency_groups=options.concurrency_groups, sys_path=driver_sys_path())
        reply = self._call(m.CreateActor(0, spec, options.get_if_exists))
        if reply.error:  # the only refusal: the name is taken
            raise ActorAlreadyExistsError(reply.error)
        with self._lock:
            if reply.actor_id not in self._actors:
                st = self._actors[reply.actor_id] = _Actor(reply.actor_id, options.max_task_retries)
                st.max_pending = options.max_pending_calls
                st.collect = not options.name and options.lifetime != "detached"
        return reply.actor_id, reply.meta

    def submit_actor_task(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                          options: Any) -> list[ObjectRef]:
        from .cluster_objects import _Obj
        from .cluster_tasks import _Task

        data, inlined, _, hold = self._prepare_args(args, kwargs)
        task_id = _ids.new_id()
        return_ids = tuple(_ids.new_id() for _ in range(options.num_returns))
        msg = m.PushActorTask(task_id, actor_id, method, data, inlined, return_ids, self.address,
                              options.concurrency_group)
        dead = None
        sends: list = []
        with self._lock:
            st = self._actors.get(actor_id)
            if st is None:
                st = self._actors[actor_id] = _Actor(actor_id, -2)
            if st.max_pending >= 0:
                pending = sum(1 for t in self._tasks.values() if t.actor_id == actor_id)
                if pending >= st.max_pending:
                    raise PendingCallsLimitExceeded(
                        f"Actor {actor_id.hex()} already has {pending} pending calls "
                        f"(max_pending_calls={st.max_pending}); wait for some results first.")
            retries = options.max_task_retries if options.max_task_retries is not None else st.retries
            task = _Task(task_id, msg, return_ids, method, retries, options.retry_exceptions, hold, actor_id)
            for rid in return_ids:
                self._store[rid] = _Obj(True)
                self._task_of[rid] = task_id
            refs = [ObjectRef(rid, self.address, self) for rid in return_ids]
            if st.state == "DEAD":
                dead = st.death
            else:
                self._tasks[task_id] = task
                if st.conn is not None and not st.queue:
                    self._to_actor(st, task)
                else:
                    st.queue.append(task)
                    sends = self._resolve_actor(st)
        self._send_all(sends)
        self._flush_actor(st)
        if dead is not None:
            for rid in return_ids:
                self._complete(rid, None, dead)
        return refs

    def _to_actor(self, st: _Actor, task: Any) -> None:
        """Queues one call for sending to a connected actor (runtime lock held)."""
        task.conn = st.conn
        self._inflight.setdefault(st.conn, set()).add(task.task_id)
        st.outbox.append((st.conn, task.msg))

    def _flush_actor(self, st: _Actor) -> None:
        with st.lock:
            while True:
                with self._lock:
                    if not st.outbox:
                        return
                    conn, msg = st.outbox.popleft()
                try:
                    conn.send(msg)
                except OSError:
                    pass  # the connection's reader fails or retries the call

    def _resolve_actor(self, st: _Actor) -> list:
        """Asks the daemon where the actor lives, once (runtime lock held)."""
        if st.resolving:
            return []
        st.resolving = True
        req = next(self._req)
        self._actor_reqs[req] = st.actor_id
        return [(self._daemon, m.GetActorInfo(req, st.actor_id, None, None, True))]

    def _actor_resolved(self, msg: m.ActorInfo) -> None:
        conn = None
        if msg.state == "ALIVE":
            try:
                conn = self._peer(msg.address, b"t")
            except (ConnectionError, OSError):
                conn = None
        failed: list = []
        sends: list = []
        with self._lock:
            actor_id = self._actor_reqs.pop(msg.req)
            st = self._actors[actor_id]
            st.resolving = False
            if st.retries == -2:  # a handle made elsewhere: take the actor's own setting
                st.retries = msg.max_task_retries
                for t in st.queue:
                    if t.retries == -2:
                        t.retries = msg.max_task_retries
            if msg.state == "ALIVE" and conn is not None:
                st.state, st.conn = "ALIVE", conn
                failed = [(t, _lost_call_error(actor_id, t, msg.death)) for t in st.lost]
                while st.queue:
                    self._to_actor(st, st.queue.popleft())
            elif msg.state == "ALIVE":  # alive but unreachable: it is going down; ask again
                sends = self._resolve_actor(st)
            else:
                st.state, st.death = "DEAD", _death_error(actor_id, msg.death)
                failed = [(t, st.death) for t in (*st.lost, *st.queue)]
                st.queue.clear()
            if failed:
                st.lost = []
                failed = [(t, err) for t, err in failed if t.task_id in self._tasks]  # not cancelled
                for t, _ in failed:
                    self._drop_task(t.task_id)
        self._send_all(sends)
        self._flush_actor(st)
        for t, err in failed:
            for rid in t.return_ids:
                self._complete(rid, None, err)

    def _requeue_calls(self, st: _Actor, tasks: list) -> list:
        """Puts calls sent before back in the actor's queue (lock held), keeping the queue in
        submission order (a process's task ids grow with it), and asks where the actor is."""
        for t in tasks:
            t.lease = t.conn = None
        if not st.queue or tasks[-1].task_id < st.queue[0].task_id:
            st.queue.extendleft(reversed(tasks))
        else:  # calls retried at different times: merge
            merged = sorted((*st.queue, *tasks), key=lambda t: t.task_id)
            st.queue.clear()
            st.queue.extend(merged)
        return self._resolve_actor(st)

    def _actor_conn_lost(self, conn: Any, calls: list) -> list:
        """The connection `conn` dropped (lock held) with these actor calls in flight (in
        submission order, none cancelled). Every actor it served asks the daemon what became
        of it; calls with retries left wait in its queue, the others in its `lost` list, for
        that answer (_actor_resolved)."""
        by_actor: dict[bytes, list] = {}
        for t in calls:
            by_actor.setdefault(t.actor_id, []).append(t)
        for st in self._actors.values():  # an idle actor's next call must not go to a dead socket
            if st.conn is conn:
                st.conn, st.state = None, "UNKNOWN"
        sends: list = []
        for actor_id, tasks in by_actor.items():
            st = self._actors[actor_id]
            retry = []
            for t in tasks:
                if t.retries != 0:
                    if t.retries > 0:
                        t.retries -= 1
                    t.attempt += 1
                    retry.append(t)
                else:
                    t.lease = t.conn = None
                    st.lost.append(t)
            sends += self._requeue_calls(st, retry) if retry else self._resolve_actor(st)
        return sends

    def get_named_actor(self, name: str, namespace: str | None) -> tuple[bytes, ActorMeta]:
        ns = namespace or self.namespace
        reply = self._call(m.GetActorInfo(0, None, name, ns, False))
        if reply.state in ("UNKNOWN", "DEAD"):
            raise ValueError(f"Failed to look up actor {name!r} in namespace {ns!r}: no live actor "
                             "has that name there. Check the name and namespace.")
        return reply.actor_id, reply.meta

    def actor_meta(self, actor_id: bytes) -> ActorMeta:
        return self._call(m.GetActorInfo(0, actor_id, None, None, False)).meta

    # -- handle counting: an unnamed actor ends when its creator's handles are gone --
    def handle_created(self, actor_id: bytes) -> None:
        with self._lock:
            st = self._actors.get(actor_id)
            if st is None:
                st = self._actors[actor_id] = _Actor(actor_id, -2)
            st.handles += 1

    def handle_deleted(self, actor_id: bytes) -> None:
        with self._lock:
            st = self._actors.get(actor_id)
            if st is None:
                return
            st.handles -= 1
            if st.handles <= 0 and st.collect and not st.escaped and st.state != "DEAD":
                st.collect = False
                self._pending_terminates.append(actor_id)  # sent by the maintenance thread

    def handle_escaped(self, actor_id: bytes) -> None:
        with self._lock:
            st = self._actors.get(actor_id)
            if st is not None:
                st.escaped = True

    def _terminate_unreferenced(self) -> None:
        from .._options import MethodOptions
        from .execution import TERMINATE, UNREFERENCED

        with self._lock:
            ids, self._pending_terminates = self._pending_terminates, []
        for actor_id in ids:  # queued behind the calls already made: those still finish
            self.submit_actor_task(actor_id, TERMINATE, (UNREFERENCED,), {}, MethodOptions())

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        from .execution import KILLED

        self._to_daemon(m.KillActor(actor_id, no_restart, KILLED))  # a clear error once the cluster is gone
        with self._lock:
            st = self._actors.get(actor_id)
            if st is not None and st.state == "ALIVE":
                st.conn, st.state = None, "UNKNOWN"
