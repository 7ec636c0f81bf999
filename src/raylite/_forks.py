"""Which process this is, told apart from the parent it was forked from, without a
syscall (a leaf module).

`generation` is bumped in a child of os.fork() by a hook that `current()` registers on
its first call, never at import (nothing happens then). What a process stamps with
`current()` (its runtime's slot, its ObjectRefs, its id prefix) is its own while
`generation` still equals the stamp: a hot path compares two ints instead of asking the
kernel for its pid several times a task. A process that has not called `current()` yet
has stamped nothing, so a fork before that needs no hook.
"""
from __future__ import annotations

import os

generation = 0
_hooked = False


def _forked() -> None:
    global generation
    generation += 1


def current() -> int:
    """This process's generation, the fork hook registered first (once per process; a
    child inherits it, and its own bump)."""
    global _hooked
    if not _hooked:
        _hooked = True
        os.register_at_fork(after_in_child=_forked)
    return generation
