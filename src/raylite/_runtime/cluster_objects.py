"""The object plane of ClusterRuntime: the store, ownership and reference counting.

    put / task results ──encode──► ≤ 100 KB: bytes in _Obj.data (travel inline)
                                   > 100 KB: AllocObject ─► write /dev/shm segment ─► ShmObject
    get ──► ready? ──► decode (shm: mmap once, numpy views are zero-copy, read-only)
       └─► borrowed and not here: GetObject to the owner, reply ObjectValue

Ownership (Ray's model). The creator owns an object. Each live ObjectRef
instance in a process counts one local reference (`_counts`). A process that
deserializes someone else's ref tells the owner (AddBorrower, on the same
connection its task replies use, so the owner hears of the borrow before it
hears the task finished and drops the task's own hold); when its last local
ref goes it sends RemoveBorrower. The owner frees an object once it has no
local references and no borrowers: shared memory goes back to the daemon
(FreeObjects). Refs a task returns inside its result stay pinned by the
worker that owns them. Messages that __del__ would send are queued and
flushed by the maintenance thread or before the next allocation, never sent
from inside a destructor. Only an owner frees: a fetched value that arrives
after its borrower let go is dropped, not handed back to the daemon.

Out-of-band refs (made from an id alone, owner unknown: object_ref.py) are
counted nowhere. get() on one finds the object when this process owns it or
borrows it through an in-band ref; otherwise it fails at once and keeps no
entry behind.
"""
from __future__ import annotations

import _thread
import time
from typing import Any, Sequence

from .._object_store import shm
from .._protocol import messages as m
from .._protocol.read_turn import shield, shielding
from .._protocol.transport import SPIN
from .._serialization import dumps_error, loads, serialize_with_refs
from ..exceptions import (GetTimeoutError, ObjectLostError, ObjectStoreFullError, OutOfDiskError,
                          OwnerDiedError, RaySystemError, RayTaskError)
from .object_ref import ObjectRef


class _Obj:
    __slots__ = ("data", "error", "ready", "callbacks", "owned", "pinned", "contained",
                 "borrowers", "mapped", "shared")

    def __init__(self, owned: bool, data: Any = None, contained: Any = None):
        self.data = data
        self.error: bytes | None = None
        self.ready = data is not None
        self.callbacks: list | None = None
        self.owned = owned
        self.pinned = False
        self.contained = contained
        self.borrowers = 0
        self.mapped: Any = None
        self.shared = False        # another process may have mapped its segment


class _Countdown:
    """Wakes one waiting thread once `n` objects are ready (hits may come from any thread)."""
    __slots__ = ("n", "done", "lock")

    def __init__(self, n: int):
        self.n = n
        self.done: list = []
        self.lock = _thread.allocate_lock()
        self.lock.acquire()

    def hit(self) -> None:
        self.done.append(None)  # atomic, unlike n -= 1 racing in two reader threads
        if len(self.done) >= self.n:
            try:
                self.lock.release()
            except RuntimeError:  # another hit released it already
                pass

    def wait(self, timeout: float | None) -> bool:
        return self.lock.acquire(timeout=-1 if timeout is None else timeout)


