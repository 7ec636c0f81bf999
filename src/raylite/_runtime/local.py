"""LocalRuntime: the whole API in the calling process (init(local_mode=True)).

    .remote() ──► copy args (serialize + deserialize) ──► resolve top-level refs
              ──► run the body now, on the calling thread ──► store serialized results
    get()     ──► deserialize a fresh copy (or raise the stored error)

No daemons, no sockets, no threads (except one event loop per async actor):
a breakpoint or profiler inside a task or actor method just works, and the
stack trace runs straight from the caller into the body. Semantics match the
cluster: values are copied, refs nested in arguments stay refs, errors are
RayTaskError with the remote traceback, named actors live in namespaces,
an actor's non-detached actors end with it, and a demand larger than the
node raises at once instead of hanging.

State (all guarded by `_lock`): `_store` id -> _Entry, `_counts` id -> live
ObjectRef instances (an entry is freed when its count reaches zero), and the
actor table with its name index; `_running` holds the tasks and actor calls
running now (task id -> [name, attempt, actor]). `state()` answers with records
of all of it, as a cluster's daemons and owners do.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import threading
from typing import Any, Sequence

from .. import _ids
from .. import _resources as resources
from .._core.records import (ActorRecord, JobRecord, NodeRecord, ObjectRecord, StateSnapshot,
                             TaskRecord)
from .._serialization import dumps_with_refs, loads
from ..exceptions import (ActorAlreadyExistsError, ActorDiedError, ActorUnschedulableError,
                          ObjectLostError, RayTaskError, TaskUnschedulableError)
from . import context, execution
from .base import ActorMeta, ContextInfo, InitInfo, Runtime
from .factory import InitRequest
from .object_ref import ObjectRef


class _Entry:
    __slots__ = ("data", "error", "contained")

    def __init__(self, data: bytes | None, error: BaseException | None, contained: list):
        self.data = data
        self.error = error
        self.contained = contained  # refs inside the value, kept alive with it


class _Actor:
    def __init__(self, actor_id: bytes, cls: type, meta: ActorMeta, options: Any,
                 namespace: str, args: tuple, kwargs: dict):
        self.id = actor_id
        self.cls = cls
        self.meta = meta
        self.options = options
        self.namespace = namespace
        self.args, self.kwargs = args, kwargs
        self.instance: Any = None
        self.dead: BaseException | None = None
        self.restarts = 0
        self.gpu_ids: tuple = ()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: threading.Thread | None = None
        self.handles = 0
        self.collect = not options.name and options.lifetime != "detached"
        self.escaped = False
        self.owner: bytes | None = None  # the actor that created it, unless detached
        # A plain actor runs one call at a time, as on a cluster, even when several threads call it.
        serial = not meta.is_async and (options.max_concurrency or 1) == 1 \
            and not options.concurrency_groups
        self.call_lock = threading.RLock() if serial else contextlib.nullcontext()

    def stop_loop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self.loop_thread is not threading.current_thread():
                self.loop_thread.join()
                self.loop.close()
            self.loop = self.loop_thread = None


class LocalRuntime(Runtime):
    name = "local"

    def __init__(self, request: InitRequest):
        self._lock = threading.RLock()
        self._store: dict[bytes, _Entry] = {}
        self._counts: dict[bytes, int] = {}
        self._actors: dict[bytes, _Actor] = {}
        self._names: dict[tuple[str, str], bytes] = {}
        self._total = resources.node_total(request.num_cpus, request.num_gpus, request.resources,
                                           request.object_store_memory)
        self._available = dict(self._total)
        self._free_gpus = list(range(int(self._total.get("GPU", 0))))
        self._job_id = _ids.random_id(4)
        self._node_id = _ids.random_id(16)
        self._namespace = request.namespace or f"anonymous-{_ids.random_id(8).hex()}"
        self._job_env = (request.runtime_env or {}).get("env_vars") or {}
        self._closed = False
        self._running: dict[bytes, list] = {}

    # -- lifecycle -----------------------------------------------------------
    def info(self) -> InitInfo:
        return InitInfo(address="local", node_id=self._node_id.hex(), namespace=self._namespace,
                        session_dir=None, mode="local")

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            actors = list(self._actors.values())
            for a in actors:
                a.dead = a.dead or ActorDiedError("The runtime was shut down.", a.id.hex())
            self._names.clear()
            self._store.clear()
            self._counts.clear()
        for a in actors:
            a.stop_loop()

    # -- references ----------------------------------------------------------
    def ref_created(self, ref: ObjectRef) -> None:
        with self._lock:
            self._counts[ref._id] = self._counts.get(ref._id, 0) + 1

    def ref_deleted(self, id: bytes) -> None:
        with self._lock:
            n = self._counts.get(id, 0) - 1
            if n > 0:
                self._counts[id] = n
            else:
                self._counts.pop(id, None)
                self._store.pop(id, None)

    def _new_refs(self, n: int) -> list[ObjectRef]:
        return [ObjectRef(_ids.new_id(), None, self) for _ in range(n)]

    def _set(self, ref: ObjectRef, value: Any = None, error: BaseException | None = None) -> None:
        if error is not None:
            entry = _Entry(None, error, [])
        else:
            try:
                data, contained = dumps_with_refs(value)
            except TypeError as e:
                entry = _Entry(None, e, [])
            else:
                entry = _Entry(data, None, contained)
        with self._lock:
            if ref._id in self._counts:
                self._store[ref._id] = entry

    def _value(self, ref: ObjectRef) -> Any:
        with self._lock:
            entry = self._store.get(ref._id)
        if entry is None:
            raise ObjectLostError(ref.hex(), f"Object {ref.hex()} is not in this runtime: was it "
                                  "created before the last shutdown()?")
        if entry.error is not None:
            err = entry.error
            raise err.as_instanceof_cause() if isinstance(err, RayTaskError) else err
        return loads(entry.data)

    # -- objects -------------------------------------------------------------
    def put(self, value: Any) -> ObjectRef:
        data, contained = dumps_with_refs(value)
        id = _ids.new_id()
        with self._lock:
            self._counts[id] = 0
            self._store[id] = _Entry(data, None, contained)
        return ObjectRef(id, None, self)

    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list:
        return [self._value(r) for r in refs]

    def wait(self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        return list(refs[:num_returns]), list(refs[num_returns:])

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
             max_retries: int = 0, actor: _Actor | None = None) -> None:
        running = self._running[scope.task_id] = [name, 0, actor]
        try:
            self._attempts(running, refs, name, body, args, kwargs, scope, env, retry_exceptions,
                           max_retries, actor)
        finally:
            del self._running[scope.task_id]

    def _attempts(self, running: list, refs: list[ObjectRef], name: str, body: Any, args: tuple,
                  kwargs: dict, scope: context.TaskScope, env: dict | None, retry_exceptions: Any,
                  max_retries: int, actor: _Actor | None) -> None:
        try:
            args, kwargs = self._resolve(args, kwargs)
        except Exception as dep_err:  # an upstream task failed: this one fails the same way
            for r in refs:
                self._set(r, error=execution.task_error(dep_err, name))
            return
        attempts = 0
        actor_repr = actor.meta.class_name if actor else None
        while True:
            try:
                with context.scope(scope), execution.env_vars({**self._job_env, **(env or {})}):
                    value = body(*args, **kwargs)
                    if inspect.iscoroutine(value):
                        value = execution.run_coroutine(self._actor_loop(actor), value)
                values = execution.split_returns(value, len(refs), name)
            except execution.ActorExit:
                self._mark_dead(actor, _ended(actor, execution.EXITED))
                for r in refs:
                    self._set(r, error=actor.dead)
                return
            except Exception as exc:
                if execution.should_retry(exc, retry_exceptions) and (max_retries < 0 or attempts < max_retries):
                    attempts += 1
                    running[1] = attempts
                    continue
                err = execution.task_error(exc, name, actor_repr)
                for r in refs:
                    self._set(r, error=err)
                return
            for r, v in zip(refs, values):
                self._set(r, v)
            return

    def submit_task(self, function: Any, args: tuple, kwargs: dict, options: Any) -> list[ObjectRef]:
        name = options.name or function._name
        demand = options.demand()
        self._check_feasible(demand, "Task", name, TaskUnschedulableError)
        refs = self._new_refs(options.num_returns)
        with self._lock:
            gpus = tuple(self._free_gpus[:int(options.num_gpus)]) if options.num_gpus else ()
            resources.subtract(self._available, demand)
        env = (options.runtime_env or {}).get("env_vars")
        scope = context.TaskScope(task_id=refs[0]._id if refs else _ids.new_id(), resources=demand,
                                  gpu_ids=gpus, job_id=self._job_id, name=name,
                                  function=function._function, env_vars=self._env(env))
        try:
            self._run(refs, name, function._function, args, kwargs, scope, env,
                      options.retry_exceptions, options.max_retries)
        finally:
            with self._lock:
                resources.add(self._available, demand)
        return refs

    # -- actors --------------------------------------------------------------
    def _actor_loop(self, actor: _Actor | None) -> asyncio.AbstractEventLoop:
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
        cls_name = actor_class._meta.class_name
        self._check_feasible(options.placement_demand(), "Actor", cls_name, ActorUnschedulableError)
        with self._lock:
            if options.name:
                existing = self._names.get((ns, options.name))
                if existing is not None:
                    if options.get_if_exists:
                        return existing, self._actors[existing].meta
                    raise ActorAlreadyExistsError(
                        f"An actor named {options.name!r} already exists in namespace "
                        f"{ns!r}. Use get_if_exists=True to reuse it, or another name.")
            demand = options.demand()
            if not resources.fits(demand, self._available):
                raise ActorUnschedulableError(
                    f"Actor {cls_name} needs {resources.describe(demand)} but live actors hold all "
                    f"but {resources.describe(self._available)}; in local mode it would wait "
                    "forever. Kill an actor first, or give init() more resources.")
            resources.subtract(self._available, demand)
            actor = _Actor(_ids.new_id(), actor_class._cls, actor_class._meta, options, ns, args, kwargs)
            creator = context.current()
            if creator is not None and options.lifetime != "detached":
                actor.owner = creator.actor_id  # None when a task (run by this process) creates it
            actor.gpu_ids = tuple(self._free_gpus[:int(options.num_gpus)])
            del self._free_gpus[:len(actor.gpu_ids)]
            self._actors[actor.id] = actor
            if options.name:
                self._names[(ns, options.name)] = actor.id
        self._start_actor(actor)
        return actor.id, actor.meta

    def _scope(self, actor: _Actor, method: str | None = None) -> context.TaskScope:
        """The scope of one call of `method` (None: the actor itself, outside any call)."""
        return context.TaskScope(task_id=_ids.new_id(), actor_id=actor.id, actor_name=actor.options.name,
                                 resources=actor.options.demand(), gpu_ids=actor.gpu_ids,
                                 was_restarted=actor.restarts > 0, job_id=self._job_id,
                                 name=f"{actor.meta.class_name}.{method}" if method else None,
                                 function=getattr(actor.cls, method, None) if method else None,
                                 env_vars=self._env((actor.options.runtime_env or {}).get("env_vars")))

    def _env(self, env: dict | None) -> dict | None:
        """The env_vars a task runs with: the job's, then its own."""
        return {**self._job_env, **env} if env else (self._job_env or None)

    def _start_actor(self, actor: _Actor) -> None:
        ref = self._new_refs(1)[0]
        holder: dict = {}

        def construct(*a: Any, **kw: Any) -> None:
            holder["instance"] = actor.cls(*a, **kw)

        self._run([ref], f"{actor.meta.class_name}.__init__", construct, actor.args, actor.kwargs,
                  self._scope(actor, "__init__"), (actor.options.runtime_env or {}).get("env_vars"), actor=actor)
        with self._lock:
            error = self._store[ref._id].error
        if error is None:
            actor.instance = holder["instance"]
            return
        cause = error.cause if isinstance(error, RayTaskError) else error
        self._mark_dead(actor, ActorDiedError(
            f"The actor {actor.meta.class_name} died because its __init__ raised:\n{error}",
            actor.id.hex(), cause))

    def _mark_dead(self, actor: _Actor, error: BaseException) -> None:
        """Ends an actor (for good, or before a restart); the non-detached actors it
        created end with it (fate sharing: their owner is gone)."""
        with self._lock:
            if actor.dead is not None:
                return
            actor.dead = error
            actor.instance = None
            resources.add(self._available, actor.options.demand())
            self._free_gpus.extend(actor.gpu_ids)
            if actor.options.name and self._names.get((actor.namespace, actor.options.name)) == actor.id:
                del self._names[(actor.namespace, actor.options.name)]
            owned = [a for a in self._actors.values() if a.owner == actor.id and a.dead is None]
        actor.stop_loop()
        why = execution.owner_exited(f"the actor {actor.meta.class_name}")
        for child in owned:
            self._mark_dead(child, _ended(child, why))

    def submit_actor_task(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                          options: Any) -> list[ObjectRef]:
        actor = self._actors.get(actor_id)
        refs = self._new_refs(options.num_returns)
        if actor is None or actor.dead is not None:
            err = actor.dead if actor is not None else ActorDiedError(
                f"Actor {actor_id.hex()} is not known to this runtime (created before shutdown()?).",
                actor_id.hex())
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
                    self._set(r, error=actor.dead)
                return refs
            self._run(refs, f"{actor.meta.class_name}.{method}",
                      execution.actor_method(instance, method), args,
                      kwargs, self._scope(actor, method), (actor.options.runtime_env or {}).get("env_vars"),
                      options.retry_exceptions,
                      options.max_task_retries if options.max_task_retries is not None
                      else actor.options.max_task_retries, actor=actor)
        return refs

    def get_named_actor(self, name: str, namespace: str | None) -> tuple[bytes, ActorMeta]:
        ns = namespace or self._namespace
        with self._lock:
            actor_id = self._names.get((ns, name))
            if actor_id is None:
                raise ValueError(f"Failed to look up actor {name!r} in namespace {ns!r}: no live actor "
                                 "has that name there. Check the name and namespace.")
            return actor_id, self._actors[actor_id].meta

    def handle_created(self, actor_id: bytes) -> None:
        actor = self._actors.get(actor_id)
        if actor is not None:
            actor.handles += 1

    def handle_deleted(self, actor_id: bytes) -> None:
        actor = self._actors.get(actor_id)
        if actor is None:
            return
        actor.handles -= 1
        if actor.handles <= 0 and actor.collect and not actor.escaped and actor.dead is None:
            self._mark_dead(actor, _ended(actor, execution.UNREFERENCED))

    def handle_escaped(self, actor_id: bytes) -> None:
        actor = self._actors.get(actor_id)
        if actor is not None:
            actor.escaped = True

    def actor_meta(self, actor_id: bytes) -> ActorMeta:
        return self._actors[actor_id].meta

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        actor = self._actors.get(actor_id)
        if actor is None or actor.dead is not None:
            return
        max_restarts = actor.options.max_restarts
        self._mark_dead(actor, _ended(actor, execution.KILLED))
        if not no_restart and (max_restarts < 0 or actor.restarts < max_restarts):
            with self._lock:
                resources.subtract(self._available, actor.options.demand())
                actor.dead = None
                actor.restarts += 1
                if actor.options.name:
                    self._names[(actor.namespace, actor.options.name)] = actor.id
            self._start_actor(actor)

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        # Every local task has finished by the time .remote() returns: cancelling a
        # finished task does nothing, as in Ray.
        return None

    # -- cluster state -------------------------------------------------------
    def nodes(self) -> list[dict]:
        return [{"NodeID": self._node_id.hex(), "Alive": True, "NodeManagerAddress": "127.0.0.1",
                 "NodeManagerHostname": os.uname().nodename, "Resources": dict(self._total),
                 "alive": True}]

    def cluster_resources(self) -> dict:
        return dict(self._total)

    def available_resources(self) -> dict:
        with self._lock:
            return {k: v for k, v in self._available.items() if v > 0}

    def context(self) -> ContextInfo:
        return context.info(self._job_id, self._node_id, self._node_id, self._namespace)

    def state(self) -> StateSnapshot:
        """Records of what this runtime holds: its one node, its job, the actors, the tasks
        running now (each on the caller's thread: "local"), the objects."""
        with self._lock:
            node = NodeRecord(self._node_id.hex(), "local", os.uname().nodename, True, True,
                              dict(self._total), dict(self._available))
            actors = tuple(ActorRecord(
                a.id.hex(), a.meta.class_name, a.options.name, a.namespace,
                "ALIVE" if a.dead is None else "DEAD", "local", a.restarts,
                a.options.lifetime == "detached", _first_line(a.dead)) for a in self._actors.values())
            tasks = tuple(TaskRecord(i.hex(), name, "RUNNING", "local", "local", attempt,
                                     actor.id.hex() if actor else None)
                          for i, (name, attempt, actor) in list(self._running.items()))
            objects = tuple(ObjectRecord(i.hex(), "local", "ERROR" if e.error is not None else
                                         "INLINE", None if e.data is None else len(e.data),
                                         self._counts.get(i, 0), 0) for i, e in self._store.items())
            objects += tuple(ObjectRecord(i.hex(), "local", "PENDING", None, n, 0)  # running tasks' results
                             for i, n in self._counts.items() if i not in self._store)
        job = JobRecord(self._job_id.hex(), self._namespace, os.getpid(), not self._closed)
        return StateSnapshot("local", (node,), (job,), (), (), actors, tasks, objects)


def _first_line(error: BaseException | None) -> str | None:
    return None if error is None else str(error).partition("\n")[0]


def _ended(actor: _Actor, why: str) -> ActorDiedError:
    return ActorDiedError(f"The actor {actor.meta.class_name} is dead: {why}.", actor.id.hex())
