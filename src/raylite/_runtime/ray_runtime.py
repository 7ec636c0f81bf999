"""RayRuntime: the same raylite program, run on Ray itself (`RAYLITE_RUNTIME=ray`).

For the user who outgrows raylite (autoscaling, hundreds of nodes): nothing in the
program changes; `pip install raylite[ray]` and `RAYLITE_RUNTIME=ray` put it on Ray.
`ray` is imported only when this runtime is created, never by `import raylite`.

    driver                                           Ray worker (task or actor)
    raylite API ─► RayRuntime ─► ray.remote(wrapper)   wrapper: attach() installs a RayRuntime
                       │          ray.get/wait/put      in the worker, then runs the user's code,
                       │                                whose raylite calls land on Ray too
                       └─► Ray's exceptions translated to raylite's where they surface
                           (get, wait, futures, submission, actor calls)

Which Ray: an explicit `address` ("auto", a GCS "host:port") joins that cluster; no
address lets `ray.init()` decide (RAY_ADDRESS, else a Ray started locally, which
`shutdown()` stops). When the program already called `ray.init()` itself, that Ray
is used and stays up after `shutdown()`; the non-detached actors this runtime
created are killed then, as the end of a Ray job would.

Mapping raylite's objects to Ray's:
- An `ObjectRef` has the Ray ref's binary id as its id and the Ray ref itself as its
  `_owner`: the raylite ref keeps the Ray ref (and so the value) alive, Ray counts
  it, and a raylite ref pickled inside a value carries its Ray ref (Ray's pickler
  registers the borrow). Top-level raylite refs in a call's arguments become Ray
  refs, so Ray resolves them as it does its own.
- An actor's id is the Ray actor id's binary. Each process keeps one Ray handle per
  actor while raylite handles to it live there (counted by handle_created/deleted);
  when the last goes, the Ray handle is dropped and Ray's own rule ends the actor.
  A raylite handle pickled inside a value carries its Ray handle (a serializer
  registered with Ray in every process this runtime runs in).
- Errors: Python's `except` does not consult __subclasscheck__, so every Ray error is
  rebuilt as raylite's class of the same name (message kept, the Ray error as
  __cause__); a task's error becomes raylite's RayTaskError, also an instance of the
  user's exception type, with the user's exception as __cause__.
"""
from __future__ import annotations

import concurrent.futures
import functools
import inspect
import threading
import warnings
import weakref
from typing import Any, Sequence

from .. import _options
from .. import exceptions as rl_exc
from . import context
from .base import ActorMeta, InitInfo, Runtime
from .execution import TERMINATE
from .object_ref import ObjectRef
from .ray_errors import translate, translated as _translated
from .ray_groups import RayGroups, group_scope, ray_group_strategy
from .ray_state import RayState, joined_job_env, joined_namespace
from .ray_streams import RayStreams

_TASK_DEFAULTS = _options.TaskOptions()._asdict()
_ACTOR_DEFAULTS = _options.ActorOptions()._asdict()
_METHOD_DEFAULTS = _options.MethodOptions()._asdict()
# raylite keeps these to itself; Ray has no equivalent option (or refuses it in .options()).
_NOT_FOR_RAY = {"max_calls", "concurrency_groups"}  # the latter goes to ray.remote()
_RAY_NAMES = {"generator_backpressure": "_generator_backpressure_num_objects"}  # Ray's keyword


def _ray_strategy(wire: tuple) -> Any:
    """Ray's own strategy object for a raylite.util.scheduling_strategies one (its wire form)."""
    if wire[0] == "NODE":
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(wire[1], wire[2])
    raise ValueError(f"scheduling_strategy {wire!r} has no Ray equivalent here.")


def _ray_options(opts: Any, defaults: dict) -> dict:
    """The options that differ from raylite's defaults, as Ray's keyword arguments."""
    return {_RAY_NAMES.get(k, k): v for k, v in opts._asdict().items()
            if v != defaults[k] and k not in _NOT_FOR_RAY}


