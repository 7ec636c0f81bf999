"""A waiting line for the CLI's long waits (a daemon starting, a job waiting to run), on stderr.

    Waiting(what) ─► tick() while waiting: nothing for the first AFTER_S, then
        on a terminal: "raylite start: waiting for the head daemon (4 s)" redrawn in place
        elsewhere:     that line once, without the count
    ─► done(): the line erased (terminal); nothing otherwise

Stdout is never touched: what a script reads there stays the same.
"""
from __future__ import annotations

import sys
import time

AFTER_S = 1.0


class Waiting:
    def __init__(self, what: str, out=None):
        self.what = what
        self.out = out if out is not None else sys.stderr
        self.start = time.monotonic()
        self.shown = False
        try:
            self.tty = self.out.isatty()
        except (AttributeError, ValueError):
            self.tty = False

    def tick(self) -> None:
        waited = time.monotonic() - self.start
        if waited < AFTER_S or (self.shown and not self.tty):
            return
        text = f"\r\x1b[K{self.what} ({waited:.0f} s)" if self.tty else self.what + "\n"
        self.out.write(text)
        self.out.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown and self.tty:
            self.out.write("\r\x1b[K")
            self.out.flush()
