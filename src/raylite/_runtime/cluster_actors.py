"""The caller side of actors: the I/O of ClusterRuntime around the owner core's actor calls.

    create_actor ──CreateActor──► daemon (GCS: name check, placement) ──StartActor──► worker
    handle.m.remote() ──► core.actors.submit ──► queue until the address is known
                      │        (GetActorInfo ─► _actor_resolved: connect, core.actors.resolved)
                      └──► the actor's outbox (core) ──_flush_actor (send lock)──► actor worker

The rules (call order, replay of calls lost with a connection, restarts and
deaths, handle lifetimes) live in raylite._core.owner.actors. This shell
connects, asks the daemon, and sends each actor's outbox in order under that
actor's send lock (`_send_locks`), outside the runtime lock, so a full socket
never blocks the reader threads.
"""
from __future__ import annotations

import threading
from typing import Any

from .. import _ids
from .._core.owner import Task, named_actor_missing
from .._options import placement, strategy_wire
from .._protocol import messages as m
from ..exceptions import ActorAlreadyExistsError
from .base import ActorMeta
from .cluster_tasks import driver_sys_path
from .object_ref import ObjectRef


class ActorCalls:
    """Methods of ClusterRuntime that create, call, look up and kill actors."""

    def create_actor(self, actor_class: Any, args: tuple, kwargs: dict, options: Any) -> tuple[bytes, ActorMeta]:
        cid, blob = self._function_blob(actor_class, actor_class._cls)
        data, inlined, deps, _ = self._prepare_args(args, kwargs)
        if deps:  # the constructor's arguments must exist before the actor is placed
            self.get(deps, None)
            data, inlined, _, _ = self._prepare_args(args, kwargs)
        env, renv, given = self._env_parts(options.runtime_env,  # its creator's env, inherited
                                           self._parent_env() if self.in_worker else None)
        spec = m.ActorSpec(
            actor_id=_ids.new_id(), class_id=cid, cls=blob, meta=actor_class._meta, args=data,
            inlined=inlined, owner=self.address, job_id=self.job_id,
            namespace=options.namespace or self.namespace, name=options.name,
            detached=options.lifetime == "detached", demand=options.demand(),
            placement=options.placement_demand(), max_restarts=options.max_restarts,
            max_concurrency=options.max_concurrency, env_vars=env,
            max_task_retries=options.max_task_retries,
            concurrency_groups=options.concurrency_groups, sys_path=driver_sys_path(),
            strategy=strategy_wire(options.scheduling_strategy),
            placement_group=placement(options.scheduling_strategy),
            runtime_env=renv, task_events=self._events_on, given_env=given)
        reply = self._call(m.CreateActor(0, spec, options.get_if_exists))
        if reply.error:  # the only refusal: the name is taken
            raise ActorAlreadyExistsError(reply.error)
        with self._lock:
            self._core.actors.created(reply.actor_id, options.max_task_retries,
                                      options.max_pending_calls,
                                      not options.name and options.lifetime != "detached",
                                      reply.meta.class_name)
            if self._events_on and reply.actor_id == spec.actor_id:  # made now, not found
                self._core.events.actor_created(spec.actor_id, reply.meta.class_name)
        return reply.actor_id, reply.meta

    def submit_actor_task(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                          options: Any) -> list[ObjectRef]:
        data, inlined, _, hold = self._prepare_args(args, kwargs)
        task_id = _ids.new_id()
        return_ids = tuple(_ids.new_id() for _ in range(options.num_returns))
        events = options.enable_task_events and self._events_on
        msg = m.PushActorTask(task_id, actor_id, method, data, inlined, return_ids, self.address,
                              options.concurrency_group, 0, events)
        task = Task(task_id, msg, return_ids, method, None, options.retry_exceptions, hold, actor_id,
                    events=events)
        with self._lock:
            out = self._core.actors.submit(task, options.max_task_retries)
            refs = [ObjectRef(rid, self.address, self) for rid in return_ids]
        if out:
            self._send_all(out)
        self._flush_actor(actor_id)
        if events:
            self._note_sent()
        return refs

    def _flush_actor(self, actor_id: bytes) -> None:
        """Sends what the core put in the actor's outbox, in order: one sender at a time (the
        actor's send lock), each message taken under the runtime lock, sent outside it."""
        st = self._core.actors.actors.get(actor_id)
        if st is None or not st.outbox:  # whoever appends next flushes after it
            return
        lock = self._send_locks.get(actor_id)
        if lock is None:
            lock = self._send_locks.setdefault(actor_id, threading.RLock())
        outbox = st.outbox
        with lock:
            while True:
                with self._lock:
                    if not outbox:
                        return
                    conn, msg = outbox.popleft()
                try:
                    conn.send(msg)
                except OSError:
                    pass  # the connection's reader fails or retries the call

    def _actor_resolved(self, msg: m.ActorInfo) -> None:
        conn = None
        if msg.state == "ALIVE":
            try:
                conn = self._peer(msg.address, b"t")
            except (ConnectionError, OSError):
                conn = None
        with self._lock:
            actor_id = self._core.actors.reqs.get(msg.req)
            if actor_id is None:  # the daemon went and took the question with it
                return
            out = self._core.actors.resolved(msg.req, msg.state, msg.address, msg.death,
                                             msg.max_task_retries, conn)
        self._send_all(out)
        self._flush_actor(actor_id)

    def get_named_actor(self, name: str, namespace: str | None) -> tuple[bytes, ActorMeta]:
        ns = namespace or self.namespace
        reply = self._call(m.GetActorInfo(0, None, name, ns, False))
        if reply.state in ("UNKNOWN", "DEAD"):
            raise named_actor_missing(name, ns)
        return reply.actor_id, reply.meta

    def actor_meta(self, actor_id: bytes) -> ActorMeta:
        return self._call(m.GetActorInfo(0, actor_id, None, None, False)).meta

    # -- handle counting: an unnamed actor ends when its creator's handles are gone --
    def handle_created(self, actor_id: bytes) -> None:
        with self._lock:
            self._core.actors.handle_created(actor_id)

    def handle_deleted(self, actor_id: bytes) -> None:
        with self._lock:  # a last handle queues a terminate: sent by the maintenance thread
            self._core.actors.handle_deleted(actor_id)

    def handle_escaped(self, actor_id: bytes) -> None:
        with self._lock:
            self._core.actors.handle_escaped(actor_id)

    def _terminate_unreferenced(self) -> None:
        from .._options import MethodOptions
        from .execution import TERMINATE, UNREFERENCED

        with self._lock:
            ids = self._core.actors.take_terminates()
        for actor_id in ids:  # queued behind the calls already made: those still finish
            self.submit_actor_task(actor_id, TERMINATE, (UNREFERENCED,), {}, MethodOptions())

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        from .execution import KILLED

        self._to_daemon(m.KillActor(actor_id, no_restart, KILLED))  # a clear error once the cluster is gone
        with self._lock:
            self._core.actors.killed(actor_id)
