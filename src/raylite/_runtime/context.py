"""What is running on this thread right now: task, actor, assigned resources.

Set by whoever executes a task (LocalRuntime, or the worker's executor) and
read by get_runtime_context() and get_gpu_ids().
"""
from __future__ import annotations

from typing import NamedTuple

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import ContextInfo

_tls = threading.local()


class TaskScope(NamedTuple):
    task_id: bytes | None = None
    actor_id: bytes | None = None
    actor_name: str | None = None
    resources: dict = {}  # never mutated
    gpu_ids: tuple = ()
    was_restarted: bool = False
    job_id: bytes | None = None


# An actor's identity is per process in a worker: methods called from its
# asyncio loop or thread pool see it even outside an explicit scope.
process_actor: "TaskScope | None" = None


def current() -> TaskScope | None:
    return getattr(_tls, "scope", None) or process_actor


def info(job_id: bytes, node_id: bytes, worker_id: bytes, namespace: str) -> "ContextInfo":
    """What get_runtime_context() reports for the calling thread."""
    from .base import ContextInfo

    s = current()
    return ContextInfo(job_id=((s.job_id if s else None) or job_id).hex(), node_id=node_id.hex(),
                       worker_id=worker_id.hex(), namespace=namespace,
                       task_id=s.task_id.hex() if s and s.task_id else None,
                       actor_id=s.actor_id.hex() if s and s.actor_id else None,
                       actor_name=s.actor_name if s else None,
                       assigned_resources=dict(s.resources) if s else {},
                       gpu_ids=s.gpu_ids if s else (),
                       was_restarted=s.was_restarted if s else False)


class scope:
    """`with scope(s):` makes `s` what runs on this thread, then restores the outer one."""
    __slots__ = ("s", "outer")

    def __init__(self, s: TaskScope):
        self.s = s

    def __enter__(self) -> TaskScope:
        self.outer = getattr(_tls, "scope", None)
        _tls.scope = self.s
        return self.s

    def __exit__(self, *exc: object) -> None:
        _tls.scope = self.outer
