"""Every public raylite error, with Ray's class names.

A leaf module: it imports nothing from raylite.

    Exception
     └─ RayError
         ├─ RayTaskError            a task or actor method raised; also an instance
         │                          of the user's exception type (as_instanceof_cause)
         ├─ TaskCancelledError      ray.cancel() stopped the task
         ├─ GetTimeoutError         get(timeout=...) expired (also a TimeoutError)
         ├─ WorkerCrashedError      the worker process died while running the task
         ├─ RayActorError           the actor cannot run the call
         │   ├─ ActorDiedError      ... because it is dead (killed, crashed, __init__ raised)
         │   └─ ActorUnavailableError  ... because it is restarting or unreachable
         ├─ PendingCallsLimitExceeded  an actor handle hit its max_pending_calls
         ├─ ObjectLostError         the value is gone from every node
         │   └─ OwnerDiedError      ... because the process that owned it exited
         ├─ ObjectStoreFullError    no room in the object store, nothing left to spill
         ├─ OutOfDiskError          no room on the spill disk for what must be spilled
         ├─ NodeDiedError           the node running the task died
         ├─ RuntimeEnvSetupError    runtime_env could not be applied
         ├─ TaskUnschedulableError  no node can ever satisfy the task's resources
         ├─ ActorUnschedulableError no node can ever satisfy the actor's resources
         └─ RaySystemError          raylite itself failed (a bug, or a dead daemon)
"""
from __future__ import annotations

__all__ = [
    "ActorDiedError",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "GetTimeoutError",
    "NodeDiedError",
    "ObjectLostError",
    "ObjectStoreFullError",
    "OutOfDiskError",
    "OwnerDiedError",
    "PendingCallsLimitExceeded",
    "RayActorError",
    "RayError",
    "RaySystemError",
    "RayTaskError",
    "RuntimeEnvSetupError",
    "TaskCancelledError",
    "TaskUnschedulableError",
    "WorkerCrashedError",
]


class RayError(Exception):
    """Base class of every raylite error."""


class RayTaskError(RayError):
    """A task or actor method raised an exception.

    `cause` is the original exception; `traceback_str` the remote traceback.
    `get()` raises `as_instanceof_cause()`, so `except ValueError:` still
    catches a remote ValueError.
    """

    def __init__(self, function_name: str, traceback_str: str, cause: BaseException | None,
                 pid: int | None = None, actor_repr: str | None = None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.actor_repr = actor_repr
        # Not super(): in the dual class of as_instanceof_cause() the next __init__ in the
        # MRO is the user's exception's, whose signature is unknown.
        Exception.__init__(self, function_name, traceback_str, cause, pid, actor_repr)

    def __str__(self) -> str:
        where = f"{self.actor_repr}." if self.actor_repr and \
            not self.function_name.startswith(self.actor_repr + ".") else ""
        head = f"ray::{where}{self.function_name}() (pid={self.pid})"
        return f"{head}\n{self.traceback_str.rstrip()}"

    def as_instanceof_cause(self) -> "RayTaskError":
        """Returns this error as an instance of both RayTaskError and the cause's type."""
        cause_cls = type(self.cause)
        if self.cause is None or issubclass(cause_cls, RayTaskError):
            return self
        try:
            cls = _dual_class(cause_cls)
            err = _new_dual(cls, self.cause.args)
        except TypeError:  # final classes, or layouts that cannot be combined
            return self
        RayTaskError.__init__(err, self.function_name, self.traceback_str, self.cause,
                              self.pid, self.actor_repr)
        err.args = self.cause.args if self.cause is not None else err.args
        err.__cause__ = self.cause
        for k, v in getattr(self.cause, "__dict__", {}).items():
            err.__dict__.setdefault(k, v)
        return err

    def __reduce__(self):
        return (RayTaskError, (self.function_name, self.traceback_str, self.cause,
                               self.pid, self.actor_repr))


_DUAL: dict[type, type] = {}
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement or type()


def _new_dual(cls: type, args: tuple) -> BaseException:
    """An empty instance of a dual class.

    `cls.__new__` finds the cause's own __new__ first in the MRO. Some builtins
    (MemoryError, ExceptionGroup) have one that refuses to build a subclass whose
    nearest builtin base is not theirs; then the nearest builtin base's __new__ (the one
    Python itself would call), given the cause's arguments, builds it.
    """
    try:
        return cls.__new__(cls)
    except TypeError:
        base = cls
        while base.__flags__ & _HEAPTYPE:
            base = base.__base__
        return base.__new__(cls, *args)


def _dual_class(cause_cls: type) -> type:
    cls = _DUAL.get(cause_cls)
    if cls is None:
        cls = type(f"RayTaskError({cause_cls.__name__})", (RayTaskError, cause_cls),
                   {"__str__": RayTaskError.__str__, "__reduce__": RayTaskError.__reduce__,
                    "__module__": __name__})
        _DUAL[cause_cls] = cls
    return cls


class TaskCancelledError(RayError):
    """The task was cancelled with raylite.cancel()."""

    def __init__(self, task_id: str | None = None, message: str | None = None):
        self.task_id = task_id
        super().__init__(message or f"Task {task_id} was cancelled.")

    def __reduce__(self):
        return (type(self), (self.task_id, str(self)), self.__dict__)


class GetTimeoutError(RayError, TimeoutError):
    """get() or wait() did not finish within its timeout."""


class WorkerCrashedError(RayError):
    """The worker process running the task died (killed, crashed, out of memory)."""


class RayActorError(RayError):
    """The actor could not run the method call."""

    def __init__(self, message: str = "The actor died unexpectedly before finishing this task.",
                 actor_id: str | None = None, cause: BaseException | None = None):
        self.actor_id = actor_id
        self.cause = cause
        super().__init__(message)


class ActorDiedError(RayActorError):
    """The actor is dead: killed, its process exited, or its __init__ raised."""


class ActorUnavailableError(RayActorError):
    """The actor is temporarily unreachable (restarting); the call may be retried."""


class PendingCallsLimitExceeded(RayError):
    """Too many calls are pending on one actor handle (max_pending_calls)."""


class ObjectLostError(RayError):
    """The object's value is lost and cannot be recovered."""

    def __init__(self, object_ref_hex: str = "", message: str | None = None):
        self.object_ref_hex = object_ref_hex
        super().__init__(message or f"Object {object_ref_hex} is lost.")

    def __reduce__(self):
        return (type(self), (self.object_ref_hex, str(self)), self.__dict__)


class OwnerDiedError(ObjectLostError):
    """The process that owned the object (created it) has exited."""


class ObjectStoreFullError(RayError):
    """The object store is full and nothing can be spilled."""


class OutOfDiskError(RayError):
    """The object store is full and the spill disk has no room for what must be spilled."""


class NodeDiedError(RayError):
    """The node running the task or actor died."""


class RuntimeEnvSetupError(RayError):
    """The runtime_env could not be set up."""


class TaskUnschedulableError(RayError):
    """No node in the cluster can ever satisfy the task's resource demand."""


class ActorUnschedulableError(RayError):
    """No node in the cluster can ever satisfy the actor's resource demand."""


class RaySystemError(RayError):
    """raylite itself failed: a daemon died, or a bug."""