class ObjectPlane:
    """Methods of ClusterRuntime that store, move, count and free objects."""

    # -- encoding --------------------------------------------------------------
    def encode(self, value: Any, object_id: bytes, owner: str) -> tuple[Any, list]:
        """(bytes or ShmObject, refs inside): large values go to shared memory."""
        data, buffers, refs = serialize_with_refs(value)
        if not buffers and len(data) <= shm.INLINE_LIMIT:
            return data, refs
        lay = shm.layout(data, buffers)
        if lay.size <= shm.INLINE_LIMIT:
            return shm.frame(lay), refs
        self._flush_frees()
        reply = self._call(m.AllocObject(0, object_id, lay.size, owner))
        if reply.error:
            raise (OutOfDiskError if reply.out_of_disk else ObjectStoreFullError)(reply.error)
        path = shm.spill_path(shm.spill_dir(self.session_dir), object_id) if reply.to_disk else \
            shm.segment_path(self.node_tag, object_id)
        try:
            shm.write_segment(path, lay, object_id, reply.reuse, sync=reply.to_disk)
        except BaseException as e:
            self._daemon.send(m.FreeObjects((object_id,)))
            err = shm.write_error(e, path, lay.size, reply.to_disk)
            if err is e:
                raise
            raise err from e
        return shm.ShmObject(object_id, lay.size, self.node_tag), refs

    def decode_blob(self, blob: Any) -> Any:
        """A task's arguments: bytes, or a shared-memory object (mapped, never copied)."""
        if type(blob) is shm.ShmObject:
            return shm.decode(self._map(blob))
        return shm.decode(blob)

    def _decode(self, o: _Obj) -> Any:
        data = o.data
        if type(data) is not shm.ShmObject:
            return shm.decode(data)
        if o.mapped is None:
            o.mapped = self._map(data)
        return shm.decode(o.mapped)

    def _map(self, loc: shm.ShmObject) -> Any:
        """Maps the object's segment, or its spill file; a file there that is not the object
        we wrote (shm.map_object checks) is never unpickled."""
        h = loc.object_id.hex()
        if loc.node != self.node_tag:
            raise ObjectLostError(h, f"Object {h} lives on another node; moving objects "
                                  "between nodes is not supported yet.")
        try:
            return shm.map_object(shm.segment_path(loc.node, loc.object_id), loc.object_id, loc.size)
        except FileNotFoundError:
            bad = None
        except shm.BadObjectFile as e:  # another user's file at a name spilling set free
            bad = e
        path = shm.spill_path(shm.spill_dir(self.session_dir), loc.object_id)
        try:  # spilled to disk: map the spill file instead
            return shm.map_object(path, loc.object_id, loc.size)
        except FileNotFoundError:
            if bad is None:
                raise ObjectLostError(h, f"Object {h} is no longer in the object store "
                                      "(freed by its owner).") from None
        except shm.BadObjectFile as e:
            bad = e
        raise ObjectLostError(h, f"Object {h} cannot be read safely: {bad}. Nothing of it was "
                              "unpickled; another user of this machine may be tampering with "
                              "raylite's files: check who created that path.") from None

    # -- references ------------------------------------------------------------
    def ref_created(self, ref: ObjectRef) -> bool:
        """Counts a new ref instance; False (not counted) for one whose owner is unknown."""
        if not ref._owner:  # out of band (rebuilt from an id alone): Ray counts it nowhere
            return False
        with self._lock:
            n = self._counts.get(ref._id, 0)
            self._counts[ref._id] = n + 1
            borrow = n == 0 and ref._owner and ref._owner != self.address
            if borrow:
                self._borrowed_from[ref._id] = ref._owner
        if borrow:
            self._notify(ref._owner, m.AddBorrower(ref._id))
        return True

    def owner_of(self, id: bytes) -> str | None:
        """The owner's address when this process owns or borrows `id` (else None): an
        out-of-band ref pickled here travels with it, as an in-band one (Ray promotes too)."""
        o = self._store.get(id)
        if o is not None and o.owned:
            return self.address
        return self._borrowed_from.get(id)

    def ref_deleted(self, id: bytes) -> None:
        with self._lock:
            n = self._counts.get(id, 0) - 1
            if n > 0:
                self._counts[id] = n
                return
            self._counts.pop(id, None)
            owner = self._borrowed_from.pop(id, None)
            if owner:
                self._pending_msgs.append((owner, m.RemoveBorrower(id)))
            o = self._store.get(id)
            if o is None:
                return
            if not o.owned:
                del self._store[id]
            elif o.borrowers <= 0 and not o.pinned:
                self._free_owned(id, o)

    def _free_owned(self, id: bytes, o: _Obj) -> None:
        """Drops an owned object (lock held); shared memory is returned to the daemon later.

        Its segment may be recycled only when no process can still read it:
        never handed to another process, and no view of our own map is alive.
        """
        del self._store[id]
        self._task_of.pop(id, None)
        if type(o.data) is shm.ShmObject:
            recyclable = not o.shared
            if recyclable and o.mapped is not None:
                try:
                    o.mapped.close()
                except BufferError:  # a value from get() still points into it
                    recyclable = False
            self._pending_frees.append((id, recyclable))

    def _flush_frees(self) -> None:
        with self._lock:
            frees, self._pending_frees = self._pending_frees, []
            msgs, self._pending_msgs = self._pending_msgs, []
        if frees:
            try:
                self._daemon.send(m.FreeObjects(tuple(i for i, _ in frees),
                                                tuple(i for i, r in frees if r)))
            except OSError:
                pass
        for owner, msg in msgs:
            self._notify(owner, msg)

    def _borrower(self, conn: Any, msg: Any) -> None:
        with self._lock:
            o = self._store.get(msg.object_id)
            if o is None or not o.owned:
                return
            o.borrowers += 1 if type(msg) is m.AddBorrower else -1
            o.shared = True
            if o.borrowers <= 0 and msg.object_id not in self._counts and not o.pinned:
                self._free_owned(msg.object_id, o)

    def pin(self, refs: list) -> None:
        """Keeps owned objects alive for good (refs returned inside a task's result)."""
        if refs:
            with self._lock:
                for r in refs:
                    o = self._store.get(r._id)
                    if o is not None and o.owned:
                        o.pinned = True

    def add_inlined(self, inlined: dict) -> None:
        """Values an owner sent along with a task, for its top-level ref arguments."""
        for id, (data, error) in inlined.items():
            with self._lock:
                if id not in self._store:
                    self._store[id] = _Obj(False)
            self._complete(id, data, error, owned=False)

    def _complete(self, id: bytes, data: Any, error: bytes | None, owned: bool = True) -> None:
        """Stores a value; `owned` False for another owner's value (a fetch's reply, an inlined
        argument), whose shared memory is never ours to free."""
        with self._lock:
            o = self._store.get(id)
            if o is None or o.ready:
                if o is None and owned and type(data) is shm.ShmObject and data.object_id == id:
                    self._pending_frees.append((id, True))  # a result nobody holds any more
                return
            o.data, o.error, o.ready = data, error, True
            callbacks, o.callbacks = o.callbacks, None
        if callbacks:
            for cb in callbacks:
                cb()

    def _on_ready(self, o: _Obj, callback: Any) -> None:
        if o.callbacks is None:
            o.callbacks = []
        o.callbacks.append(callback)

    def _entry(self, ref: ObjectRef) -> _Obj:
        """The store entry for ref (lock held); starts a fetch from its owner when borrowed.
        An out-of-band ref whose owner nobody here knows raises ObjectLostError (nothing kept)."""
        o = self._store.get(ref._id)
        if o is None:
            owner = ref._owner or self._borrowed_from.get(ref._id)
            if not owner:
                raise ObjectLostError(ref.hex(), (
                    f"Object {ref.hex()} is not held by this process and its ObjectRef was made "
                    "out of band (from its id alone, e.g. ObjectRef(bytes.fromhex(...))), so its "
                    "owner is unknown here and it cannot be fetched; or its owner freed it. Pass "
                    "the ObjectRef itself (as a task argument or inside a value) instead of its id."))
            o = self._store[ref._id] = _Obj(False)
            self._fetch(ref, owner, o)
        return o

    def _fetch(self, ref: ObjectRef, owner: str, o: _Obj) -> None:
        if owner == self.address:
            o.error = dumps_error(ObjectLostError(
                ref.hex(), f"Object {ref.hex()} is unknown to its owner; it was freed or created "
                           "by a runtime that has since shut down."))
            o.ready = True
            return
        req = next(self._req)
        try:
            conn = self._peer(owner)
            self._fetches[req] = (ref._id, conn)
            conn.send(m.GetObject(req, ref._id))
        except (ConnectionError, OSError):
            self._fetches.pop(req, None)
            o.error = dumps_error(OwnerDiedError(ref.hex(), f"Object {ref.hex()} is lost: its owner "
                                                 f"at {owner} is gone (the process that created it exited)."))
            o.ready = True

    def _object_value(self, conn: Any, msg: m.ObjectValue) -> None:
        entry = self._fetches.pop(msg.req, None)
        if entry is not None:
            self._complete(entry[0], msg.data, msg.error, owned=False)

    def _serve_get(self, conn: Any, msg: m.GetObject) -> None:
        with self._lock:
            o = self._store.get(msg.object_id)
            if o is not None and not o.ready:
                self._on_ready(o, lambda: self._serve_get(conn, msg))
                return
        if o is None:
            reply = m.ObjectValue(msg.req, None, dumps_error(ObjectLostError(
                msg.object_id.hex(), f"Object {msg.object_id.hex()} was freed by its owner.")))
        else:
            o.shared = True
            reply = m.ObjectValue(msg.req, o.data, o.error)
        self._send_all([(conn, reply)])

    def _value(self, id: bytes) -> Any:
        o = self._store[id]
        if o.error is not None:
            err = loads(o.error)
            try:
                raise err.as_instanceof_cause() if isinstance(err, RayTaskError) else err
            finally:
                del err  # else this frame and the error keep each other (and refs) until gc
        return self._decode(o)

    # -- the public object calls -----------------------------------------------
    def put(self, value: Any) -> ObjectRef:
        from .. import _ids

        if self._gone is not None:
            raise RaySystemError(self._gone)
        id = _ids.new_id()
        data, contained = self.encode(value, id, self.address)
        with self._lock:
            self._store[id] = _Obj(True, data, contained or None)
        return ObjectRef(id, self.address, self)

    def _await(self, refs: Sequence[ObjectRef], need: int, timeout: float | None) -> bool:
        with self._lock:
            pending = [o for o in (self._entry(r) for r in refs) if not o.ready]
            missing = need - (len(refs) - len(pending))
            if missing <= 0:
                return True
            cd = _Countdown(missing)
            for o in pending:
                self._on_ready(o, cd.hit)
        blocked = self.executor is not None and self.executor.running is not None
        if blocked:
            self._daemon.send(m.WorkerBlocked(True))
        try:
            return cd.wait(timeout)
        finally:
            if blocked:
                self._daemon.send(m.WorkerBlocked(False))

    def _read_for(self, ref: ObjectRef) -> None:
        """Reads the reply for `ref` on this thread, when its connection lets it (the turn:
        read_turn.py): one thread wake-up per call instead of two. Anything unusual (the
        connection drops, the task moves elsewhere) leaves the rest to the reader thread.

        On the main thread Ctrl-C is held back (`shield`) from taking the turn to giving it
        back, except while it sleeps in wait_readable(), which reads nothing: a reply is
        never half read or half handled when KeyboardInterrupt leaves get()."""
        o = self._store.get(ref._id)
        task = self._tasks.get(self._task_of.get(ref._id))
        conn = task.conn if task is not None else None
        if o is None or o.ready or conn is None:
            return
        guard = shield if shielding() else None
        if guard is not None:
            guard.on = True
        if not conn.turn.lead():
            if guard is not None:
                guard.off()
            return
        give_back = True
        try:
            inbox = conn.inbox
            while not o.ready and task.conn is conn:
                if not inbox:
                    t0 = time.perf_counter()
                    if not conn.quick:  # sleep until bytes come; Ctrl-C may end it here
                        if guard is not None:
                            guard.off()
                        try:
                            conn.wait_readable()
                        except OSError:
                            return  # closed: the reader thread reports the loss
                        if guard is not None:
                            guard.on = True
                    msgs = self._recv_from(conn, SPIN if conn.quick else 0.0)
                    if msgs is None:
                        return  # the reader thread sees the loss and fails or retries the task
                    conn.quick = bool(msgs) and time.perf_counter() - t0 < SPIN
                    inbox.extend(msgs)
                while inbox:  # as _handle_inbox(), inlined: this is the hottest path
                    self._on_peer(conn, inbox.popleft())
            give_back = bool(self._inflight.get(conn))  # replies nobody waits for: reader thread
        finally:
            if guard is not None:
                guard.on = True   # a second Ctrl-C must not cut the hand-back short
            conn.turn.unlead(give_back)
            if guard is not None:
                guard.on = False
                if guard.pending is not None:
                    guard.off()

    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list:
        if len(refs) == 1 and timeout is None and self.executor is None:
            self._read_for(refs[0])
        if not self._await(refs, len(refs), timeout):
            with self._lock:
                waiting = sum(1 for r in refs if not self._store[r._id].ready)
            raise GetTimeoutError(f"get() timed out after {timeout}s waiting for {waiting} of "
                                  f"{len(refs)} objects.")
        return [self._value(r._id) for r in refs]

    def wait(self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        store = self._store
        with self._lock:
            ready = [r for r in refs if (o := store.get(r._id)) is not None and o.ready]
        if len(ready) < num_returns:
            self._await(refs, num_returns, timeout)
            with self._lock:
                ready = [r for r in refs if (o := store.get(r._id)) is not None and o.ready]
        if len(ready) == len(refs) and num_returns == len(refs):
            return list(refs), []
        ready = ready[:num_returns]
        chosen = {r._id for r in ready}
        return ready, [r for r in refs if r._id not in chosen]

    def future(self, ref: ObjectRef) -> Any:
        import concurrent.futures

        fut: concurrent.futures.Future = concurrent.futures.Future()

        def done() -> None:
            try:
                fut.set_result(self._value(ref._id))
            except Exception as e:
                fut.set_exception(e)
        try:
            with self._lock:
                o = self._entry(ref)
                if not o.ready:
                    self._on_ready(o, done)
                    return fut
        except ObjectLostError as e:
            fut.set_exception(e)
            return fut
        done()
        return fut
