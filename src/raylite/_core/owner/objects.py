"""The owner's objects: entries, reference counts, borrowers, waiters and frees (pure).

    expect(id)          ─► PENDING entry (a task's return) ──complete──► READY ─► its waiters
    put(id, data)       ─► READY entry, owned
    ref_created(id)     ─► counts[id] += 1; a borrowed id's first ref ─► the owner to tell (AddBorrower)
    ref_deleted(id)     ─► counts[id] -= 1; at 0: a borrowed id ─► notice RemoveBorrower (queued),
                                            an owned one with no borrowers, not pinned ─► freed
    borrower(id, ±1)    ─► entry.borrowers (AddBorrower / RemoveBorrower from other processes)
    freed, in shared memory ─► frees (taken by the shell and sent as FreeObjects)
    copy_added(id, node, at) ─► the directory: another node holds a copy (False: freed, drop it)

The object directory. A large object's data names the node that made it and that
node daemon's address (shm.ShmObject node, at); a reader on another node has its
own daemon pull a copy, and the owner hears of it (copy_added). Every copy is
handed back with the free (`frees`: id, shared, mapped, copies), so the shell
deletes the object on every node that holds it; the state records list them.

Ownership (Ray's model). The creator owns an object. Each live ObjectRef
instance in a process counts one local reference. A process that holds a ref to
another owner's object borrows it: its first local ref tells the owner
(AddBorrower), its last one queues RemoveBorrower (`notices`: the shell sends
them later, never from inside a destructor). The owner frees an object once it
has no local references, no borrowers and is not pinned (a ref a task returned
inside its result stays pinned by the worker that owns it). Only an owner
frees: a fetched value that arrives after its borrower let go is dropped.

Waiters. A thread in get()/wait() registers one Waiter for the objects it still
misses; each completion counts it down here, under the shell's lock, and its
`wake` token is handed back once, when the count reaches zero. (Counted outside
the lock, by the reader threads, two completions could read the same count and
one decrement was lost: the waiter slept forever. That was the lost-decrement
race; here counting is a state change like any other.)

Pure: no I/O, no threads, no clock. Object data is opaque: inline bytes, or a
location record (shared memory or a spill file) that `located` tells apart;
errors are opaque too (pickled bytes in a cluster, exceptions in local mode).
An entry's `mapped` slot belongs to the shell (its cached mapping of the
segment); the core only hands it back with the free.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from ...exceptions import ObjectLostError, OwnerDiedError

LOG_SIZE = 256  # recent events kept for debugging (each core's `log`)


def located(data: Any) -> bool:
    """True when `data` names where a large object lives (shared memory, a spill file),
    False for inline bytes or no data yet."""
    return data is not None and type(data) is not bytes


class Obj:
    __slots__ = ("data", "error", "ready", "waiters", "owned", "pinned", "contained",
                 "borrowers", "mapped", "shared", "task_id", "copies", "lineage")

    def __init__(self, owned: bool, data: Any = None, contained: Any = None,
                 task_id: bytes | None = None):
        self.data = data
        self.error: Any = None
        self.ready = data is not None
        self.waiters: list | None = None   # Waiters and dependent Tasks, until ready
        self.owned = owned
        self.pinned = False
        self.contained = contained         # refs inside the value, kept alive with it
        self.borrowers = 0
        self.mapped: Any = None            # the shell's mapping of its segment
        self.shared = False                # another process may have mapped its segment
        self.task_id = task_id             # the task that makes it, while this process runs it
        self.copies: dict | None = None    # node tag -> daemon address: copies beyond data's own
        self.lineage: Any = None           # the task that made it, kept to make it again (lineage.py)


def copies_of(o: Obj) -> tuple:
    """((node tag, daemon address), ...) of every copy of a located entry, its first one first."""
    data = o.data
    first = ((data.node, getattr(data, "at", "")),) if hasattr(data, "node") else ()
    return first + tuple(o.copies.items()) if o.copies else first


class Waiter:
    """A thread waiting for `n` more objects; `wake` is the shell's token (a callable)."""
    __slots__ = ("n", "wake")

    def __init__(self, n: int, wake: Any):
        self.n = n
        self.wake = wake


