"""The object plane of ClusterRuntime: the I/O around the owner core's objects.

    put / task results ──encode──► ≤ 100 KB: inline bytes (travel with the reply)
                                   > 100 KB: AllocObject ─► write /dev/shm segment ─► ShmObject
    get ──► core entry ready? ──► decode (shm: mmap once, numpy views are zero-copy, read-only)
       │                    └─► no: a Waiter in the core, a lock this thread sleeps on
       ├─► borrowed and not here: GetObject to the owner (_fetch), reply ObjectValue
       └─► in another node's shared memory: PullObject to this node's daemon (_pull), which
           copies it here (_node/transfer.py); the owner hears of the copy (ObjectCopied)

Who owns what. The owner core (raylite._core.owner.objects) holds every
entry, the reference counts, borrowers, waiters and the queue of frees and
RemoveBorrower notices: the ownership rules live there. This shell holds what
touches the world: encoding to and mapping of shared memory (an entry's
`mapped`), the sends (FreeObjects, AddBorrower/RemoveBorrower, GetObject,
ObjectValue) and the thread that waits.

Reference counting (Ray's model, rules in the core): each live ObjectRef
instance counts one local reference. A process that deserializes someone
else's ref tells the owner (AddBorrower, on the same connection its task
replies use, so the owner hears of the borrow before it hears the task
finished and drops the task's own hold); its last local ref queues
RemoveBorrower. Messages that __del__ would cause are queued in the core and
sent by the maintenance thread or before the next allocation (_flush_frees),
never from inside a destructor.

Out-of-band refs (made from an id alone, owner unknown: object_ref.py) are
counted nowhere. get() on one finds the object when this process owns it or
borrows it through an in-band ref; otherwise it fails at once and keeps no
entry behind.
"""
from __future__ import annotations

import _thread
import time
from typing import Any, Sequence

from .._core.owner.events import PART
from .._object_store import shm
from .._protocol import messages as m
from .._protocol.read_turn import shield, shielding
from .._protocol.transport import SPIN
from .._serialization import loads, serialize_with_refs
from ..exceptions import (GetTimeoutError, ObjectLostError, ObjectStoreFullError, OutOfDiskError,
                          RaySystemError, RayTaskError)
from .object_ref import ObjectRef

