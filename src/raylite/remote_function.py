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
    """What .remote() returns: one ref, a list of them, or None for num_returns=0."""
    if num_returns == 1:
        return refs[0]
    return refs if num_returns else None


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
        return unpack_refs(require().submit_task(self, args, kwargs, opts), opts.num_returns)

    def options(self, **options: Any) -> "_BoundRemoteFunction":
        """A copy of this function with some options overridden for the next calls."""
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
        refs = require().submit_task(self._fn, args, kwargs, opts)
        return unpack_refs(refs, opts.num_returns)

    def options(self, **options: Any) -> "_BoundRemoteFunction":
        return _BoundRemoteFunction(self._fn, _options.merge(self._options, "task", options))
