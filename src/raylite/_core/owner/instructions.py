"""What the owner core asks its shell to do: the instruction vocabulary (pure data).

Every event method of the core returns a list of (target, x) pairs, carried out
in order by the shell after it lets go of its lock:

    (WAKE, token)          call token(): wake a thread waiting in get()/wait(), answer a
                           borrower's GetObject, complete a future
    (DAEMON, request)      tell the node daemon: LeaseRequest, LeaseReturn, ActorLookup
                           (the shell turns each into its wire message)
    (connection, message)  send a message the shell built (a task's PushTask or an actor
                           call's PushActorTask, as the core completed it) to a worker

The core never builds wire messages itself: the protocol sits above it (it may
carry the core's records), and the shell translates.
"""
from __future__ import annotations

from typing import Any, NamedTuple


class _Target:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


WAKE = _Target("WAKE")       # call the token
DAEMON = _Target("DAEMON")   # send to the node daemon


class LeaseRequest(NamedTuple):
    """A worker lease for a scheduling key's demand (`name`: the function, for warnings)."""
    req: int
    demand: dict
    name: str
    env: Any = None            # the resolved runtime_env its worker needs (None: any worker)


class LeaseReturn(NamedTuple):
    lease_id: bytes
    kill_worker: bool = False  # the worker could not be reached


class ActorLookup(NamedTuple):
    """Where does this actor live? (answered once it is alive or dead)"""
    req: int
    actor_id: bytes
