"""LocalRuntime: the whole API in the calling process (init(local_mode=True)).

    .remote() ──► copy args (serialize + deserialize) ──► resolve top-level refs
              ──► run the body now, on the calling thread ──► store serialized results
    get()     ──► deserialize a fresh copy (or raise the stored error)

No daemons, no sockets, no threads (except one event loop per async actor): a breakpoint or
profiler in a task just works. Semantics match the cluster: values are copied, refs in
arguments stay refs, errors are RayTaskError with the remote traceback, named actors live in
namespaces, a demand too large raises at once.

The rules are the cluster's own, from the same pure cores (one place per rule):

    _core  Owner (raylite._core.owner), as in every cluster process: object entries and
           reference counts, retries (Task.retry_error), the caller side of actors (handle
           lifetimes, max_task_retries); TaskEventTable, as in the GCS (local_events.py)
    _gcs   GcsTables (raylite._gcs.tables), as on a cluster's head: actors, names, restarts

This shell owns only what runs here (all under `_lock`): `_hosts` (actor id -> _Host:
instance, event loop, call lock, GPUs), generator bodies in progress (`_bodies`:
local_streams.py), this process's resources and its task events. Errors are stored as the
exceptions themselves. `state()` answers with the cores' records and this node's and job's.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import threading
import time
from typing import Any, Sequence

from .. import _config, _ids
from .. import _resources as resources
from .._actor_ends import ended_error
from .._core.owner import WAKE, Owner, Task, named_actor_missing
from .._core.records import JobRecord, NodeRecord, StateSnapshot
from .._gcs.tables import GcsTables
from .._options import placement
from .._protocol.messages import ActorSpec
from .._serialization import dumps_with_refs, loads
from .._runtime_env.local import LocalEnvs
from ..exceptions import (ActorAlreadyExistsError, ActorDiedError, ActorUnschedulableError,
                          ObjectLostError, RayTaskError, TaskUnschedulableError)
from . import context, execution
from .base import ActorMeta, ContextInfo, InitInfo, Runtime
from .factory import InitRequest
from .local_groups import LocalGroups
from .local_host import _Host
from .local_streams import LocalStreams
from .local_events import LocalTaskEvents
from .object_ref import ObjectRef

LOCAL = "local"  # this runtime's address: the owner of every ref it makes


class LocalRuntime(LocalStreams, LocalGroups, Runtime):
    name = "local"

    def __init__(self, request: InitRequest):
        self._lock = threading.RLock()
        self._core = Owner(LOCAL, clock=time.time, parent_of=context.task_id)
        self._gcs = GcsTables()
        self._hosts: dict[bytes, _Host] = {}
        self._bodies: dict = {}
        self._total = resources.node_total(request.num_cpus, request.num_gpus, request.resources,
                                           request.object_store_memory)
        self._available = dict(self._total)
        self._free_gpus = list(range(int(self._total.get("GPU", 0))))
        self._job_id = _ids.random_id(4)
        self._node_id = _ids.random_id(16)
        self._namespace = request.namespace or f"anonymous-{_ids.random_id(8).hex()}"
        self._envs = LocalEnvs(request.runtime_env)  # what local mode can apply (working_dir ...)
        self._closed = False
        self._init_groups()
        self._events_on = request.task_events  # the task-event store: local_events.py
        self._events = LocalTaskEvents(self._core.events, self._node_id, self._job_id,
                                       _config.from_env().task_events_max_per_job)

    # -- lifecycle -----------------------------------------------------------
    def info(self) -> InitInfo:
        return InitInfo(address=LOCAL, node_id=self._node_id.hex(), namespace=self._namespace,
                        session_dir=None, mode="local")

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            hosts = list(self._hosts.values())
            for h in hosts:
                h.instance = None
                self._gcs.actor_died(h.id, ActorDiedError("The runtime was shut down.", h.id.hex()),
                                     False, "The runtime was shut down.")
            self._core = Owner(LOCAL)  # every object goes; refs still alive find nothing
        for h in hosts:
            h.stop_loop()

    # -- references ----------------------------------------------------------
    def ref_created(self, ref: ObjectRef) -> bool:
        if not ref._owner:  # out of band (rebuilt from an id alone): counted nowhere, as on a cluster
            return False
        with self._lock:
            self._core.objects.ref_created(ref._id, ref._owner)
        return True

    def ref_deleted(self, id: bytes) -> None:
        with self._lock:
            self._core.objects.ref_deleted(id)

    def owner_of(self, id: bytes) -> str | None:
        return self._core.objects.owner_of(id)

    def _new_refs(self, n: int) -> list[ObjectRef]:
        ids = [_ids.new_id() for _ in range(n)]
        with self._lock:
            for id in ids:
                self._core.objects.expect(id)
        return [ObjectRef(id, LOCAL, self) for id in ids]

    def _set(self, ref: ObjectRef, value: Any = None, error: BaseException | None = None) -> None:
        data = contained = None
        if error is None:
            try:
                data, contained = dumps_with_refs(value)
            except TypeError as e:
                error = e
        with self._lock:
            out = self._core.complete(ref._id, data, error)
            if contained:
                self._core.objects.keep(ref._id, contained)
            if self._awaiting:
                self._resolved.notify_all()
        for target, wake in out:  # nothing waits in local mode, but the contract is the same
            if target is WAKE:
                wake()

    def _value(self, ref: ObjectRef) -> Any:
        o = self._core.objects.entries.get(ref._id)
        if o is None or not o.ready:
            raise ObjectLostError(ref.hex(), f"Object {ref.hex()} is not in this runtime: was it "
                                  "created before the last shutdown()?")
        if o.error is not None:
            err = o.error
            raise err.as_instanceof_cause() if isinstance(err, RayTaskError) else err
        return loads(o.data)

    # -- objects -------------------------------------------------------------
    def put(self, value: Any) -> ObjectRef:
        data, contained = dumps_with_refs(value)
        id = _ids.new_id()
        with self._lock:
            self._core.objects.put(id, data, contained)
        return ObjectRef(id, LOCAL, self)

    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list:
        self._await_refs(refs, len(refs), timeout, True)
        return [self._value(r) for r in refs]

    def wait(self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        done = self._await_refs(refs, num_returns, timeout, False)
        ready = [r for r in refs if id(r) in done][:num_returns]
        chosen = {id(r) for r in ready}
        return ready, [r for r in refs if id(r) not in chosen]

    def future(self, ref: ObjectRef) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        try:
            fut.set_result(self._value(ref))
        except Exception as e:
            fut.set_exception(e)
        return fut

    # -- tasks ---------------------------------------------------------------
    def _resolve(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """Copies the arguments as a remote call would, then resolves top-level refs."""
        data, _ = dumps_with_refs((args, kwargs))
        args, kwargs = loads(data)
        args = tuple(self._value(a) if isinstance(a, ObjectRef) else a for a in args)
        kwargs = {k: self._value(v) if isinstance(v, ObjectRef) else v for k, v in kwargs.items()}
        return args, kwargs

    def _check_feasible(self, demand: dict, what: str, name: str, unschedulable: type) -> None:
        short = resources.missing(demand, self._total)
        if short:
            need = ", ".join(f"{k}: {w:g} (node has {h:g})" for k, (w, h) in short.items())
            raise unschedulable(f"{what} {name} needs {need}; it can never run on this node. "
                                "Lower its num_cpus/num_gpus/resources, or pass larger amounts "
                                "to init().")

    def _run(self, refs: list[ObjectRef], name: str, body: Any, args: tuple, kwargs: dict,
             scope: context.TaskScope, env: dict | None, retry_exceptions: Any = False,
             max_retries: int = 0, actor: _Host | None = None, events: bool = False,
             attempt: int = 0) -> None:
        # A task of the owner core: known running here while it runs; the cluster's retry rule.
        task = Task(scope.task_id, None, (), name, max_retries, retry_exceptions, None,
                    actor.id if actor is not None else None, events=events)
        task.attempt = attempt  # an actor's creation: one attempt per incarnation
        task.parent = context.task_id()  # the caller's task (the body runs in its own scope)
        core = self._core
        with self._lock:
            core.tasks.running_here(task, LOCAL)
            for r in refs:  # what made them (ObjectRef.task_id)
                o = core.objects.entries.get(r._id)
                if o is not None:
                    o.task_id = scope.task_id
        try:
            body = self._events.traced(task, body) if events else body
            self._attempts(task, refs, name, body, args, kwargs, scope, env, actor)
        finally:
            with self._lock:
                core.tasks.drop(task.task_id)
                self._events.drain()

    def _attempts(self, task: Task, refs: list[ObjectRef], name: str, body: Any, args: tuple,
                  kwargs: dict, scope: context.TaskScope, env: dict | None,
                  actor: _Host | None) -> None:
        try:
            args, kwargs = self._resolve(args, kwargs)
        except Exception as dep_err:  # an upstream task failed: this one fails the same way
            for r in refs:
                self._set(r, error=execution.task_error(dep_err, name))
            return
        actor_repr = actor.meta.class_name if actor else None
        while True:
            try:
                with context.scope(scope), execution.env_vars(env):
                    value = body(*args, **kwargs)
                    if inspect.iscoroutine(value):
                        value = execution.run_coroutine(self._actor_loop(actor), value)
                    values = execution.split_returns(value, len(refs), name)
            except execution.ActorExit:
                self._mark_dead(actor, _ended(actor, execution.EXITED))
                for r in refs:
                    self._set(r, error=self._death(actor.id))
                return
            except Exception as exc:
                values, exc = execution.partial(exc)  # a generator's values before it raised
                if task.retry_error(exc):
                    continue
                err = execution.task_error(exc, name, actor_repr)
                for i, r in enumerate(refs):
                    self._set(r, *((values[i],) if i < len(values) else (None, err)))
                return
            for r, v in zip(refs, values):
                self._set(r, v)
            return

    def submit_task(self, function: Any, args: tuple, kwargs: dict, options: Any) -> list[ObjectRef]:
        name = options.name or function._name
        demand = options.demand()
        self._check_group(options.scheduling_strategy, "Task", name, TaskUnschedulableError)
        self._check_feasible(demand, "Task", name, TaskUnschedulableError)
        env = self._envs.of(context.current(), options.runtime_env)
        body = self._envs.wrap(env, function._function)  # ValueError: not here
        refs = self._new_refs(options.num_returns)
        with self._lock:
            gpus = tuple(self._free_gpus[:int(options.num_gpus)]) if options.num_gpus else ()
            resources.subtract(self._available, demand)
        scope = context.TaskScope(task_id=refs[0]._id if refs else _ids.new_id(), resources=demand,
                                  gpu_ids=gpus, job_id=self._job_id, name=name,
                                  function=function._function, runtime_env=self._envs.described(env),
                                  placement=placement(options.scheduling_strategy), env=env)
        try:
            self._run(refs, name, body, args, kwargs, scope, (env or {}).get("env_vars"),
                      options.retry_exceptions, options.max_retries, None,
                      options.enable_task_events and self._events_on)
        finally:
            with self._lock:
                resources.add(self._available, demand)
        return refs

    # -- actors --------------------------------------------------------------
    def _actor_loop(self, actor: _Host | None) -> asyncio.AbstractEventLoop:
        if actor is None:
            raise TypeError("A remote function returned a coroutine: use an async actor instead.")
        with self._lock:
            if actor.loop is None:
                actor.loop = asyncio.new_event_loop()
                # The loop's thread is the actor's: get_runtime_context() there names it.
                actor_scope = self._scope(actor)._replace(task_id=None)

                def run(loop: asyncio.AbstractEventLoop = actor.loop) -> None:
                    with context.scope(actor_scope):
                        loop.run_forever()

                actor.loop_thread = threading.Thread(target=run, daemon=True,
                                                     name=f"raylite-actor-{actor.meta.class_name}")
                actor.loop_thread.start()
            return actor.loop

    def create_actor(self, actor_class: Any, args: tuple, kwargs: dict, options: Any) -> tuple[bytes, ActorMeta]:
        ns = options.namespace or self._namespace
        meta = actor_class._meta
        self._check_group(options.scheduling_strategy, "Actor", meta.class_name, ActorUnschedulableError)
        self._check_feasible(options.placement_demand(), "Actor", meta.class_name, ActorUnschedulableError)
        creator = context.current()
        env = self._envs.of(creator, options.runtime_env)  # for its whole life (and its restarts)
        self._envs.apply(env)  # ValueError for what local mode cannot run, before it exists
        detached = options.lifetime == "detached"
        owner = creator.actor_id.hex() if creator is not None and creator.actor_id and not detached \
            else ""  # an actor's non-detached actors share its fate; a driver's end with the runtime
        spec = ActorSpec(actor_id=_ids.new_id(), class_id=b"", cls=b"", meta=meta, args=b"",
                         inlined={}, owner=owner, job_id=self._job_id, namespace=ns,
                         name=options.name, detached=detached, demand=options.demand(),
                         placement=options.placement_demand(), max_restarts=options.max_restarts,
                         max_concurrency=options.max_concurrency, env_vars=None,
                         max_task_retries=options.max_task_retries)
        with self._lock:
            named = self._gcs.lookup(None, options.name, ns) if options.name else None
            if (named is None or named.state == "DEAD") and not resources.fits(spec.demand, self._available):
                raise ActorUnschedulableError(
                    f"Actor {meta.class_name} needs {resources.describe(spec.demand)} but live actors "
                    f"hold all but {resources.describe(self._available)}; in local mode it would "
                    "wait forever. Kill an actor first, or give init() more resources.")
            actor_id, found, error = self._gcs.register_actor(spec, options.get_if_exists)
            if error is not None:
                raise ActorAlreadyExistsError(error)
            if actor_id != spec.actor_id:  # get_if_exists found it
                return actor_id, found
            resources.subtract(self._available, spec.demand)
            host = _Host(actor_id, actor_class._cls, meta, options, ns, args, kwargs)
            host.env = env
            host.gpu_ids = tuple(self._free_gpus[:int(options.num_gpus)])
            del self._free_gpus[:len(host.gpu_ids)]
            self._hosts[actor_id] = host
            self._core.actors.created(actor_id, options.max_task_retries, -1,
                                      not options.name and not detached, meta.class_name)
        self._start_actor(host)
        return actor_id, meta

    def _scope(self, actor: _Host, method: str | None = None) -> context.TaskScope:
        """The scope of one call of `method` (None: the actor itself, outside any call)."""
        return context.TaskScope(task_id=_ids.new_id(), actor_id=actor.id, actor_name=actor.options.name,
                                 resources=actor.options.demand(), gpu_ids=actor.gpu_ids,
                                 was_restarted=self._gcs.actors[actor.id].restarts > 0,
                                 job_id=self._job_id,
                                 name=f"{actor.meta.class_name}.{method}" if method else None,
                                 function=getattr(actor.cls, method, None) if method else None,
                                 runtime_env=self._envs.described(actor.env),
                                 placement=placement(actor.options.scheduling_strategy), env=actor.env)

    def _death(self, actor_id: bytes) -> BaseException:
        entry = self._gcs.actors.get(actor_id)
        if entry is None or entry.death is None:
            return ActorDiedError(f"Actor {actor_id.hex()} is not known to this runtime (created "
                                  "before shutdown()?).", actor_id.hex())
        return entry.death

    def _start_actor(self, actor: _Host) -> None:
        ref, holder = self._new_refs(1)[0], {}
        restarts = self._events.restarted(self._gcs.actors[actor.id], self._events_on)

        def construct(*a: Any, **kw: Any) -> None:
            holder["instance"] = actor.cls(*a, **kw)

        self._run([ref], f"{actor.meta.class_name}.__init__",
                  self._envs.wrap(actor.env, construct), actor.args, actor.kwargs,
                  self._scope(actor, "__init__")._replace(task_id=actor.id),  # the creation task's id
                  (actor.env or {}).get("env_vars"), actor=actor,
                  events=self._events_on, attempt=restarts)
        error = self._core.objects.entries[ref._id].error
        if error is None:
            with self._lock:
                actor.instance = holder["instance"]
                self._gcs.actor_started(actor.id, b"", LOCAL)
            return
        with self._lock:
            death = self._core.actors.death_error(actor.id, error)  # the cluster's words
        self._mark_dead(actor, death)

    def _mark_dead(self, actor: _Host, error: BaseException, may_restart: bool = False) -> str:
        """Ends an actor (for good, or before a restart when `may_restart` and restarts are left:
        the GCS tables decide); the non-detached actors it created end with it (fate sharing)."""
        with self._lock:
            entry = self._gcs.actors.get(actor.id)
            if entry is None or entry.state == "DEAD":
                return "DEAD"
            state = self._gcs.actor_died(actor.id, error, may_restart,
                                         str(error).partition("\n")[0])
            actor.instance = None
            resources.add(self._available, actor.options.demand())
            self._free_gpus.extend(actor.gpu_ids)
            if state == "DEAD":
                self._core.actors.died(actor.id, error)
            owned = [self._hosts[a] for a in self._gcs.owned_by(actor.id.hex()) if a in self._hosts]
        actor.stop_loop()
        why = execution.owner_exited(f"the actor {actor.meta.class_name}")
        for child in owned:
            self._mark_dead(child, _ended(child, why))
        if self._preparing:  # what it held may complete a placement group's reservation
            self._groups_retry()
        return state

    def submit_actor_task(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                          options: Any) -> list[ObjectRef]:
        actor = self._hosts.get(actor_id)
        entry = self._gcs.actors.get(actor_id)
        refs = self._new_refs(options.num_returns)
        if actor is None or entry is None or entry.state != "ALIVE":
            err = self._death(actor_id)
            for r in refs:
                self._set(r, error=err)
            return refs
        if method == execution.TERMINATE:
            self._mark_dead(actor, _ended(actor, execution.TERMINATED))
            for r in refs:
                self._set(r, None)
            return refs
        with actor.call_lock:
            instance = actor.instance
            if instance is None:  # killed while this call waited for the one before it
                for r in refs:
                    self._set(r, error=self._death(actor_id))
                return refs
            st = self._core.actors.get(actor_id)
            self._run(refs, f"{actor.meta.class_name}.{method}",
                      execution.actor_method(instance, method), args,
                      kwargs, self._scope(actor, method), (actor.env or {}).get("env_vars"),
                      options.retry_exceptions,
                      self._core.actors.retries_for(st, options.max_task_retries), actor,
                      options.enable_task_events and self._events_on)
        return refs

    def get_named_actor(self, name: str, namespace: str | None) -> tuple[bytes, ActorMeta]:
        ns = namespace or self._namespace
        with self._lock:
            entry = self._gcs.lookup(None, name, ns)
            if entry is None or entry.state == "DEAD":
                raise named_actor_missing(name, ns)
            return entry.spec.actor_id, entry.spec.meta

    def handle_created(self, actor_id: bytes) -> None:
        with self._lock:
            self._core.actors.handle_created(actor_id)

    def handle_deleted(self, actor_id: bytes) -> None:
        with self._lock:
            if not self._core.actors.handle_deleted(actor_id):
                return
            ended = [self._hosts[a] for a in self._core.actors.take_terminates() if a in self._hosts]
        for actor in ended:  # here an unreferenced actor ends at once: its calls have all run
            self._mark_dead(actor, _ended(actor, execution.UNREFERENCED))

    def handle_escaped(self, actor_id: bytes) -> None:
        with self._lock:
            self._core.actors.handle_escaped(actor_id)

    def actor_meta(self, actor_id: bytes) -> ActorMeta:
        return self._hosts[actor_id].meta

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        actor = self._hosts.get(actor_id)
        if actor is None:
            return
        if self._mark_dead(actor, _ended(actor, execution.KILLED), may_restart=not no_restart) \
                == "RESTARTING":
            with self._lock:
                resources.subtract(self._available, actor.options.demand())
            self._start_actor(actor)

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        # A task has finished by the time .remote() returns (cancelling it does nothing, as in
        # Ray), except a generator's body, run as it is consumed: its stream ends.
        self._stream_cancel(ref)

    # -- cluster state -------------------------------------------------------
    def nodes(self) -> list[dict]:
        return [{"NodeID": self._node_id.hex(), "Alive": True, "NodeManagerAddress": "127.0.0.1",
                 "NodeManagerHostname": os.uname().nodename, "Resources": dict(self._total),
                 "alive": True, "Labels": {"ray.io/node-id": self._node_id.hex()}}]

    def cluster_resources(self) -> dict:
        return dict(self._total)

    def available_resources(self) -> dict:
        with self._lock:
            return {k: v for k, v in self._available.items() if v > 0}

    def context(self) -> ContextInfo:
        return context.info(self._job_id, self._node_id, self._node_id, self._namespace)

    def task_events(self, request: Any, timeout: float) -> Any:
        with self._lock:
            return self._events.answer(request)

    def state(self) -> StateSnapshot:
        """Its node, job, actors (GCS tables'), tasks running now and objects (owner core's)."""
        with self._lock:
            node = NodeRecord(self._node_id.hex(), LOCAL, os.uname().nodename, True, True,
                              dict(self._total), dict(self._available))
            owned = self._core.state(("tasks", "objects"))
            actors = self._gcs.state().actors
        job = JobRecord(self._job_id.hex(), self._namespace, os.getpid(), not self._closed)
        return StateSnapshot("local", (node,), (job,), (), (), actors, owned.tasks, owned.objects,
                             self.placement_groups(None, None))


def _ended(actor: _Host, why: str) -> ActorDiedError:
    return ended_error(actor.meta.class_name, actor.id, why)
