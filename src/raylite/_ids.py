"""Ids for objects, tasks, actors, jobs, nodes and workers (a leaf module).

An id is 16 bytes: an 8-byte random prefix drawn once per process (again
after fork: _forks.py) and an 8-byte counter. Unique across processes and machines
without coordination, and cheap: no syscall per id.

The classes at the end (JobID, TaskID, ActorID, ...) are Ray's typed ids, the
form user code receives them in; raylite passes plain bytes internally.
"""
from __future__ import annotations

import itertools
import os

from . import _forks

_state: tuple[int, bytes, "itertools.count[int]"] | None = None  # (fork generation, ...)


def _prefix() -> tuple[bytes, "itertools.count[int]"]:
    global _state
    s = _state
    if s is None or s[0] != _forks.generation:  # new here, or forked since (_forks.py)
        s = _state = (_forks.current(), os.urandom(8), itertools.count(1))
    return s[1], s[2]


def new_id() -> bytes:
    """A fresh 16-byte id."""
    prefix, counter = _prefix()
    return prefix + next(counter).to_bytes(8, "big")


def stream_item_id(task_id: bytes, index: int) -> bytes:
    """The id of the `index`-th value a streaming generator task yields: derived from the
    task's id, so the worker (which writes the value) and the owner (which tracks it) agree
    without asking, and a retried task's items get the same ids again."""
    from hashlib import blake2b

    return blake2b(task_id + index.to_bytes(8, "big"), digest_size=16, person=b"raylite-item").digest()


def random_id(n: int = 16) -> bytes:
    """A fully random id (for nodes, jobs and workers, where a counter adds nothing)."""
    return os.urandom(n)


# -- Ray's id classes: what user code gets from get_runtime_context().job_id, ref.job_id(), ...
class BaseID:
    """An id as user code sees it (Ray's JobID, TaskID, ...): its bytes, typed.

    Equal to an id of the same class with the same bytes; hashable and picklable.
    The nil id of a class is all 0xff bytes (Ray's convention).
    """
    __slots__ = ("_bin",)
    SIZE = 16

    def __init__(self, id: bytes):
        if not isinstance(id, bytes):
            raise TypeError(f"{type(self).__name__} takes bytes, got {type(id).__name__}.")
        self._bin = id

    @classmethod
    def from_binary(cls, id: bytes) -> "BaseID":
        return cls(id)

    @classmethod
    def from_hex(cls, hex_id: str) -> "BaseID":
        return cls(bytes.fromhex(hex_id))

    @classmethod
    def from_random(cls) -> "BaseID":
        return cls(os.urandom(cls.SIZE))

    @classmethod
    def nil(cls) -> "BaseID":
        return cls(b"\xff" * cls.SIZE)

    def binary(self) -> bytes:
        return self._bin

    def hex(self) -> str:
        return self._bin.hex()

    def size(self) -> int:
        return len(self._bin)

    def is_nil(self) -> bool:
        return self._bin == b"\xff" * len(self._bin)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._bin == self._bin  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._bin)

    def __bytes__(self) -> bytes:
        return self._bin

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._bin.hex()})"

    __str__ = __repr__

    def __reduce__(self):
        return (type(self), (self._bin,))


class UniqueID(BaseID):
    __slots__ = ()


class JobID(BaseID):
    __slots__ = ()
    SIZE = 4


class NodeID(UniqueID):
    __slots__ = ()


class WorkerID(UniqueID):
    __slots__ = ()


class ActorID(BaseID):
    __slots__ = ()


class TaskID(BaseID):
    __slots__ = ()


class PlacementGroupID(BaseID):
    __slots__ = ()


class FunctionID(UniqueID):
    __slots__ = ()


class ActorClassID(UniqueID):
    __slots__ = ()
