"""Warnings about what peers did wrong, bounded so that no peer can grow a log without limit.

    Listener (refused handshakes) ──┐
    NodeServer._handle (refused     ├──► RateLimitedLog.warning(key, text) ──► logging
      messages)                     ┘        at most one line per key per interval,
                                             at most `burst` lines per interval in all

A key is the peer (an IP, a uid, a connection). Lines held back are counted, and the
count rides on the next line that is written, so nothing is silently forgotten: the
log says how much it did not repeat. Safe to call from any thread.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval: float = 60.0, burst: int = 10,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self.held_back = 0                 # lines not written since the last one that was
        self._lock = threading.Lock()
        self._last: dict[Any, float] = {}  # key -> when its last line was written
        self._window = -interval           # start of the current interval
        self._written = 0                  # lines written in it

    def warning(self, key: Any, fmt: str, *args: Any) -> bool:
        """Logs fmt % args unless `key` (or everyone) has had its share; True when written."""
        with self._lock:
            now = self.clock()
            if now - self._window >= self.interval:
                self._window, self._written = now, 0
                self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
            last = self._last.get(key)
            if (last is not None and now - last < self.interval) or self._written >= self.burst:
                self.held_back += 1
                return False
            self._last[key] = now
            self._written += 1
            held, self.held_back = self.held_back, 0
        if held:
            fmt += f" ({held} similar warning{'s' if held > 1 else ''} held back; at most one "\
                   f"per peer and {self.burst} in all every {self.interval:g} s)"
        self.logger.warning(fmt, *args)
        return True
