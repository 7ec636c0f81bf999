"""One object per process, made on first use and made again in a forked child (the house
rule for globals: behind an accessor, fork-aware). Used for a process's pending metrics
(metrics.py) and its progress-bar display (progress.py)."""
from __future__ import annotations

import os
import threading
from typing import Any, Callable


class PerProcess:
    __slots__ = ("_make", "_slot", "_lock")

    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._slot: tuple[int, Any] | None = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """This process's object, made now when this process has none yet."""
        slot = self._slot
        if slot is None or slot[0] != os.getpid():
            with self._lock:
                slot = self._slot
                if slot is None or slot[0] != os.getpid():
                    slot = self._slot = (os.getpid(), self._make())
        return slot[1]

    def if_any(self) -> Any:
        """This process's object when one was made here, else None (one read, no lock)."""
        slot = self._slot
        return slot[1] if slot is not None and slot[0] == os.getpid() else None
