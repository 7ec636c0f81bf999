"""What is running on this thread right now: task, actor, assigned resources.

Set by whoever executes a task (LocalRuntime, or the worker's executor) and
read by get_runtime_context() and get_gpu_ids().
"""
from __future__ import annotations

from typing import NamedTuple

import contextlib
import threading

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


@contextlib.contextmanager
def scope(s: TaskScope):
    outer = getattr(_tls, "scope", None)
    _tls.scope = s
    try:
        yield s
    finally:
        _tls.scope = outer
