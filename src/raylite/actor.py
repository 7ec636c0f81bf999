"""@remote on classes: ActorClass, ActorHandle, ActorMethod (Ray's public path).

    Cls.remote(*args) ──► runtime.create_actor ──► ActorHandle(actor id, meta)
    handle.m.remote(*args) ──► runtime.submit_actor_task ──► ObjectRef(s)

A handle is plain data (id + method table): it pickles into tasks and other
actors and binds to whatever runtime the receiving process has.
"""
from __future__ import annotations

from typing import Any

from . import _options
from ._runtime import require
from ._runtime.base import ActorMeta
from ._runtime.execution import BUILTIN_METHODS, TERMINATE, ActorExit, is_async_class
from .remote_function import _in_parents_group, unpack_refs

_METHOD_ATTR = "__raylite_method_options__"


def method(**options: Any) -> Any:
    """Decorator for actor methods: @raylite.method(num_returns=2)."""
    clean = _options.validate("method", options)

    def decorate(fn: Any) -> Any:
        setattr(fn, _METHOD_ATTR, clean)
        return fn
    return decorate


def exit_actor() -> None:
    """Ends the calling actor on purpose: its caller sees the actor die, queued calls fail."""
    from ._runtime import current

    rt = current()
    if rt is None or rt.context().actor_id is None:
        raise TypeError("exit_actor() can only be called inside an actor.")
    exit_as_runtime_does = getattr(rt, "exit_actor", None)  # RayRuntime: Ray's own exit_actor()
    if exit_as_runtime_does is not None:
        exit_as_runtime_does()
    raise ActorExit()


def _method_table(cls: type) -> dict[str, _options.MethodOptions]:
    import inspect

    # Every actor has __ray_terminate__ (queued after pending calls, ends the actor),
    # __ray_ready__ (True once constructed) and __ray_call__ (runs fn(instance, ...) in it).
    table = {name: _options.MethodOptions() for name in BUILTIN_METHODS}
    for name, fn in inspect.getmembers(cls, predicate=callable):
        if name.startswith("__") and name != "__call__":
            continue
        table[name] = _options.MethodOptions(**getattr(fn, _METHOD_ATTR, {}))
    return table


class ActorClass:
    """A class turned into an actor factory by @raylite.remote."""

    def __init__(self, cls: type, options: dict[str, Any]):
        self._cls = cls
        self._options = _options.ActorOptions(**_options.validate("actor", options))
        groups = tuple(self._options.concurrency_groups or ())
        self._meta = ActorMeta(cls.__name__, _method_table(cls), is_async_class(cls), groups)
        for name, opts in self._meta.methods.items():
            _options.check_concurrency_group(opts.concurrency_group, groups,
                                             f"Method {cls.__name__}.{name}")
        self._blob: tuple | None = None  # cluster cache of the pickled class
        self.__doc__ = cls.__doc__
        self.__name__ = cls.__name__
        self.__module__ = cls.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', "
                        f"use '{self.__name__}.remote()'.")

    def remote(self, *args: Any, **kwargs: Any) -> "ActorHandle":
        return _create(self, args, kwargs, self._options)

    def options(self, **options: Any) -> "_BoundActorClass":
        return _BoundActorClass(self, _options.merge(self._options, "actor", options))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_blob"] = None
        return state

    def __repr__(self) -> str:
        return f"<raylite actor class {self.__name__}>"


class _BoundActorClass:
    __slots__ = ("_cls", "_options")

    def __init__(self, cls: ActorClass, options: _options.ActorOptions):
        self._cls = cls
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> "ActorHandle":
        return _create(self._cls, args, kwargs, self._options)


def _create(cls: ActorClass, args: tuple, kwargs: dict, options: _options.ActorOptions) -> "ActorHandle":
    if options.scheduling_strategy is None:
        options = _in_parents_group(options)
    actor_id, meta = require().create_actor(cls, args, kwargs, options)
    return ActorHandle(actor_id, meta)


class _Liveness:
    """Counts one handle with the runtime while alive. The handle and every method taken
    from it hold it, so `A.remote().f.remote()` keeps the actor until the call is submitted,
    and cached methods make no reference cycle with their handle."""
    __slots__ = ("rt", "actor_id")

    def __init__(self, rt: Any, actor_id: bytes):
        self.rt = rt
        self.actor_id = actor_id
        rt.handle_created(actor_id)

    def __del__(self) -> None:
        try:
            self.rt.handle_deleted(self.actor_id)
        except Exception:  # interpreter shutdown
            pass


class ActorHandle:
    """A reference to a live actor; attribute access gives its methods."""

    def __init__(self, actor_id: bytes, meta: ActorMeta):
        from ._runtime import current

        self._actor_id = actor_id
        self._meta = meta
        rt = self._rt = current()
        self._live = _Liveness(rt, actor_id) if rt is not None else None

    def __getattr__(self, name: str) -> "ActorMethod":
        meta = self.__dict__.get("_meta")
        options = meta.methods.get(name) if meta is not None else None
        if options is None:
            if meta is None or name.startswith("__"):
                raise AttributeError(name)
            raise AttributeError(f"'{meta.class_name}' actor has no method {name!r}.")
        m = ActorMethod(self._actor_id, self._meta.class_name, name, options, self._live,
                        meta.groups)
        self.__dict__[name] = m
        return m

    def __reduce__(self):
        rt = self.__dict__.get("_rt")
        if rt is not None:  # a copy leaves this process: it may keep the actor in use
            rt.handle_escaped(self._actor_id)
        return (ActorHandle, (self._actor_id, self._meta))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __repr__(self) -> str:
        return f"Actor({self._meta.class_name}, {self._actor_id.hex()})"


class ActorMethod:
    """handle.method: call it with .remote(); set per-call options with .options()."""
    __slots__ = ("_actor_id", "_class_name", "_name", "_options", "_live", "_groups")

    def __init__(self, actor_id: bytes, class_name: str, name: str, options: _options.MethodOptions,
                 live: _Liveness | None = None, groups: tuple | None = None):
        self._actor_id = actor_id
        self._class_name = class_name
        self._name = name
        self._options = options
        self._live = live  # the handle's liveness: the actor lives while its methods do
        self._groups = groups  # the actor's concurrency groups (None: not known here)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        refs = require().submit_actor_task(self._actor_id, self._name, args, kwargs, self._options)
        return unpack_refs(refs, self._options.num_returns)

    def options(self, **options: Any) -> "ActorMethod":
        merged = _options.merge(self._options, "method", options)
        if "concurrency_group" in options and self._groups is not None:
            _options.check_concurrency_group(merged.concurrency_group, self._groups,
                                             f"{self._class_name}.{self._name}.options()")
        return ActorMethod(self._actor_id, self._class_name, self._name, merged, self._live,
                           self._groups)

    def __reduce__(self):
        if self._live is not None:  # like a pickled handle: it may keep the actor in use
            self._live.rt.handle_escaped(self._actor_id)
        return (ActorMethod, (self._actor_id, self._class_name, self._name, self._options, None,
                              self._groups))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Actor methods cannot be called directly. Instead of running "
                        f"'actor.{self._name}()', try 'actor.{self._name}.remote()'.")
