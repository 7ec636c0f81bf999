"""How far the node's spilling has come: what `raylite status` shows while the object store
moves objects to disk (NodeRecord.spill, a SpillRecord).

    ObjectStoreHandlers._spill(victims)  (no NodeServer lock held: copies take a while)
        ─► SpillProgress.begin(victims) ─► copied(size) after each object ─► end(victims)
    Reports._node_state ─► SpillProgress.record() ─► SpillRecord in this node's NodeRecord

Several spills may run at once (an allocation's and pulls'): the counters are guarded by
a lock of their own, held for a few additions, never during a copy.
"""
from __future__ import annotations

import threading

from .._core.records import SpillRecord


class SpillProgress:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = [0, 0, 0, 0]   # objects, bytes being copied; objects, bytes copied of them
        self._total = [0, 0, 0]    # objects, bytes spilled since the start; failed copies

    def begin(self, victims: list) -> None:
        with self._lock:
            self._now[0] += len(victims)
            self._now[1] += sum(size for _, size in victims)

    def copied(self, size: int) -> None:
        with self._lock:
            self._now[2] += 1
            self._now[3] += size
            self._total[0] += 1
            self._total[1] += size

    def end(self, victims: list, copied: list, failed: bool) -> None:
        """A batch is over: `copied` the (id, size) of its objects now on disk."""
        with self._lock:
            self._now[0] -= len(victims)
            self._now[1] -= sum(size for _, size in victims)
            self._now[2] -= len(copied)
            self._now[3] -= sum(size for _, size in copied)
            self._total[2] += failed

    def record(self) -> SpillRecord:
        with self._lock:
            return SpillRecord(*self._now, *self._total)