REREADS = 100  # get() reads again at most this often when objects were lost with a node
PULL_RATE_FLOOR = 10 * 2**20  # bytes/s: a pull slower than this fails (its bound, with 60 s more)


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
        reply = self._call(m.AllocObject(0, object_id, lay.size, owner),
                           on_wait=None if self.executor is not None else
                           lambda start: self._spill_wait(lay.size, start))
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
        return shm.ShmObject(object_id, lay.size, self.node_tag, reply.at), refs

    def _spill_wait(self, size: int, start: float) -> Any:
        """A driver's put waiting for room: its progress line (spill_wait.py)."""
        from .spill_wait import SpillWait

        return SpillWait(self.daemon_address, self._token, self.node_id.hex(), size, start)

    def decode_blob(self, blob: Any) -> Any:
        """A task's arguments: bytes, or a shared-memory object (mapped, never copied)."""
        if type(blob) is shm.ShmObject:
            return shm.decode(self._map(blob))
        return shm.decode(blob)

    def _decode(self, o: Any) -> Any:
        data = o.data
        if type(data) is not shm.ShmObject:
            return shm.decode(data)
        if o.mapped is None:
            o.mapped = self._map(data)
        return shm.decode(o.mapped)

    def _map(self, loc: shm.ShmObject) -> Any:
        """Maps the object's file on this node (its segment, or its spill file); an object
        another node made is first pulled here by this node's daemon (_pull; at once when a
        copy is here already). A file there that is not the object we wrote
        (shm.map_object checks) is never unpickled."""
        h = loc.object_id.hex()
        if loc.node == self.node_tag:
            mm = self._map_here(loc)
            if mm is None:
                raise ObjectLostError(h, f"Object {h} is no longer in the object store "
                                      "(freed by its owner).")
            return mm
        # Another node's object: this node's daemon says when a copy is complete here (a
        # file being pulled exists before it is sealed), so it is asked first, every time.
        for _ in range(2):  # a copy freed between the pull and the map is pulled again
            owner = self._pull(loc)
            mm = self._map_here(loc)
            if mm is not None:
                break
        else:
            raise ObjectLostError(h, f"Object {h} was copied to this node twice and freed "
                                  "each time before it could be read (its owner freed it).")
        if not owner:  # a task's argument blob, read once: the map keeps its pages
            self._daemon.send(m.FreeObjects((loc.object_id,)))
        return mm

    def _map_here(self, loc: shm.ShmObject) -> Any:
        """A read-only map of the object's file on this node; None when there is none."""
        h = loc.object_id.hex()
        try:
            return shm.map_object(shm.segment_path(self.node_tag, loc.object_id), loc.object_id,
                                  loc.size)
        except FileNotFoundError:
            bad = None
        except shm.BadObjectFile as e:  # another user's file at a name spilling set free
            bad = e
        path = shm.spill_path(shm.spill_dir(self.session_dir), loc.object_id)
        try:  # spilled to disk: map the spill file instead
            return shm.map_object(path, loc.object_id, loc.size)
        except FileNotFoundError:
            if bad is None:
                return None
        except shm.BadObjectFile as e:
            bad = e
        raise ObjectLostError(h, f"Object {h} cannot be read safely: {bad}. Nothing of it was "
                              "unpickled; another user of this machine may be tampering with "
                              "raylite's files: check who created that path.") from None

    def _pull(self, loc: shm.ShmObject) -> str:
        """Has this node's daemon copy the object from the node holding it (several readers
        of one object on one node share one transfer), then tells its owner where the new
        copy is; returns the owner ("" when unknown: a task's argument blob)."""
        id, h = loc.object_id, loc.object_id.hex()
        if not loc.at:
            raise ObjectLostError(h, f"Object {h} lives on node {loc.node}, whose daemon's "
                                  "address was not recorded with it, so it cannot be copied here.")
        owner = self._objects.owner_of(id) or ""
        timeout = 60.0 + loc.size / PULL_RATE_FLOOR
        reply = self._call(m.PullObject(0, id, loc.size, owner, loc.at), timeout=timeout)
        if reply.error:
            raise ObjectLostError(h, f"Object {h} lives on node {loc.node} and could not be "
                                  f"copied to this node: {reply.error}")
        if owner == self.address:
            with self._lock:
                known = self._objects.copy_added(id, reply.node, reply.at)
            if not known:
                self._daemon.send(m.FreeObjects((id,)))
        elif owner:
            self._notify(owner, m.ObjectCopied(id, reply.node, reply.at))
        return owner

    def _object_copied(self, conn: Any, msg: m.ObjectCopied) -> None:
        """A reader on another node copied an object we own there: the directory lists it;
        an object freed meanwhile has that copy dropped at once."""
        if type(msg.object_id) is not bytes or type(msg.node) is not str or \
                type(msg.at) is not str:
            return
        with self._lock:
            known = self._objects.copy_added(msg.object_id, msg.node, msg.at)
        if not known:
            try:
                self._daemon.send(m.DropCopies(msg.at, (msg.object_id,)))
            except OSError:
                pass

    # -- references ------------------------------------------------------------
    def ref_created(self, ref: ObjectRef) -> bool:
        """Counts a new ref instance; False (not counted) for one whose owner is unknown."""
        if not ref._owner:  # out of band (rebuilt from an id alone): Ray counts it nowhere
            return False
        with self._lock:
            owner = self._objects.ref_created(ref._id, ref._owner)
        if owner is not None:
            self._notify(owner, m.AddBorrower(ref._id))
        return True

    def owner_of(self, id: bytes) -> str | None:
        """The owner's address when this process owns or borrows `id` (else None): an
        out-of-band ref pickled here travels with it, as an in-band one (Ray promotes too)."""
        return self._objects.owner_of(id)

    def ref_deleted(self, id: bytes) -> None:
        with self._lock:  # what it frees or tells an owner is sent later (_flush_frees)
            self._objects.ref_deleted(id)

    def _flush_frees(self) -> None:
        """Sends the frees and RemoveBorrower notices the core queued. A segment is recycled
        only when no process can still read it: never handed to another process, and no view
        of our own mapping is alive (closing it tells)."""
        with self._lock:
            frees, notices = self._objects.take_frees()
        if frees:
            recycle = tuple(i for i, shared, mapped, _ in frees if not shared and _closed(mapped))
            elsewhere: dict = {}   # daemon address -> ids: copies on other nodes
            for i, _, _, copies in frees:
                for node, at in copies:
                    if node != self.node_tag and at:
                        elsewhere.setdefault(at, []).append(i)
            try:
                self._daemon.send(m.FreeObjects(tuple(i for i, _, _, _ in frees), recycle))
                for at, ids in elsewhere.items():
                    self._daemon.send(m.DropCopies(at, tuple(ids)))
            except OSError:
                pass
        for owner, id in notices:
            self._notify(owner, m.RemoveBorrower(id))

    def _borrower(self, conn: Any, msg: Any) -> None:
        with self._lock:
            self._objects.borrower(msg.object_id, 1 if type(msg) is m.AddBorrower else -1)

    def pin(self, refs: list) -> None:
        """Keeps owned objects alive for good (refs returned inside a task's result)."""
        if refs:
            with self._lock:
                self._objects.pin([r._id for r in refs])

    def add_inlined(self, inlined: dict) -> None:
        """Values an owner sent along with a task, for its top-level ref arguments."""
        core = self._core
        for id, (data, error) in inlined.items():
            with self._lock:
                core.objects.add_inlined(id)
                out = core.complete(id, data, error, False)
            if out:
                self._send_all(out)

    def _complete(self, id: bytes, data: Any, error: bytes | None, owned: bool = True) -> None:
        """Stores a value; `owned` False for another owner's value (a fetch's reply, an inlined
        argument), whose shared memory is never ours to free."""
        with self._lock:
            out = self._core.complete(id, data, error, owned)
        if out:
            self._send_all(out)

    def _entry(self, ref: ObjectRef, fetches: list) -> Any:
        """The core's entry for ref (lock held); a borrowed one new here is to be fetched from
        its owner (appended to `fetches`: _fetch, after the lock). An out-of-band ref whose
        owner nobody here knows raises ObjectLostError (nothing kept)."""
        o = self._objects.entries.get(ref._id)
        if o is not None:
            return o
        o, owner = self._objects.entry(ref._id, ref._owner)
        if owner is not None:
            fetches.append((ref._id, owner))
        return o

    def _fetch(self, fetches: list) -> None:
        """Asks owners for objects this process borrows (GetObject); an owner that cannot be
        reached fails its object at once."""
        objects = self._objects
        for id, owner in fetches:
            req = next(self._req)
            try:
                conn = self._peer(owner)
                with self._lock:
                    objects.fetch_started(req, id, conn)
                conn.send(m.GetObject(req, id))
            except (ConnectionError, OSError):
                with self._lock:
                    out = self._core.fetch_failed(req, id, owner)
                self._send_all(out)

    def _object_value(self, conn: Any, msg: m.ObjectValue) -> None:
        with self._lock:
            id = self._objects.fetched(msg.req)
            if id is None:
                return
            out = self._core.complete(id, msg.data, msg.error, False)
        self._send_all(out)

    def _serve_get(self, conn: Any, msg: m.GetObject) -> None:
        with self._lock:
            value = self._objects.serve(msg.object_id, lambda: self._serve_get(conn, msg))
        if value is not None:
            self._send_all([(conn, m.ObjectValue(msg.req, *value))])

    def _value(self, id: bytes) -> Any:
        o = self._objects.entries[id]
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
            self._objects.put(id, data, contained or None)
        return ObjectRef(id, self.address, self)

    def _await(self, refs: Sequence[ObjectRef], need: int, timeout: float | None) -> bool:
        fetches: list = []
        with self._lock:
            w = self._objects.wait([self._entry(r, fetches) for r in refs], need)
            if w is not None:
                done = _thread.allocate_lock()
                done.acquire()
                w.wake = done.release  # the core counts completions: released once, at zero
        if fetches:
            self._fetch(fetches)
        if w is None:
            return True
        blocked = self.executor is not None and self.executor.running is not None
        if blocked:
            self._daemon.send(m.WorkerBlocked(True))
        try:
            return done.acquire(timeout=-1 if timeout is None else timeout)
        finally:
            if blocked:
                self._daemon.send(m.WorkerBlocked(False))

    def _read_for(self, ref: ObjectRef) -> bool:
        """Reads the reply for `ref` on this thread, when its connection lets it (the turn:
        read_turn.py): one thread wake-up per call instead of two. Anything unusual (the
        connection drops, the task moves elsewhere) leaves the rest to the reader thread.

        On the main thread Ctrl-C is held back (`shield`) from taking the turn to giving it
        back, except while it sleeps in wait_readable(), which reads nothing: a reply is
        never half read or half handled when KeyboardInterrupt leaves get().

        True when the object is here and ready (get() then needs no wait)."""
        core = self._core
        o = self._objects.entries.get(ref._id)
        if o is None or o.ready:
            return o is not None
        task = core.tasks.tasks.get(o.task_id)
        conn = task.conn if task is not None else None
        if conn is None:
            return False
        guard = shield if shielding() else None
        if guard is not None:
            guard.on = True
        if not conn.turn.lead():
            if guard is not None:
                guard.off()
            return False
        give_back = True
        try:
            if len(core.events.whole) >= PART:  # work for the wait (cluster_tasks.py)
                self.pack_task_events()
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
                            return False  # closed: the reader thread reports the loss
                        if guard is not None:
                            guard.on = True
                    msgs = self._recv_from(conn, SPIN if conn.quick else 0.0)
                    if msgs is None:
                        return False  # the reader thread sees the loss: it fails or retries the task
                    conn.quick = bool(msgs) and time.perf_counter() - t0 < SPIN
                    inbox.extend(msgs)
                while inbox:  # as endpoint.drain(), inlined: this is the hottest path
                    self.endpoint.deliver(conn, inbox.popleft())
            give_back = bool(core.tasks.inflight.get(conn))  # replies nobody waits for: reader thread
        finally:
            if guard is not None:
                guard.on = True   # a second Ctrl-C must not cut the hand-back short
            conn.turn.unlead(give_back)
            if guard is not None:
                guard.on = False
                if guard.pending is not None:
                    guard.off()
        return o.ready

    def get(self, refs: Sequence[ObjectRef], timeout: float | None) -> list:
        if len(refs) == 1 and timeout is None and self.executor is None and self._read_for(refs[0]):
            values = self._values(refs)
            if values is not None:
                return values
        deadline = None if timeout is None else time.monotonic() + timeout
        for again in range(REREADS):  # again only when an object was lost with a node
            if again:                 # (cluster_nodes.py): its owner may not know it yet
                time.sleep(min(again, 10) * 0.01)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._await(refs, len(refs), left):
                entries = self._objects.entries
                with self._lock:
                    waiting = sum(1 for r in refs if not entries[r._id].ready)
                raise GetTimeoutError(f"get() timed out after {timeout}s waiting for {waiting} "
                                      f"of {len(refs)} objects.")
            values = self._values(refs)
            if values is not None:
                return values
        raise ObjectLostError(refs[0].hex(), f"get() read objects lost with a dead node "
                              f"{REREADS} times and their owners kept naming that node.")

    def wait(self, refs: Sequence[ObjectRef], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        store = self._objects.entries
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
        fetches: list = []
        try:
            with self._lock:
                ready = self._objects.on_ready(self._entry(ref, fetches), done)
        except ObjectLostError as e:
            fut.set_exception(e)
            return fut
        if fetches:
            self._fetch(fetches)
        if ready:
            done()
        return fut


def _closed(mapped: Any) -> bool:
    """Closes our mapping of a freed segment; False while a value from get() points into it."""
    if mapped is None:
        return True
    try:
        mapped.close()
        return True
    except BufferError:
        return False
