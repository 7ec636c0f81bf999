"""What is running right now: task, actor, assigned resources.

Set by whoever executes a task (LocalRuntime, or the worker's executor and
actor host) and read by get_runtime_context() and get_gpu_ids().

The scope lives in a context variable, not a thread-local: each asyncio task
has its own copy, so concurrent calls of an async actor, interleaved on one
event loop thread, each see their own task id and name. A thread starts with
no scope; in a worker that hosts an actor, `process_actor` then names the
actor (methods run on its loop or thread pool see it outside any call).
"""
from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .base import ContextInfo

_scope: contextvars.ContextVar["TaskScope | None"] = contextvars.ContextVar("raylite_scope",
                                                                          default=None)


class TaskScope(NamedTuple):
    task_id: bytes | None = None
    actor_id: bytes | None = None
    actor_name: str | None = None
    resources: dict = {}  # never mutated
    gpu_ids: tuple = ()
    was_restarted: bool = False
    job_id: bytes | None = None
    name: str | None = None        # the task's name: options name, "f" or "Actor.method"
    function: Any = None           # the function or method run: names it module.qualname
    runtime_env: dict | None = None  # its runtime_env as given (_runtime_env.validate.described)
    placement: tuple | None = None  # (group id, bundle index, capture child tasks) in a group
    env: Any = None  # local mode: the runtime_env in effect as given, callables kept (inherited)


# An actor's identity is per process in a worker: methods called from its
# asyncio loop or thread pool see it even outside an explicit scope.
process_actor: "TaskScope | None" = None


def current() -> TaskScope | None:
    return _scope.get() or process_actor


def task_id() -> bytes | None:
    """The id of the task or actor call running on this thread (None: a driver, or an
    actor's thread outside a call): the parent of the tasks it submits."""
    s = _scope.get()
    return None if s is None else s.task_id


def function_name(fn: Any) -> str | None:
    """`module.qualname` of a task's function or an actor's method (Ray's function name)."""
    fn = getattr(fn, "__func__", fn)
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:
        return None
    module = getattr(fn, "__module__", None)
    return f"{module}.{qualname}" if module else qualname


def info(job_id: bytes, node_id: bytes, worker_id: bytes, namespace: str) -> "ContextInfo":
    """What get_runtime_context() reports for the calling code."""
    from .base import ContextInfo

    s = current()
    return ContextInfo(job_id=((s.job_id if s else None) or job_id).hex(), node_id=node_id.hex(),
                       worker_id=worker_id.hex(), namespace=namespace,
                       task_id=s.task_id.hex() if s and s.task_id else None,
                       actor_id=s.actor_id.hex() if s and s.actor_id else None,
                       actor_name=s.actor_name if s else None,
                       assigned_resources=dict(s.resources) if s else {},
                       gpu_ids=s.gpu_ids if s else (),
                       was_restarted=s.was_restarted if s else False,
                       task_name=s.name if s else None,
                       task_function_name=function_name(s.function) if s and s.function else None,
                       runtime_env=s.runtime_env if s else None)


class scope:
    """`with scope(s):` makes `s` what runs here (this thread, or this asyncio task), then
    restores the outer one."""
    __slots__ = ("s", "token")

    def __init__(self, s: TaskScope):
        self.s = s

    def __enter__(self) -> TaskScope:
        self.token = _scope.set(self.s)
        return self.s

    def __exit__(self, *exc: object) -> None:
        _scope.reset(self.token)
