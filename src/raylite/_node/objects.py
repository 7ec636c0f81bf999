"""The node's object store handlers, mixed into NodeServer: room for new objects,
spilling older ones to disk, freeing and recycling segments.

    AllocObject ─► StoreAccounting.allocate (pure) ─► drop pool segments
        ├─ nothing to spill ─► AllocReply(reuse a pooled segment?, to disk?)
        └─ victims to spill ─► client.after (run by the reader thread once the lock is
           released): spill.spill() copies each (loop, size check, fsync, rename), then
           under the lock the books and the AllocReply (OutOfDiskError text on ENOSPC)
    FreeObjects ─► StoreAccounting.free ─► unlink segments and spill files, or rename
                   recyclable segments into the pool (also those no process has open
                   or mapped any more: _pool_if_unused)

The handlers run under NodeServer's lock, except the spill copies, which never do.
"""
from __future__ import annotations

import errno
import logging
import os
from typing import Any

from .._object_store import shm, spill
from .._object_store.store import DISK_HINT
from .._protocol import messages as m
from .outbox import send as _send

log = logging.getLogger("raylite.node")

POOL_MIN = 2**20   # smaller freed segments are unlinked: few pages to fault, many to scan


class ObjectStoreHandlers:
    _lock: Any
    store: Any
    spill_dir: str
    node_id: bytes
    at: str
    _spilling: int
    spill_progress: Any
    stopped: Any
    served_ids: set

    @property
    def node_tag(self) -> str:
        return self.node_id.hex()[:12]

    def _on_alloc_object(self, c: Any, msg: m.AllocObject) -> None:
        """Room for an object. Older objects to spill first are copied once the lock is
        released (c.after): they count as spilled already, and stay readable until their
        copy is complete."""
        from ..exceptions import ObjectStoreFullError, OutOfDiskError

        try:
            alloc = self.store.allocate(msg.object_id, msg.size, msg.owner, self._disk_free())
        except (ObjectStoreFullError, OutOfDiskError) as e:
            disk = type(e) is OutOfDiskError
            text = f"{e} (spill directory: {self.spill_dir})" if disk else str(e)
            _send(c.conn, m.AllocReply(msg.req, text, False, out_of_disk=disk))
            return
        for pid in alloc.drop:
            shm.unlink(self._pool_path(pid))
        if not alloc.spill:
            self._allocated(c, msg, alloc, [])
            return
        victims = [(oid, self.store.objects[oid].size) for oid in alloc.spill]
        self._spilling += sum(size for _, size in victims)
        c.after = lambda: self._spill_then_reply(c, msg, alloc, victims)

    def _spill_then_reply(self, c: Any, msg: m.AllocObject, alloc: Any, victims: list) -> None:
        """The rest of _on_alloc_object: the copies without the lock, then the books with it."""
        kept, error = self._spill(victims)
        with self._lock:
            self._spilling -= sum(size for _, size in victims)
            for oid, _ in victims:
                if oid not in self.store.objects:  # freed while it was being copied
                    shm.unlink(shm.spill_path(self.spill_dir, oid))
            if error is None:
                self._allocated(c, msg, alloc, kept)
                return
            if alloc.reuse is not None:
                shm.unlink(self._pool_path(alloc.reuse))
            text = self.store.spill_failed(msg.object_id, kept)
            disk = getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            if disk:
                text = (f"Out of disk space: storing an object of {msg.size / 2**20:.1f} MiB "
                        f"needed older objects spilled to {self.spill_dir}, and writing them "
                        f"failed ({error.strerror}); {self._disk_free() / 2**20:.1f} MiB free "
                        f"there now. {DISK_HINT}, free references you no longer need, or raise "
                        "object_store_memory in init().")
            else:
                text = f"{text} (spilling to {self.spill_dir} failed: {error})"
            _send(c.conn, m.AllocReply(msg.req, text, False, out_of_disk=disk))

    def _allocated(self, c: Any, msg: m.AllocObject, alloc: Any, kept: list) -> None:
        self.store.unspill(kept)
        reuse = alloc.reuse is not None and self._take_pool(alloc.reuse, msg.object_id)
        _send(c.conn, m.AllocReply(msg.req, None, reuse, alloc.to_disk, at=self.at))

    def _spill(self, victims: list) -> tuple[list, Exception | None]:
        """Moves the victims' segments to disk (no lock held); returns the ones that stay in
        shared memory (not there, still being written, or not moved because of the error)
        and the I/O error that stopped it, if any. Progress: self.spill_progress."""
        kept, copied, progress = [], [], self.spill_progress
        progress.begin(victims)
        try:
            for i, (oid, size) in enumerate(victims):
                try:
                    if not spill.spill(shm.segment_path(self.node_tag, oid),
                                       shm.spill_path(self.spill_dir, oid), oid, size):
                        kept.append(oid)
                        continue
                except Exception as e:  # OSError: a full disk, EIO, a short copy
                    log.warning("spilling object %s failed: %s", oid.hex(), e)
                    progress.end(victims, copied, True)
                    return kept + [oid for oid, _ in victims[i:]], e
                copied.append((oid, size))
                progress.copied(size)
        except BaseException:
            progress.end(victims, copied, True)
            raise
        progress.end(victims, copied, False)
        return kept, None

    def _take_pool(self, pool_id: int, object_id: bytes) -> bool:
        """Renames a pooled segment to a new object's name, if it is still ours."""
        path = self._pool_path(pool_id)
        try:
            why = shm.not_ours(os.lstat(path))
            if why is None:
                os.rename(path, shm.segment_path(self.node_tag, object_id))
                return True
            log.warning("not reusing %s: %s", path, why)
        except OSError:
            pass
        shm.unlink(path)
        return False

    def _disk_free(self) -> int:
        """Bytes free in the spill directory, less what copies under way will take."""
        try:
            st = os.statvfs(self.spill_dir)
            return max(0, st.f_bavail * st.f_frsize - self._spilling)
        except OSError:
            return 0

    def _pool_path(self, pool_id: int) -> str:
        return shm.segment_path(self.node_tag, b"pool" + pool_id.to_bytes(8, "big"))

    def _on_free_objects(self, c: Any, msg: m.FreeObjects) -> None:
        self._delete_objects(self.store.free(msg.object_ids, set(msg.recyclable)))

    def _delete_objects(self, freed: tuple[list, list]) -> None:
        deleted, recycled = freed
        served = self.served_ids   # sent out with sendfile: pages may be in flight still
        for oid, pid in recycled:
            segment = shm.segment_path(self.node_tag, oid)
            try:
                if oid in served:
                    raise OSError("its pages may still be in flight to another node")
                os.rename(segment, self._pool_path(pid))
            except OSError:
                self.store.pool_drop(pid)
                shm.unlink(segment)
            served.discard(oid)
        for oid, in_shm, spilled in deleted:
            segment = shm.segment_path(self.node_tag, oid)
            if oid in served or not (in_shm and not spilled and self._pool_if_unused(segment)):
                shm.unlink(segment)
            served.discard(oid)
            if spilled:
                shm.unlink(shm.spill_path(self.spill_dir, oid))

    def _pool_if_unused(self, segment: str) -> bool:
        """A freed segment its owner could not vouch for (a copy pulled here, an object
        other processes mapped) joins the pool all the same when, renamed off its
        object's name, no process has it open or mapped (shm.unused): a later copy
        pulled here or put lands in pages that exist (segments of POOL_MIN bytes or more:
        the pool is scanned on every allocation). False: unlink it as before."""
        if self.stopped.is_set():
            return False
        try:
            st = os.lstat(segment)
        except OSError:
            return False
        if st.st_size < POOL_MIN or shm.not_ours(st):
            return False
        pid = self.store.pool_add(st.st_size)
        if pid is None:
            return False
        pooled = self._pool_path(pid)
        try:
            os.rename(segment, pooled)
        except OSError:
            self.store.pool_drop(pid)
            return False
        if not shm.unused(pooled):
            self.store.pool_drop(pid)
            shm.unlink(pooled)
        return True
