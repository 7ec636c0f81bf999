"""What the owner core asks its shell to do: the instruction vocabulary (pure data).

Every event method of the core returns a list of (target, x) pairs, carried out
in order by the shell after it lets go of its lock:

    (WAKE, token)          call token(): wake a thread waiting in get()/wait(), answer a
                           borrower's GetObject, complete a future
    (DAEMON, request)      tell the node daemon: LeaseRequest, LeaseReturn, ActorLookup
                           (the shell turns each into its wire message); a lease request or
                           return with a `daemon` address goes to that node's daemon (a
                           request spilled there, a lease it granted), else to our own
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
    strategy: tuple = ()       # the key's scheduling strategy, in its wire form
    spilled: bool = False      # the node at `daemon` was named by ours: it must not spill again
    daemon: str = ""           # "" our node's daemon, else another node's: the one ours spilled
                               # it to, or (not spilled) the one holding most of its arguments
    env: Any = None            # the resolved runtime_env its worker needs (None: any worker)


class LeaseReturn(NamedTuple):
    lease_id: bytes
    kill_worker: bool = False  # the worker could not be reached
    daemon: str = ""           # the daemon that granted it ("" our own)


class ActorLookup(NamedTuple):
    """Where does this actor live? (answered once it is alive or dead)"""
    req: int
    actor_id: bytes
