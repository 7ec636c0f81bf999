"""@remote on functions: RemoteFunction, .options() and .remote() (Ray's public path).

    f.remote(*args) ──► runtime.submit_task(f, args, kwargs, TaskOptions) ──► ObjectRef(s)

Options are validated once, when the decorator or .options() runs; the
frozen TaskOptions then travels with every call.
"""
from __future__ import annotations

from typing import Any

from . import _options
from ._runtime import context, require
from ._runtime.object_ref import ObjectRef


def unpack_refs(refs: list[ObjectRef], num_returns: int) -> Any:
    """What .remote() returns: one ref, a list of them, or None for num_returns=0 (a generator
    task's is the runtime's submit_stream: an ObjectRefGenerator, or one ref for "dynamic")."""
    if num_returns == 1:
        return refs[0]
    return refs if num_returns else None


def generator_options(function: Any, options: dict, where: str) -> dict:
    """Ray's rule: a generator function streams (num_returns="streaming") unless num_returns
    says otherwise; the forms raylite cannot run are refused here, not at get() time."""
    import inspect

    if inspect.isasyncgenfunction(function):
        raise TypeError(f"{where} is an async generator function: those can be remote only as "
                        "methods of an actor (an async actor streams them). Make it a plain "
                        "generator function, or an actor method.")
    if inspect.isgeneratorfunction(function):
        if "num_returns" not in options:
            return {**options, "num_returns": "streaming"}
    elif options.get("num_returns") in _options.STREAMING and callable(function):
        raise TypeError(f"num_returns={options['num_returns']!r} needs a generator function "
                        f"(one that yields), and {where} is not one.")
    return options


def _in_parents_group(options: Any) -> Any:
    """Ray's placement_group_capture_child_tasks: created inside a task or actor whose
    placement group captures its children, a task without a strategy runs in that group."""
    s = context.current()
    return options if s is None or s.placement is None else _options.captured(options, s.placement)


class RemoteFunction:
    """A function turned into a task by @raylite.remote."""

    def __init__(self, function: Any, options: dict[str, Any]):
        self._function = function
        self._name = getattr(function, "__name__", None) or repr(function)
        options = generator_options(function, options, self._name)
        self._options = _options.TaskOptions(**_options.validate("task", options))
        self._blob: tuple | None = None  # (runtime id, function id, pickled function): a cluster cache
        self.__doc__ = getattr(function, "__doc__", None)
        self.__name__ = getattr(function, "__name__", self._name)
        self.__module__ = getattr(function, "__module__", None)
        self.__wrapped__ = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Remote functions cannot be called directly. Instead of running "
                        f"'{self.__name__}()', try '{self.__name__}.remote()'.")

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        opts = self._options
        if opts.scheduling_strategy is None:
            opts = _in_parents_group(opts)
        if type(opts.num_returns) is str:  # a generator: "streaming" or "dynamic"
            return require().submit_stream(self, args, kwargs, opts)
        return unpack_refs(require().submit_task(self, args, kwargs, opts), opts.num_returns)

    def options(self, **options: Any) -> "_BoundRemoteFunction":
        """A copy of this function with some options overridden for the next calls."""
        if "num_returns" in options:
            generator_options(self._function, options, self._name)
        return _BoundRemoteFunction(self, _options.merge(self._options, "task", options))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_blob"] = None
        return state

    def __repr__(self) -> str:
        return f"<raylite remote function {self._name}>"


class _BoundRemoteFunction:
    __slots__ = ("_fn", "_options")

    def __init__(self, fn: RemoteFunction, options: _options.TaskOptions):
        self._fn = fn
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        opts = self._options
        if opts.scheduling_strategy is None:
            opts = _in_parents_group(opts)
        if type(opts.num_returns) is str:
            return require().submit_stream(self._fn, args, kwargs, opts)
        refs = require().submit_task(self._fn, args, kwargs, opts)
        return unpack_refs(refs, opts.num_returns)

    def options(self, **options: Any) -> "_BoundRemoteFunction":
        if "num_returns" in options:
            generator_options(self._fn._function, options, self._fn._name)
        return _BoundRemoteFunction(self._fn, _options.merge(self._options, "task", options))
