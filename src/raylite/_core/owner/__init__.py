"""The owner core: the pure state of a process that owns objects, runs tasks and calls actors.

    objects.py  ObjectTable: entries, reference counts, borrowers, waiters, frees
    tasks.py    TaskTable: tasks, scheduling keys, leases, lease requests, retries
    actors.py   ActorTable: actor calls and their order, restarts, handle lifetimes
    streams.py  StreamTable: the items of streaming generator tasks, as they come
    core.py     Owner: the three together, the events that cross them, state()
    instructions.py  what the events return: (WAKE, token), (DAEMON, request), (conn, msg)

ClusterRuntime and LocalRuntime are shells around it (see core.py for the
contract: events in under the shell's lock, instructions out, carried out
after the lock is let go).
"""
from .actors import ActorState, ActorTable, named_actor_missing
from .core import Owner
from .instructions import DAEMON, WAKE, ActorLookup, LeaseRequest, LeaseReturn
from .objects import Obj, ObjectTable, Waiter, located
from .streams import END, ITEM, WAIT, Stream, StreamTable
from .tasks import MAX_LEASE_REQUESTS, Key, Lease, Task, TaskTable, should_retry

__all__ = ["ActorLookup", "ActorState", "ActorTable", "DAEMON", "END", "ITEM", "Key", "Lease",
           "LeaseRequest", "LeaseReturn", "MAX_LEASE_REQUESTS", "Obj", "ObjectTable",
           "Owner", "Stream", "StreamTable", "Task", "TaskTable", "WAIT", "WAKE", "Waiter", "located",
           "named_actor_missing", "should_retry"]
