"""The node's object store accounting: a pure state machine (no I/O, no clock).

    allocate(id, size, owner) ──► Allocation(spill=[ids]) | raises ObjectStoreFullError
    free(ids)                 ──► [(id, in_shm, spilled)] to delete
    owner_gone(owner)         ──► the same, for every object that owner had

Capacity counts bytes in shared memory. When an allocation does not fit,
the least recently created objects in shared memory are chosen for spilling
to disk (the I/O shell copies them, then unlinks the segment); when even
that cannot make room, the allocation fails with a message saying how much
was asked, how much is in use and by whom.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

from ..exceptions import ObjectStoreFullError


class _Entry:
    __slots__ = ("size", "owner", "in_shm", "spilled")

    def __init__(self, size: int, owner: Any):
        self.size, self.owner = size, owner
        self.in_shm, self.spilled = True, False


class Allocation(NamedTuple):
    spill: list          # object ids to move from shared memory to disk first


class StoreAccounting:
    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.used = 0
        self.spilled_bytes = 0
        self.objects: OrderedDict[bytes, _Entry] = OrderedDict()   # creation order = LRU order
        self.spill_count = 0

    def allocate(self, object_id: bytes, size: int, owner: Any) -> Allocation:
        if object_id in self.objects:
            return Allocation([])
        if size > self.capacity:
            raise ObjectStoreFullError(
                f"Cannot store an object of {_mb(size)}: the object store holds {_mb(self.capacity)} "
                "in all. Raise object_store_memory in init(), or split the object.")
        spill = []
        free = self.capacity - self.used
        if free < size:
            for oid, e in self.objects.items():
                if e.in_shm:
                    spill.append(oid)
                    free += e.size
                    if free >= size:
                        break
        if free < size:
            raise ObjectStoreFullError(self._full_message(size))
        for oid in spill:
            e = self.objects[oid]
            e.in_shm, e.spilled = False, True
            self.used -= e.size
            self.spilled_bytes += e.size
            self.spill_count += 1
        self.objects[object_id] = _Entry(size, owner)
        self.used += size
        return Allocation(spill)

    def abort(self, object_id: bytes) -> None:
        """The writer failed after allocating: forget the object."""
        self.free([object_id])

    def free(self, object_ids: list) -> list[tuple[bytes, bool, bool]]:
        out = []
        for oid in object_ids:
            e = self.objects.pop(oid, None)
            if e is None:
                continue
            if e.in_shm:
                self.used -= e.size
            if e.spilled:
                self.spilled_bytes -= e.size
            out.append((oid, e.in_shm, e.spilled))
        return out

    def owner_gone(self, owner: Any) -> list[tuple[bytes, bool, bool]]:
        return self.free([oid for oid, e in self.objects.items() if e.owner == owner])

    def _full_message(self, size: int) -> str:
        by_owner: dict = {}
        for e in self.objects.values():
            if e.in_shm:
                by_owner[e.owner] = by_owner.get(e.owner, 0) + e.size
        top = ", ".join(f"{owner}: {_mb(n)}" for owner, n in
                        sorted(by_owner.items(), key=lambda kv: -kv[1])[:5])
        return (f"Object store is full: asked for {_mb(size)}, {_mb(self.used)} of "
                f"{_mb(self.capacity)} in use (by owner: {top or 'none'}) and nothing can be "
                "spilled. Free references you no longer need, or raise object_store_memory.")

    def statistics(self) -> dict:
        return {"capacity": self.capacity, "used": self.used, "spilled_bytes": self.spilled_bytes,
                "objects": len(self.objects),
                "objects_in_shm": sum(1 for e in self.objects.values() if e.in_shm),
                "objects_spilled": sum(1 for e in self.objects.values() if e.spilled),
                "spill_count": self.spill_count}

    def listing(self) -> list[dict]:
        return [{"object_id": oid.hex(), "size": e.size, "owner": e.owner,
                 "where": "shm" if e.in_shm else "spilled"} for oid, e in self.objects.items()]


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