# -- what runs inside Ray's workers ------------------------------------------------
def attach() -> "RayRuntime":
    """The RayRuntime of this process, installed first if none is (in a Ray worker)."""
    from . import current, install, lock

    rt = current()
    if isinstance(rt, RayRuntime):
        return rt
    with lock:
        rt = current()
        if rt is None:
            rt = RayRuntime(None)
            install(rt)
        elif not isinstance(rt, RayRuntime):
            raise RuntimeError(f"raylite's {rt.name!r} runtime is installed in this Ray worker; "
                               "it cannot run code on Ray. Leave RAYLITE_RUNTIME=ray for the program.")
    return rt


def _task_body(fn: Any, namespace: str | None) -> Any:
    """The function Ray runs for a raylite task: attach (in raylite's namespace of the job
    that submitted it, see RayRuntime._namespace), then the user's function, in the scope of
    its placement group if it runs in one (a generator function for a generator: Ray streams
    only those)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            attach()._namespace = namespace
            s = group_scope()
            if s is None:
                return (yield from fn(*args, **kwargs))
            with context.scope(s):
                return (yield from fn(*args, **kwargs))
        return stream

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        attach()._namespace = namespace
        s = group_scope()
        if s is None:
            return fn(*args, **kwargs)
        with context.scope(s):
            return fn(*args, **kwargs)
    return run


def _actor_body(cls: type, meta: ActorMeta, namespace: str | None) -> type:
    """The class Ray hosts for a raylite actor: the user's class, attached on __init__ (its
    process runs in raylite's namespace of the job that created it)."""
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        import ray

        rt = attach()
        rt._namespace = namespace
        c = ray.get_runtime_context()
        rt._metas[bytes.fromhex(c.get_actor_id())] = meta
        with warnings.catch_warnings():  # Ray's property reads its own deprecated actor_id
            warnings.simplefilter("ignore")
            rt._restarted = bool(c.was_current_actor_reconstructed)
        context.process_actor = group_scope()  # the actor's process: its placement group
        cls.__init__(self, *args, **kwargs)
    if inspect.isfunction(cls.__init__):  # Ray checks calls against the user's signature
        __init__ = functools.wraps(cls.__init__)(__init__)
    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__,
                                        "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})


def _dynamic_value(value: Any) -> Any:
    """Ray's DynamicObjectRefGenerator (a dependency: Ray resolved it) as raylite's."""
    from .generator import DynamicObjectRefGenerator

    rt = attach()
    return DynamicObjectRefGenerator([ObjectRef(r.binary(), r, rt) for r in value])


def _dump_handle(h: Any) -> tuple:
    """Ray's serializer for a raylite ActorHandle or ActorMethod: it carries its Ray handle."""
    rt = attach()
    return (type(h).__name__, h._actor_id, getattr(h, "_meta", None) or rt.actor_meta(h._actor_id),
            rt._ray_handle(h._actor_id), getattr(h, "_name", None), getattr(h, "_options", None))


def _load_handle(state: tuple) -> Any:
    from ..actor import ActorHandle, ActorMethod

    kind, actor_id, meta, ray_handle, name, options = state
    rt = attach()
    rt._adopt(actor_id, ray_handle, meta)
    handle = ActorHandle(actor_id, meta)
    if kind == "ActorMethod":
        return ActorMethod(actor_id, meta.class_name, name, options, handle._live)
    return handle


def _meta_from(h: Any) -> ActorMeta:
    """A raylite method table for a Ray actor handle this process did not create."""
    methods = {n: _options.MethodOptions(num_returns=v if isinstance(v, int) else 1)
               for n, v in h._ray_method_num_returns.items()
               if not n.startswith("__") or n == "__call__"}
    methods[TERMINATE] = _options.MethodOptions()
    return ActorMeta(h._ray_actor_creation_function_descriptor.class_name, methods,
                     bool(getattr(h, "_ray_is_asyncio", False)))


def _ray_ref(r: ObjectRef) -> Any:
    import ray

    owner = r._owner
    if not isinstance(owner, ray.ObjectRef):
        raise ValueError(f"{r!r} was not made by the ray runtime (no Ray ref behind it): "
                         "use refs returned by .remote() or put() in this program.")
    return owner


