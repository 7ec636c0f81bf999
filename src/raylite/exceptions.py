"""Every public raylite error, with Ray's class names and Ray's tree (a leaf module).

A leaf module: it imports nothing from raylite. All of Ray's exception classes
exist, so a Ray program's `except` clauses work unchanged; those marked * are
the ones raylite raises (the others name situations raylite does not have:
other languages, placement groups, compiled graphs, a separate raylet).

    Exception
     └─ RayError
         ├─ RayTaskError *          a task or actor method raised; also an instance
         │                          of the user's exception type (as_instanceof_cause)
         ├─ TaskCancelledError *    ray.cancel() stopped the task
         ├─ GetTimeoutError *       get(timeout=...) expired (also a TimeoutError)
         ├─ WorkerCrashedError *    the worker process died while running the task
         ├─ RayActorError *         the actor cannot run the call
         │   ├─ ActorDiedError *    ... because it is dead (killed, crashed, __init__ raised)
         │   └─ ActorUnavailableError  ... because it is restarting or unreachable
         ├─ ActorAlreadyExistsError *  a named actor's name is taken (also a ValueError)
         ├─ ActorHandleNotFoundError   the actor a handle names is unknown (also a ValueError)
         ├─ PendingCallsLimitExceeded *  an actor handle hit its max_pending_calls
         ├─ ObjectLostError *       the value is gone from every node
         │   ├─ OwnerDiedError *    ... because the process that owned it exited
         │   ├─ ObjectFetchTimedOutError, ObjectFreedError, ObjectReconstructionFailedError
         │   └─ ReferenceCountingAssertionError  (also an AssertionError)
         ├─ ObjectStoreFullError *  no room in the object store, nothing left to spill
         ├─ OutOfDiskError *        no room on the spill disk for what must be spilled
         ├─ OutOfMemoryError        the node ran out of memory (raylite has no memory monitor)
         ├─ NodeDiedError           the node running the task died
         ├─ RuntimeEnvSetupError    runtime_env could not be applied
         ├─ TaskUnschedulableError *  no node can ever satisfy the task's resources
         ├─ ActorUnschedulableError *  no node can ever satisfy the actor's resources
         ├─ AuthenticationError *   a peer did not prove it knows the cluster token
         ├─ UnserializableException *  a task's exception could not be rebuilt by its caller
         ├─ UserCodeException, AsyncioActorExit, LocalRayletDiedError, CrossLanguageError,
         │  PlasmaObjectNotAvailable, RpcError, ObjectRefStreamEndOfStreamError,
         │  OufOfBandObjectRefSerializationException, StreamingGeneratorReplayInconsistentError,
         │  TaskPlacementGroupRemoved, ActorPlacementGroupRemoved
         └─ RaySystemError *        raylite itself failed (a bug, or a dead daemon)
             ├─ RayChannelError     (compiled graphs' channels)
             │   └─ RayChannelTimeoutError  (also a TimeoutError)
             ├─ RayCgraphCapacityExceeded
             └─ RayDirectTransportError
"""
from __future__ import annotations

