"""The node's object store accounting: a pure state machine (no I/O, no clock).

    allocate(id, size, owner, disk_free)
                              ──► Allocation(spill=[ids], drop=[pool ids], reuse=pool id|None)
                                  | raises ObjectStoreFullError, or OutOfDiskError when the objects
                                  | to spill (or the object itself) need more disk than is free
    unspill(ids)              ──► victims the shell could not move stay in shared memory
    free(ids, recyclable)     ──► (deleted [(id, in_shm, spilled)], recycled [(id, pool id)])
    pool_add(size)            ──► pool id | None: a deleted segment the shell found unused
    owner_gone(owner)         ──► the same, for every object that owner had

Recycling: a freed segment that no process can still be reading (its owner
says so, or the shell finds no process has it open or mapped: pool_add) is
kept in a small pool instead of being unlinked; the next allocation that
fits (a put, or a copy pulled from another node) takes it over, and writing
into pages that already exist runs at memory-copy speed instead of
page-fault speed. Pool bytes count against capacity and are dropped first
when room is needed.

Capacity counts bytes in shared memory. When an allocation does not fit,
the least recently created objects in shared memory are chosen for spilling
to disk. They count as spilled from that moment, so concurrent allocations
see consistent numbers while the I/O shell copies them (without its lock:
until a copy is complete the segment stays readable, so shared memory may
briefly hold more than capacity). A victim the shell cannot move (still
being written, or gone) comes back with unspill(); a failed copy undoes the
allocation (spill_failed). When even spilling cannot make room, the
allocation fails with a message saying how much was asked, how much is in
use and by whom. allocate() changes nothing when it raises.

`state()` answers a state request: an ObjectRecord per object held, SHARED_MEMORY or
SPILLED (spilled from the moment it is chosen), with its owner and size; the store holds
no references, so how many there are is the owner's to say (None here).
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, NamedTuple

from .._core.records import ObjectRecord, StateSnapshot
from ..exceptions import ObjectStoreFullError, OutOfDiskError


class _Entry:
    __slots__ = ("size", "owner", "in_shm", "spilled")

    def __init__(self, size: int, owner: Any):
        self.size, self.owner = size, owner
        self.in_shm, self.spilled = True, False


class Allocation(NamedTuple):
    spill: list              # object ids to move from shared memory to disk first
    drop: list               # pool segments to unlink first
    reuse: int | None        # pool segment to rename into the new object, if any
    to_disk: bool = False    # too large for shared memory: write it to the spill directory


class StoreAccounting:
    def __init__(self, capacity: int, pool_fraction: float = 0.5):
        self.capacity = int(capacity)
        self.pool_cap = int(capacity * pool_fraction)
        self.pool: OrderedDict[int, int] = OrderedDict()   # pool id -> size (oldest first)
        self.pool_bytes = 0
        self._pool_ids = 0
        self.used = 0
        self.spilled_bytes = 0
        self.objects: OrderedDict[bytes, _Entry] = OrderedDict()   # creation order = LRU order
        self.spill_count = 0
        self.log: deque = deque(maxlen=256)  # recent events, newest last, for debugging

    def allocate(self, object_id: bytes, size: int, owner: Any,
                 disk_free: int | None = None) -> Allocation:
        """Room for a new object. Larger than all of shared memory: it goes straight to
        disk (Ray's fallback allocation). disk_free: bytes free on the spill disk (None:
        unknown, not checked)."""
        self.log.append(("allocate", object_id, size))
        if object_id in self.objects:
            return Allocation([], [], None)
        if size > self.capacity:
            if disk_free is not None and size > disk_free:
                raise OutOfDiskError(
                    f"Out of disk space: an object of {_mb(size)} is larger than shared memory "
                    f"({_mb(self.capacity)}) and the spill disk has {_mb(disk_free)} free. "
                    f"{DISK_HINT}, raise object_store_memory in init(), or split the object.")
            e = self.objects[object_id] = _Entry(size, owner)
            e.in_shm, e.spilled = False, True
            self.spilled_bytes += size
            return Allocation([], [], None, to_disk=True)
        reuse = self._pick_from_pool(size)
        free = self.capacity - self.used - self.pool_bytes
        if reuse is not None:
            free += self.pool[reuse]
        drop = []
        for pid, psize in self.pool.items():   # oldest first
            if free >= size:
                break
            if pid != reuse:
                drop.append(pid)
                free += psize
        spill = []
        if free < size:
            for oid, e in self.objects.items():
                if e.in_shm:
                    spill.append(oid)
                    free += e.size
                    if free >= size:
                        break
        if free < size:
            raise ObjectStoreFullError(self._full_message(size))
        to_spill = sum(self.objects[oid].size for oid in spill)
        if to_spill and disk_free is not None and to_spill > disk_free:
            raise OutOfDiskError(
                f"Out of disk space: storing an object of {_mb(size)} needs {_mb(to_spill)} of "
                f"older objects spilled to disk, and the spill disk has {_mb(disk_free)} free. "
                f"{DISK_HINT}, free references you no longer need, or raise "
                "object_store_memory in init().")
        for pid in drop + ([reuse] if reuse is not None else []):
            self.pool_bytes -= self.pool.pop(pid)
        for oid in spill:
            e = self.objects[oid]
            e.in_shm, e.spilled = False, True
            self.used -= e.size
            self.spilled_bytes += e.size
            self.spill_count += 1
        self.objects[object_id] = _Entry(size, owner)
        self.used += size
        return Allocation(spill, drop, reuse)

    def _pick_from_pool(self, size: int) -> int | None:
        best = None
        for pid, psize in self.pool.items():
            if size <= psize <= 2 * size + (1 << 20) and (best is None or psize < self.pool[best]):
                best = pid
        return best

    def unspill(self, victims: Any) -> None:
        """Victims the shell could not move (still being written, not there) stay in shared
        memory after all."""
        for oid in victims:
            e = self.objects.get(oid)
            if e is not None and e.spilled and not e.in_shm:
                e.in_shm, e.spilled = True, False
                self.used += e.size
                self.spilled_bytes -= e.size
                self.spill_count -= 1

    def spill_failed(self, object_id: bytes, victims: list) -> str:
        """Spilling hit an I/O error: undo this allocation, the victims not moved stay in
        shared memory; returns the error message."""
        self.free([object_id])
        self.unspill(victims)
        return self._full_message(0)

    def abort(self, object_id: bytes) -> None:
        """The writer failed after allocating: forget the object."""
        self.free([object_id])

    def free(self, object_ids: Any, recyclable: Any = ()) -> tuple[list, list]:
        """Returns (deleted [(id, in_shm, spilled)], recycled [(id, pool id)])."""
        deleted, recycled = [], []
        self.log.append(("free", len(object_ids) if hasattr(object_ids, "__len__") else None))
        for oid in object_ids:
            e = self.objects.pop(oid, None)
            if e is None:
                continue
            if e.in_shm:
                self.used -= e.size
            if e.spilled:
                self.spilled_bytes -= e.size
            if e.in_shm and not e.spilled and oid in recyclable and \
                    self.pool_bytes + e.size <= self.pool_cap:
                self._pool_ids += 1
                self.pool[self._pool_ids] = e.size
                self.pool_bytes += e.size
                recycled.append((oid, self._pool_ids))
            else:
                deleted.append((oid, e.in_shm, e.spilled))
        return deleted, recycled

    def owner_gone(self, owner: Any) -> tuple[list, list]:
        return self.free([oid for oid, e in self.objects.items() if e.owner == owner])

    def pool_add(self, size: int) -> int | None:
        """A freed segment of `size` bytes the shell found unused (no process has it open or
        mapped) joins the pool when there is room: its pool id, else None (unlink it)."""
        if self.pool_bytes + size > self.pool_cap:
            return None
        self._pool_ids += 1
        self.pool[self._pool_ids] = size
        self.pool_bytes += size
        return self._pool_ids

    def pool_drop(self, pool_id: int) -> None:
        """A pooled segment the shell could not keep (renaming failed, or it is in use)."""
        self.pool_bytes -= self.pool.pop(pool_id, 0)

    def drain_pool(self) -> list[int]:
        ids = list(self.pool)
        self.pool.clear()
        self.pool_bytes = 0
        return ids

    def _full_message(self, size: int) -> str:
        by_owner: dict = {}
        for e in self.objects.values():
            if e.in_shm:
                by_owner[e.owner] = by_owner.get(e.owner, 0) + e.size
        top = ", ".join(f"{owner}: {_mb(n)}" for owner, n in
                        sorted(by_owner.items(), key=lambda kv: -kv[1])[:5])
        asked = f"asked for {_mb(size)}, " if size else ""
        return (f"Object store is full: {asked}{_mb(self.used)} of "
                f"{_mb(self.capacity)} in use (by owner: {top or 'none'}) and nothing can be "
                "spilled. Free references you no longer need, or raise object_store_memory.")

    def statistics(self) -> dict:
        return {"capacity": self.capacity, "used": self.used, "spilled_bytes": self.spilled_bytes,
                "pool_bytes": self.pool_bytes, "pool_segments": len(self.pool),
                "objects": len(self.objects),
                "objects_in_shm": sum(1 for e in self.objects.values() if e.in_shm),
                "objects_spilled": sum(1 for e in self.objects.values() if e.spilled),
                "spill_count": self.spill_count}

    def state(self, source: str = "store") -> StateSnapshot:
        return StateSnapshot(source, objects=tuple(
            ObjectRecord(oid.hex(), e.owner, "SHARED_MEMORY" if e.in_shm else "SPILLED", e.size,
                         None, None) for oid, e in self.objects.items()))


DISK_HINT = ("Free space on that disk, or point the temp dir at a larger one "
              "(init(_temp_dir=...) or raylite start --temp-dir)")


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
