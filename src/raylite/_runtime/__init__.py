"""The seam between the public API and a concrete runtime.

One slot holds the process's runtime, guarded by one lock and stamped with
the process that installed it (its fork generation, _forks.py): a child forked
from an initialized driver sees an empty slot and never reuses its parent's
connections.

    public API (_api, remote_function, actor) --current()--> Runtime
                                               <--install()-- factory.create()
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

from .. import _forks

if TYPE_CHECKING:
    from .base import Runtime

lock = threading.RLock()
_slot: "tuple[int, Runtime] | None" = None
# Set by the public API layer: called by require() when no runtime is installed.
auto_init: "Callable[[], Runtime] | None" = None


def current() -> "Runtime | None":
    """The runtime installed in this process, or None (also in a forked child)."""
    slot = _slot
    if slot is not None and slot[0] == _forks.generation:
        return slot[1]
    return None


def install(runtime: "Runtime | None") -> None:
    """Puts `runtime` in the slot (None empties it). Callers hold `lock`."""
    global _slot
    _slot = None if runtime is None else (_forks.current(), runtime)


def require() -> "Runtime":
    """The current runtime, auto-initializing one when the API layer allows it."""
    rt = current()
    if rt is None:
        if auto_init is None:
            raise RuntimeError("raylite is not initialized: call raylite.init() first.")
        rt = auto_init()
    return rt