__all__ = [
    "ActorAlreadyExistsError",
    "ActorDiedError",
    "ActorHandleNotFoundError",
    "ActorPlacementGroupRemoved",
    "ActorUnavailableError",
    "ActorUnschedulableError",
    "AsyncioActorExit",
    "AuthenticationError",
    "CrossLanguageError",
    "GetTimeoutError",
    "LocalRayletDiedError",
    "NodeDiedError",
    "ObjectFetchTimedOutError",
    "ObjectFreedError",
    "ObjectLostError",
    "ObjectReconstructionFailedError",
    "ObjectRefStreamEndOfStreamError",
    "ObjectStoreFullError",
    "OufOfBandObjectRefSerializationException",
    "OutOfDiskError",
    "OutOfMemoryError",
    "OwnerDiedError",
    "PendingCallsLimitExceeded",
    "PlasmaObjectNotAvailable",
    "RayActorError",
    "RayCgraphCapacityExceeded",
    "RayChannelError",
    "RayChannelTimeoutError",
    "RayDirectTransportError",
    "RayError",
    "RaySystemError",
    "RayTaskError",
    "ReferenceCountingAssertionError",
    "RpcError",
    "RuntimeEnvSetupError",
    "StreamingGeneratorReplayInconsistentError",
    "TaskCancelledError",
    "TaskPlacementGroupRemoved",
    "TaskUnschedulableError",
    "UnserializableException",
    "UserCodeException",
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
        # The cause travels as its own pickle, so a cause the caller cannot rebuild (its
        # class is not importable there, or its __init__ needs other arguments than its
        # args) becomes an UnserializableException instead of failing the whole error.
        cause = self.cause
        if cause is not None:
            import cloudpickle

            cause = cloudpickle.dumps(cause, 5)
        return (_rebuild_task_error, (self.function_name, self.traceback_str, cause,
                                      self.pid, self.actor_repr))


def _rebuild_task_error(function_name: str, traceback_str: str, cause: bytes | None,
                        pid: int | None, actor_repr: str | None) -> RayTaskError:
    if cause is not None:
        import pickle

        try:
            cause = pickle.loads(cause)
        except Exception as e:
            cause = UnserializableException(
                f"The exception raised by {function_name} could not be rebuilt here "
                f"({type(e).__name__}: {e}). Its remote traceback:\n{traceback_str}")
    return RayTaskError(function_name, traceback_str, cause, pid, actor_repr)


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

    @property
    def error_msg(self) -> str:
        """The message (Ray's attribute name)."""
        return str(self)

    @property
    def actor_init_failed(self) -> bool:
        """True when the actor died because its __init__ raised (`cause` is that error)."""
        return self.cause is not None

    @property
    def preempted(self) -> bool:
        """Always False: raylite never drains (preempts) a node."""
        return False


class ActorDiedError(RayActorError):
    """The actor is dead: killed, its process exited, or its __init__ raised."""


class ActorAlreadyExistsError(ValueError, RayError):
    """An actor with this name already exists in the namespace. Also a ValueError, so code
    written for the error Ray raised before this class existed still catches it."""


class ActorHandleNotFoundError(ValueError, RayError):
    """The actor a handle names is not known to the cluster (also a ValueError)."""


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


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching the object timed out: no node that holds it answered."""


class ObjectFreedError(ObjectLostError):
    """The object was freed on purpose while a reference to it remained."""


class ObjectReconstructionFailedError(ObjectLostError):
    """The lost object cannot be rebuilt by running its task again."""


class ReferenceCountingAssertionError(ObjectLostError, AssertionError):
    """The object was deleted while a reference to it remained (a reference counting bug)."""


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


class OutOfMemoryError(RayError):
    """The node ran out of memory and killed a task or actor to free some."""


class AuthenticationError(RayError):
    """A peer did not prove it knows the cluster's token, or refused ours: the address is
    another cluster's (or not raylite), or the token given is not this cluster's."""


class UnserializableException(RayError):
    """A task's exception could not be rebuilt where it was raised to: its text and remote
    traceback are kept in the message instead (e.g. an exception class whose __init__
    needs more arguments than it passes to Exception.__init__)."""


class UserCodeException(RayError):
    """An exception raised by user code, wrapped by a library."""


class AsyncioActorExit(RayError):
    """An async actor ended itself with exit_actor()."""


class LocalRayletDiedError(RayError):
    """The node daemon (Ray's raylet) of the task died."""


class CrossLanguageError(RayError):
    """An error raised in another language (raylite runs Python only)."""


class PlasmaObjectNotAvailable(RayError):
    """The object was not available in the object store within the timeout."""


class RpcError(RayError):
    """The RPC layer failed."""


class ObjectRefStreamEndOfStreamError(RayError):
    """A streaming generator has no more refs to give."""


class OufOfBandObjectRefSerializationException(RayError):
    """An ObjectRef was serialized out of band (Ray's spelling of the name)."""


class StreamingGeneratorReplayInconsistentError(RayError):
    """A retried streaming generator yielded differently than its first run."""


class TaskPlacementGroupRemoved(RayError):
    """The placement group the task was scheduled in was removed."""


class ActorPlacementGroupRemoved(RayError):
    """The placement group the actor was scheduled in was removed."""


class RaySystemError(RayError):
    """raylite itself failed: a daemon died, or a bug."""


class RayChannelError(RaySystemError):
    """A compiled graph's channel failed."""


class RayChannelTimeoutError(RayChannelError, TimeoutError):
    """A compiled graph's channel operation timed out."""


class RayCgraphCapacityExceeded(RaySystemError):
    """A compiled graph's channel buffer is full."""


class RayDirectTransportError(RaySystemError):
    """A direct transport transfer failed."""
