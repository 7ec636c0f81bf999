"""Ids for objects, tasks, actors, jobs, nodes and workers (a leaf module).

An id is 16 bytes: an 8-byte random prefix drawn once per process (again
after fork) and an 8-byte counter. Unique across processes and machines
without coordination, and cheap: no syscall per id.
"""
from __future__ import annotations

import itertools
import os

_state: tuple[int, bytes, "itertools.count[int]"] | None = None


def _prefix() -> tuple[bytes, "itertools.count[int]"]:
    global _state
    pid = os.getpid()
    if _state is None or _state[0] != pid:
        _state = (pid, os.urandom(8), itertools.count(1))
    return _state[1], _state[2]


def new_id() -> bytes:
    """A fresh 16-byte id."""
    prefix, counter = _prefix()
    return prefix + next(counter).to_bytes(8, "big")


def random_id(n: int = 16) -> bytes:
    """A fully random id (for nodes, jobs and workers, where a counter adds nothing)."""
    return os.urandom(n)