class ObjectTable:
    """Objects this process owns or borrows (call with the shell's lock held)."""

    def __init__(self, address: str, encode_error: Any, log: deque | None = None):
        self.address = address
        self.encode_error = encode_error
        self.entries: dict[bytes, Obj] = {}
        self.counts: dict[bytes, int] = {}            # id -> live ObjectRef instances here
        self.borrowed_from: dict[bytes, str] = {}     # borrowed id -> its owner's address
        self.frees: list[tuple] = []                  # (id, shared, mapped, copies) to hand back
        self.notices: list[tuple] = []                # (owner, id): RemoveBorrower to send
        self.fetches: dict[int, tuple] = {}           # request -> (id, connection asked)
        self.log = deque(maxlen=LOG_SIZE) if log is None else log
        self.released: Any = None                     # (lineage) -> None: an output with lineage
                                                      # was freed (lineage_book.py)

    # -- creation --------------------------------------------------------------
    def put(self, id: bytes, data: Any, contained: Any) -> None:
        self.entries[id] = Obj(True, data, contained)

    def expect(self, id: bytes, task_id: bytes | None = None) -> None:
        """An owned object that a task will make."""
        self.entries[id] = Obj(True, None, None, task_id)

    def inline_args(self, ids: list) -> tuple[dict, list]:
        """For a task's top-level ref arguments: the values of those ready here (sent along
        with the task), and the ids of owned ones still pending (the task waits for them)."""
        inlined: dict = {}
        deps: list = []
        entries = self.entries
        for id in ids:
            o = entries.get(id)
            if o is None:
                continue
            if o.ready:
                inlined[id] = (o.data, o.error)
                o.shared = True
            elif o.owned:
                deps.append(id)
        return inlined, deps

    def add_inlined(self, id: bytes) -> None:
        """A value another owner sent along with a task: an entry to complete, not owned."""
        if id not in self.entries:
            self.entries[id] = Obj(False)

    # -- references ------------------------------------------------------------
    def ref_created(self, id: bytes, owner: str) -> str | None:
        """Counts a ref; returns the owner to tell (AddBorrower) for a first borrowed ref."""
        counts = self.counts
        n = counts.get(id, 0)
        counts[id] = n + 1
        if n == 0 and owner != self.address:
            self.borrowed_from[id] = owner
            self.log.append(("borrow", id, owner))
            return owner
        return None

    def ref_deleted(self, id: bytes) -> None:
        counts = self.counts
        n = counts.get(id, 0) - 1
        if n > 0:
            counts[id] = n
            return
        counts.pop(id, None)
        owner = self.borrowed_from.pop(id, None)
        if owner:
            self.notices.append((owner, id))
        o = self.entries.get(id)
        if o is None:
            return
        if not o.owned:
            del self.entries[id]
        elif o.borrowers <= 0 and not o.pinned:
            self.free(id, o)

    def free(self, id: bytes, o: Obj) -> None:
        """Drops an owned entry; one in shared memory is handed back (`frees`): recycled by
        the daemon only if no other process may have mapped it and the shell can close its
        own mapping (the shell decides that when it sends the free)."""
        del self.entries[id]
        data = o.data
        if data is not None and type(data) is not bytes:  # located(), inlined: put's hot path
            self.frees.append((id, o.shared, o.mapped, copies_of(o)))
            self.log.append(("free", id))
        if o.lineage is not None and self.released is not None:
            self.released(o.lineage)

    def borrower(self, id: bytes, delta: int) -> None:
        o = self.entries.get(id)
        if o is None or not o.owned:
            return
        o.borrowers += delta
        o.shared = True
        self.log.append(("borrower", id, delta))
        if o.borrowers <= 0 and id not in self.counts and not o.pinned:
            self.free(id, o)

    def pin(self, ids: list) -> None:
        """Keeps owned objects alive for good (refs returned inside a task's result)."""
        for id in ids:
            o = self.entries.get(id)
            if o is not None and o.owned:
                o.pinned = True

    def owner_of(self, id: bytes) -> str | None:
        o = self.entries.get(id)
        if o is not None and o.owned:
            return self.address
        return self.borrowed_from.get(id)

    def copy_added(self, id: bytes, node: str, at: str) -> bool:
        """A copy of an owned object now lives on node `node` (its daemon at `at`); False when
        the object is not (any more) an owned one in shared memory: that copy is to be dropped."""
        o = self.entries.get(id)
        if o is None or not o.owned or not located(o.data):
            return False
        if node != o.data.node:
            if o.copies is None:
                o.copies = {}
            o.copies[node] = at
            o.shared = True
            self.log.append(("copy", id, node))
        return True

    def take_frees(self) -> tuple[list, list]:
        """(frees, notices) queued since the last call."""
        frees, self.frees = self.frees, []
        notices, self.notices = self.notices, []
        return frees, notices

    # -- values ----------------------------------------------------------------
    def complete(self, id: bytes, data: Any, error: Any, owned: bool) -> list | None:
        """Stores a value; returns the waiters it releases (None when there are none).
        `owned` False for another owner's value (a fetch's reply, an inlined argument)."""
        o = self.entries.get(id)
        if o is None or o.ready:
            if owned and located(data) and data.object_id == id and (o is None or data != o.data):
                # nobody holds it (or a rebuild made an output that had survived: lineage.py)
                self.frees.append((id, False, None, copies_of(Obj(True, data))))
            return None
        o.data, o.error, o.ready = data, error, True
        waiters, o.waiters = o.waiters, None
        return waiters

    def keep(self, id: bytes, contained: Any) -> None:
        """Refs found inside an entry's value: kept alive as long as it is."""
        o = self.entries.get(id)
        if o is not None:
            o.contained = contained

    def wait(self, objs: list, need: int, wake: Any = None) -> Waiter | None:
        """None when `need` of the entries `objs` are ready; else a registered Waiter that
        hands back its `wake` (set it before letting go of the lock) once enough complete."""
        pending = [o for o in objs if not o.ready]
        missing = need - (len(objs) - len(pending))
        if missing <= 0:
            return None
        w = Waiter(missing, wake)
        for o in pending:
            if o.waiters is None:
                o.waiters = [w]
            else:
                o.waiters.append(w)
        return w

    def on_ready(self, o: Obj, wake: Any) -> bool:
        """True when the entry is ready; else `wake` is handed back when it is."""
        if o.ready:
            return True
        w = Waiter(1, wake)
        if o.waiters is None:
            o.waiters = [w]
        else:
            o.waiters.append(w)
        return False

    def entry(self, id: bytes, owner: str | None) -> tuple[Obj, str | None]:
        """The entry for a ref, and the owner to fetch it from when it is new here. A ref made
        out of band, whose owner nobody here knows, raises ObjectLostError (nothing kept)."""
        o = self.entries.get(id)
        if o is not None:
            return o, None
        owner = owner or self.borrowed_from.get(id)
        if not owner:
            h = id.hex()
            raise ObjectLostError(h, (
                f"Object {h} is not held by this process and its ObjectRef was made "
                "out of band (from its id alone, e.g. ObjectRef(bytes.fromhex(...))), so its "
                "owner is unknown here and it cannot be fetched; or its owner freed it. Pass "
                "the ObjectRef itself (as a task argument or inside a value) instead of its id."))
        o = self.entries[id] = Obj(False)
        if owner == self.address:
            o.error = self.encode_error(ObjectLostError(
                id.hex(), f"Object {id.hex()} is unknown to its owner; it was freed or created "
                          "by a runtime that has since shut down."))
            o.ready = True
            return o, None
        return o, owner

    def serve(self, id: bytes, wake: Any) -> tuple | None:
        """Another process asks for an object it borrows (GetObject): (data, error) when
        ready, the segment then possibly mapped there; None while it is pending (`wake` is
        handed back when it is ready)."""
        o = self.entries.get(id)
        if o is None:
            return None, self.encode_error(ObjectLostError(
                id.hex(), f"Object {id.hex()} was freed by its owner."))
        if not o.ready:
            self.on_ready(o, wake)
            return None
        o.shared = True
        return o.data, o.error

    def fetch_started(self, req: int, id: bytes, conn: Any) -> None:
        self.fetches[req] = (id, conn)

    def unreachable_error(self, id: bytes, owner: str) -> Any:
        return self.encode_error(OwnerDiedError(id.hex(), (
            f"Object {id.hex()} is lost: its owner at {owner} is gone (the process that "
            "created it exited).")))

    def fetched(self, req: int) -> bytes | None:
        entry = self.fetches.pop(req, None)
        return None if entry is None else entry[0]

    def fetches_lost(self, conn: Any) -> list:
        """Ids being fetched over `conn`, which dropped; they are lost with their owner."""
        lost = [req for req, (_, c) in self.fetches.items() if c is conn]
        return [self.fetches.pop(req)[0] for req in lost]

    def refetch(self, id: bytes, dead: Any) -> bool:
        """A borrowed object whose location (from its owner) is on a dead node: forgotten
        here, so the next read asks its owner again (who rebuilds it, or says why not)."""
        o = self.entries.get(id)
        if o is None or o.owned or getattr(o.data, "node", None) not in dead:
            return False
        del self.entries[id]
        self.log.append(("refetch", id))
        return True

    def owner_gone_error(self, id: bytes) -> Any:
        return self.encode_error(OwnerDiedError(
            id.hex(), f"Object {id.hex()} is lost: its owner process exited."))

    def pending(self) -> list:
        return [id for id, o in self.entries.items() if not o.ready]
