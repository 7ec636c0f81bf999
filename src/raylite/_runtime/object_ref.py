"""ObjectRef: a handle to a value that exists, or will, somewhere in the cluster.

A ref is an id plus the address of its owner (the process that created it).
It is hashable and picklable; a pickled ref inside a value is a borrow, not
a copy. Each live ObjectRef instance counts as one local reference: the
runtime that made it is told when it is created and when it is deleted.

Out of band (Ray's rule): a ref made from an id alone (`ObjectRef(id)`, or
one unpickled without an owner) is counted nowhere, so it neither keeps its
object alive nor lets go of a hold it never had; a runtime declines to count
such a ref (ref_created returns False) and its __del__ then does nothing.
Pickled in a process that owns or borrows the object, it travels with the
owner's address and arrives as an ordinary, counted ref.
"""
from __future__ import annotations

import os
from typing import Any

from .. import _forks, _serialization

_NIL = b"\xff" * 16


class ObjectRef:
    __slots__ = ("_id", "_owner", "_rt", "_pid", "__weakref__")

    def __init__(self, id: bytes, owner: Any = None, runtime: Any = None):
        self._id = id
        self._owner = owner
        self._pid = _forks.generation  # its runtime's stamp: made by this process
        self._rt = None
        if runtime is not None and runtime.ref_created(self) is not False:
            self._rt = runtime  # counted: only now may __del__ uncount it

    def __del__(self) -> None:
        rt = self._rt
        if rt is not None and self._pid == _forks.generation:
            try:
                rt.ref_deleted(self._id)
            except Exception:  # interpreter shutdown: the runtime may be half torn down
                pass

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> Any:
        """The TaskID of the task that made this object, as this process (its owner) knows it;
        the nil TaskID when it does not (a put() object, a borrowed ref)."""
        from .._ids import TaskID

        rt, inner = self._rt, self._owner
        if rt is not None:
            tid = rt.ref_task_id(self)
        else:  # the ray runtime's refs are not counted here: `inner` is Ray's own ref
            tid = inner.task_id().binary() if hasattr(inner, "task_id") else None
        return TaskID(tid) if tid else TaskID.nil()

    def size(self) -> int:
        return len(self._id)

    def is_nil(self) -> bool:
        return self._id == _NIL

    @classmethod
    def nil(cls) -> "ObjectRef":
        """The nil ref (all 0xff bytes): refers to no object, as in Ray."""
        return cls(_NIL)

    @classmethod
    def from_binary(cls, id: bytes) -> "ObjectRef":
        """An out-of-band ref to the object with this id (see the module docstring)."""
        if not isinstance(id, bytes):
            raise TypeError(f"ObjectRef.from_binary takes bytes, got {type(id).__name__}.")
        return cls(id)

    @classmethod
    def from_hex(cls, hex_id: str) -> "ObjectRef":
        """An out-of-band ref to the object whose id is this hex string."""
        return cls(bytes.fromhex(hex_id))

    @classmethod
    def from_random(cls) -> "ObjectRef":
        return cls(os.urandom(len(_NIL)))

    def job_id(self) -> Any:
        """The JobID of the job this process works for. raylite's object ids do not embed
        the job that created the object (Ray's do): a ref borrowed from another job's
        process reports the current job."""
        from .._ids import JobID

        return JobID(bytes.fromhex(_runtime_of(self).context().job_id))

    def call_site(self) -> str:
        """Where the ref was created: always "" (raylite does not record creation sites;
        Ray records them only when RAY_record_ref_creation_sites=1)."""
        return ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self):
        _serialization.note_ref(self)
        return (_rebuild_ref, (self._id, self._owner or _known_owner(self._id)))

    def future(self):
        """A concurrent.futures.Future that completes with the value (or the error)."""
        return _runtime_of(self).future(self)

    def as_future(self):
        """An asyncio.Future that completes with the value (or the error); call it from a
        coroutine (it binds to the running event loop). Same as
        asyncio.wrap_future(ref.future())."""
        import asyncio

        return asyncio.wrap_future(self.future())

    def __await__(self):
        import asyncio

        return asyncio.wrap_future(self.future()).__await__()


def _runtime_of(ref: ObjectRef) -> Any:
    from . import require

    if ref._rt is not None and ref._pid == _forks.generation:
        return ref._rt
    return require()


def _known_owner(id: bytes) -> Any:
    """The owner of an out-of-band ref's object, when this process owns or borrows it."""
    from . import current

    owner_of = getattr(current(), "owner_of", None)
    return owner_of(id) if owner_of is not None else None


def _rebuild_ref(id: bytes, owner: Any) -> ObjectRef:
    from . import current

    return ObjectRef(id, owner, current())
