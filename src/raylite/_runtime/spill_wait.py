"""A driver's put() that waits for the object store to spill: a progress line on stderr.

    encode() ─► _call(AllocObject, on_wait=a SpillWait maker) ─► the daemon chooses older
        objects to spill and copies them before it answers (on the reader thread of our
        connection, so our connection cannot ask how far it is)
    no answer within AFTER_S ─► SpillWait made; then every TICK_S until the answer:
        SpillWait.tick() ─► a connection of its own to the daemon ─► GetState(nodes)
        ─► records.spill_lines(this node's record) ─► stderr:
           on a terminal, one line redrawn in place; elsewhere, a line every EVERY_S
    answered ─► SpillWait.done(): the line erased (terminal), the connection closed

Only drivers show it (a worker's stderr goes to its driver's output already). Nothing is
printed for a put answered within AFTER_S: the common case costs nothing but the object.
"""
from __future__ import annotations

import sys
import time
from typing import Any

AFTER_S = 1.0     # wait this long before the first line
TICK_S = 0.5      # how often the line is brought up to date
EVERY_S = 5.0     # off a terminal: a line at most this often


class SpillWait:
    def __init__(self, address: str, token: bytes, node_id: str, size: int, start: float,
                 out: Any = None, clock: Any = time.monotonic, ask: Any = None):
        self.address, self.token, self.node_id, self.size = address, token, node_id, size
        self.out = out if out is not None else sys.stderr
        self.clock, self.start = clock, start
        self._ask = ask or self._ask_daemon
        self._conn: Any = None
        self.shown_at: float | None = None
        try:
            self.tty = self.out.isatty()
        except (AttributeError, ValueError):
            self.tty = False

    def tick(self) -> None:
        """Brings the line up to date (the caller has waited AFTER_S already)."""
        now = self.clock()
        if not self.tty and self.shown_at is not None and now - self.shown_at < EVERY_S:
            return
        line = self.text(now - self.start)
        self.out.write(f"\r\x1b[K{line}" if self.tty else line + "\n")
        self.out.flush()
        self.shown_at = now

    def text(self, waited: float) -> str:
        from .._core.records import spill_lines

        head = (f"raylite: put() of {self.size / 2**20:.1f} MiB is waiting for room in the "
                f"object store ({waited:.0f} s)")
        try:
            nodes = [n for n in self._ask() if n.node_id == self.node_id]
        except (OSError, EOFError, ConnectionError, ValueError):
            return head
        lines = [x for x in spill_lines(nodes) if x.startswith("spilling")]
        return f"{head}: {lines[0]}" if lines else head

    def done(self) -> None:
        if self.shown_at is not None and self.tty:
            self.out.write("\r\x1b[K")
            self.out.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _ask_daemon(self) -> tuple:
        from .._protocol import messages as m
        from .._protocol.transport import connect

        if self._conn is None:
            self._conn = connect(self.address, self.token)
            self._conn.sock.settimeout(2.0)
        self._conn.send(m.GetState(1, ("nodes",), False))
        return self._conn.recv().snapshot.nodes


def result_saying(call: Any, timeout: float, on_wait: Any) -> Any:
    """call.result(timeout); when no answer came within AFTER_S, a waiter made by
    on_wait(start) is ticked every TICK_S until it comes (or the timeout), then done()."""
    start = time.monotonic()
    if call.wait(min(AFTER_S, timeout)):
        return call.result(0)
    waiter = on_wait(start)
    try:
        while True:
            left = start + timeout - time.monotonic()
            if left <= 0:
                return call.result(0)  # TimeoutError, and the call is given up
            try:
                waiter.tick()
            except Exception:  # the line is a courtesy: never the put's failure
                pass
            if call.wait(min(TICK_S, left)):
                return call.result(0)
    finally:
        waiter.done()