def _to_ray(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Top-level raylite refs become Ray refs, so Ray resolves them to values."""
    args = tuple(_ray_ref(a) if type(a) is ObjectRef else a for a in args)
    if kwargs:
        kwargs = {k: _ray_ref(v) if type(v) is ObjectRef else v for k, v in kwargs.items()}
    return args, kwargs


class RayRuntime(RayStreams, RayGroups, RayState, Runtime):
    """raylite's Runtime interface on Ray. request None: inside a Ray worker."""

    name = "ray"

    def __init__(self, request: Any):
        import ray
        from ..actor import ActorHandle, ActorMethod

        self._ray = ray
        self._owns_ray = False
        self._in_worker = request is None
        if request is not None and not ray.is_initialized():
            self._owns_ray = True
            self._start(request)
        # Joining a Ray the program started: its job's namespace is fixed, so a namespace
        # given to init() is raylite's: what get_runtime_context() reports and the default
        # of named actors' creation and lookup, here and in every task and actor this job
        # starts (their wrappers carry it: _task_body, _actor_body). None: Ray's job's own.
        self._namespace = None if self._owns_ray or request is None else request.namespace
        if request is not None and not self._owns_ray:
            self._joined_env = joined_job_env(request.runtime_env)
            self._namespace = joined_namespace(request.namespace, ray)
        self._lock = threading.Lock()
        self._restarted = False                 # in an actor's process: a restart runs __init__ again
        self._handles: dict[bytes, list] = {}   # actor id -> [Ray handle, raylite handles here]
        self._metas: dict[bytes, ActorMeta] = {}
        self._created: set[bytes] = set()       # non-detached actors this driver created
        self._functions: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
        self._classes: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
        self._opts: dict[int, tuple] = {}       # id(frozen options) -> (options, Ray's kwargs)
        for cls in (ActorHandle, ActorMethod):
            ray.util.register_serializer(cls, serializer=_dump_handle, deserializer=_load_handle)
        self._mirrored: set = set()
        self.serializers_changed()
        self._stream_init()
        self._groups_made: list = []  # Ray's placement groups this driver made, not detached
        self._dynamic_task: Any = None  # Ray's remote _dynamic_value

    def serializers_changed(self) -> None:
        """raylite.util.register_serializer() on Ray: Ray's pickler uses raylite's reducers
        (called at start and by every (de)registration in this process)."""
        from ray import cloudpickle
        from .. import _serialization

        dispatch, reducers = cloudpickle.CloudPickler.dispatch, dict(_serialization._reducers)
        for cls in self._mirrored - set(reducers):
            dispatch.pop(cls, None)
        dispatch.update(reducers)
        self._mirrored = set(reducers)

    def _start(self, request: Any) -> None:
        kwargs: dict[str, Any] = dict(namespace=request.namespace, log_to_driver=request.log_to_driver,
                                      runtime_env=request.runtime_env)
        if request.mode == "connect":
            kwargs["address"] = request.address
        else:
            kwargs.update(num_cpus=request.num_cpus, num_gpus=request.num_gpus,
                          resources=dict(request.resources) or None, include_dashboard=False,
                          object_store_memory=request.object_store_memory,
                          _node_ip_address="127.0.0.1")  # loopback unless the user's Ray says otherwise
        _translated(self._ray.init)(**{k: v for k, v in kwargs.items() if v is not None})

    # -- lifecycle -----------------------------------------------------------
    def info(self) -> InitInfo:
        c = self._ray.get_runtime_context()
        node = getattr(self._ray._private.worker, "_global_node", None)
        return InitInfo(address=c.gcs_address, node_id=c.get_node_id(),
                        namespace=self._namespace or c.namespace,
                        session_dir=node.get_session_dir_path() if node is not None else None,
                        mode="ray")

    def shutdown(self) -> None:
        from ..actor import ActorHandle, ActorMethod

        ray = self._ray
        with self._lock:
            handles = [self._handles[i][0] for i in self._created if i in self._handles]
            self._handles.clear()
            self._created.clear()
        if self._in_worker:
            return
        for cls in (ActorHandle, ActorMethod):
            ray.util.deregister_serializer(cls)
        for cls in self._mirrored:
            ray.cloudpickle.CloudPickler.dispatch.pop(cls, None)
        if self._owns_ray:
            ray.shutdown()
            return
        self._remove_groups_made()
        for h in handles:  # the Ray stays (the program started it): end this job's actors
            try:
                ray.kill(h)
            except Exception:  # already dead
                pass

    # -- tasks and actors ----------------------------------------------------
    def _options_for(self, opts: Any, defaults: dict) -> dict:
        hit = self._opts.get(id(opts))
        if hit is not None and hit[0] is opts:
            return hit[1]
        if len(self._opts) > 1024:
            self._opts.clear()
        out = _ray_options(opts, defaults)
        strategy = out.get("scheduling_strategy")
        if _options.placement(strategy) is not None:
            opts.demand()  # ValueError when it fits no bundle of the group (it could never run)
            out["scheduling_strategy"] = ray_group_strategy(_options.placement(strategy))
        elif strategy is not None and not isinstance(strategy, str):
            out["scheduling_strategy"] = _ray_strategy(_options.strategy_wire(strategy))
        if defaults is not _METHOD_DEFAULTS:
            env = self._ray_env(opts.runtime_env)
            out.pop("runtime_env", None)
            if env is not None:
                out["runtime_env"] = env
        self._opts[id(opts)] = (opts, out)
        return out

    def _call_task(self, function: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        """Ray's answer to the task's .remote(): a ref, refs, or Ray's ObjectRefGenerator."""
        hit = self._functions.get(function)
        if hit is None or hit[0] != self._namespace:  # (in a worker it is the parent's)
            hit = self._functions[function] = (
                self._namespace, self._ray.remote(_task_body(function._function, self._namespace)))
        rf = hit[1]
        ropts = self._options_for(options, _TASK_DEFAULTS)
        args, kwargs = _to_ray(args, kwargs)
        try:
            return (rf.options(**ropts) if ropts else rf).remote(*args, **kwargs)
        except Exception as e:
            raise translate(e)

    def submit_task(self, function: Any, args: tuple, kwargs: dict, options: Any) -> list[ObjectRef]:
        return self._refs(self._call_task(function, args, kwargs, options))

    def _dynamic_of(self, ref: Any) -> ObjectRef:
        """num_returns="dynamic": Ray's one ref, given to a small Ray task that makes
        raylite's DynamicObjectRefGenerator of the refs in it (ray_streams.py)."""
        if self._dynamic_task is None:
            self._dynamic_task = self._ray.remote(num_cpus=0)(_dynamic_value)
        try:
            out = self._dynamic_task.remote(ref)
        except Exception as e:
            raise translate(e)
        return ObjectRef(out.binary(), out, self)

    def _refs(self, out: Any) -> list[ObjectRef]:
        if out is None:
            return []
        if isinstance(out, self._ray.ObjectRef):
            return [ObjectRef(out.binary(), out, self)]
        return [ObjectRef(r.binary(), r, self) for r in out]

    def create_actor(self, actor_class: Any, args: tuple, kwargs: dict, options: Any) -> tuple[bytes, ActorMeta]:
        hit = self._classes.get(actor_class)
        if hit is None or hit[0] != self._namespace:
            body = _actor_body(actor_class._cls, actor_class._meta, self._namespace)
            groups = options.concurrency_groups  # Ray takes them in @remote only, as raylite
            decorate = self._ray.remote(concurrency_groups=groups) if groups else self._ray.remote
            hit = self._classes[actor_class] = (self._namespace, decorate(body))
        rc = hit[1]
        ropts = self._options_for(options, _ACTOR_DEFAULTS)
        if self._namespace is not None and options.name and not options.namespace:
            ropts = {**ropts, "namespace": self._namespace}
        args, kwargs = _to_ray(args, kwargs)
        try:
            h = (rc.options(**ropts) if ropts else rc).remote(*args, **kwargs)
        except Exception as e:
            raise translate(e)
        actor_id = h._actor_id.binary()
        meta = self._adopt(actor_id, h, actor_class._meta)
        if options.lifetime != "detached" and not self._in_worker:
            with self._lock:
                self._created.add(actor_id)
        return actor_id, meta

    def _adopt(self, actor_id: bytes, h: Any, meta: ActorMeta | None) -> ActorMeta:
        """Keeps Ray handle `h` for actor_id (until this process's raylite handles are gone)."""
        with self._lock:
            if actor_id not in self._handles:
                self._handles[actor_id] = [h, 0]
            if meta is None:
                meta = self._metas.get(actor_id) or _meta_from(h)
            self._metas.setdefault(actor_id, meta)
        return meta

    def _ray_handle(self, actor_id: bytes) -> Any:
        entry = self._handles.get(actor_id)
        if entry is not None:
            return entry[0]
        c = self._ray.get_runtime_context()
        if c.get_actor_id() == actor_id.hex():  # the calling actor itself
            return c.current_actor
        raise rl_exc.RayActorError(f"This process holds no Ray handle for actor {actor_id.hex()}: "
                                   "pass actor handles to tasks and actors as arguments, or look "
                                   "the actor up by name with get_actor().", actor_id.hex())

    def _call_method(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                     options: Any) -> Any:
        m = getattr(self._ray_handle(actor_id), method)
        ropts = self._options_for(options, _METHOD_DEFAULTS)
        args, kwargs = _to_ray(args, kwargs)
        try:
            return (m.options(**ropts) if ropts else m).remote(*args, **kwargs)
        except Exception as e:
            raise translate(e)

    def submit_actor_task(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                          options: Any) -> list[ObjectRef]:
        return self._refs(self._call_method(actor_id, method, args, kwargs, options))

    def get_named_actor(self, name: str, namespace: str | None) -> tuple[bytes, ActorMeta]:
        h = _translated(self._ray.get_actor)(name, namespace=namespace or self._namespace)
        actor_id = h._actor_id.binary()
        return actor_id, self._adopt(actor_id, h, None)

    def named_actors(self) -> list[tuple[str, str]]:
        listed = _translated(self._ray.util.list_named_actors)(all_namespaces=True)
        return [(a["namespace"], a["name"]) for a in listed]

    def actor_meta(self, actor_id: bytes) -> ActorMeta:
        meta = self._metas.get(actor_id)
        return meta if meta is not None else _meta_from(self._ray_handle(actor_id))

    def kill_actor(self, actor_id: bytes, no_restart: bool) -> None:
        _translated(self._ray.kill)(self._ray_handle(actor_id), no_restart=no_restart)

    def cancel(self, ref: ObjectRef, force: bool, recursive: bool) -> None:
        _translated(self._ray.cancel)(_ray_ref(ref), force=force, recursive=recursive)

    def exit_actor(self) -> None:
        """Ends the calling actor the way Ray does (raylite.actor.exit_actor() on Ray)."""
        import ray.actor

        ray.actor.exit_actor()

    # -- objects -------------------------------------------------------------
    def put(self, value: Any) -> ObjectRef:
        r = _translated(self._ray.put)(value)
        return ObjectRef(r.binary(), r, self)

    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list:
        try:
            return self._ray.get([_ray_ref(r) for r in refs], timeout=timeout)
        except Exception as e:
            err = translate(e)
            if err is e:
                raise
            raise err

    def wait(self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        by_id = {r._id: r for r in refs}
        ready, rest = _translated(self._ray.wait)([_ray_ref(r) for r in refs], num_returns=num_returns,
                                                  timeout=timeout, fetch_local=fetch_local)
        return [by_id[r.binary()] for r in ready], [by_id[r.binary()] for r in rest]

    def future(self, ref: ObjectRef) -> concurrent.futures.Future:
        out: concurrent.futures.Future = concurrent.futures.Future()

        def done(f: concurrent.futures.Future) -> None:
            try:
                out.set_result(f.result())
            except BaseException as e:
                out.set_exception(translate(e))
        _ray_ref(ref).future().add_done_callback(done)
        return out

    def ref_created(self, ref: ObjectRef) -> bool:
        return False  # Ray counts: the raylite ref holds the Ray ref

    def handle_created(self, actor_id: bytes) -> None:
        with self._lock:
            entry = self._handles.get(actor_id)
            if entry is not None:
                entry[1] += 1

    def handle_deleted(self, actor_id: bytes) -> None:
        with self._lock:
            entry = self._handles.get(actor_id)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:  # Ray's rule takes over: no handle left here
                    del self._handles[actor_id]
                    self._created.discard(actor_id)
