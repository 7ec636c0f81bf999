"""The daemon never sends while it holds its state lock; a slow peer costs only itself.

    handler, under StateLock ─► send(conn, msg) ─► that peer's Outbox: pickle, queue
    the outermost StateLock release ─► flush every outbox written meanwhile:
        one non-blocking send (the common case: it all leaves at once, as fast as
        a direct send did) ─► what the peer's socket would not take goes to a writer
        thread for that peer, which sends at the peer's pace and ends when done
    a peer with more than LIMIT bytes waiting ─► dropped: its socket is shut down
        (its reader thread sees the close and releases what it held), and logged

A message that finds its outbox empty is always taken, however large (a big
memory summary to a peer that reads), so only a peer that stops reading is
dropped. A send made without the lock held (or before the connection's reader
bound the outbox to the lock) is flushed at once, still without blocking. A
connection without a socket (an in-process peer) is handed each message as is.
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from .._protocol import transport
from .._protocol.codec import encode

log = logging.getLogger("raylite.node")

LIMIT = 16 << 20   # bytes waiting for one peer before it is dropped


class StateLock:
    """A reentrant lock that flushes, after its outermost release, the outboxes written to
    while it was held."""

    __slots__ = ("_lock", "_owner", "_depth", "dirty")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner = 0
        self._depth = 0
        self.dirty: list[Outbox] = []

    def __enter__(self) -> "StateLock":
        me = threading.get_ident()
        if self._owner != me:
            self._lock.acquire()
            self._owner = me
        self._depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth:
            return
        dirty = self.dirty
        if dirty:
            self.dirty = []
        self._owner = 0
        self._lock.release()
        for box in dirty:
            box.flush()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        if self._owner != me:
            if not self._lock.acquire(blocking, timeout):
                return False
            self._owner = me
        self._depth += 1
        return True

    def release(self) -> None:
        self.__exit__()

    def held(self) -> bool:
        return self._owner == threading.get_ident()


class Outbox:
    """What the daemon has yet to send to one peer, in order."""

    __slots__ = ("conn", "state", "limit", "direct", "_mutex", "_chunks", "_queued", "_writing",
                 "_marked", "dropped", "_why")

    def __init__(self, conn: Any, state: StateLock | None = None, limit: int = LIMIT):
        self.conn, self.state, self.limit = conn, state, limit
        self.direct = getattr(conn, "sock", None) is None
        self._mutex = threading.Lock()
        self._chunks: list[bytes] = []
        self._queued = 0          # bytes the peer's socket has not taken yet
        self._writing = False     # a thread is sending (a flush, or the writer thread)
        self._marked = False      # in the state lock's dirty list
        self.dropped = False
        self._why = ""

    def put(self, msg: Any) -> None:
        if self.direct:  # in-process: no socket to fill up
            try:
                self.conn.send(msg)
            except OSError:
                pass  # gone: its reader cleans up
            return
        data = encode(msg)
        frame = transport._LEN.pack(len(data)) + data
        with self._mutex:
            if self.dropped:
                return
            if self._queued and self._queued + len(frame) > self.limit:
                self.dropped = True
                self._why = (f"it did not read its messages ({self._queued} bytes were waiting, "
                             f"the bound is {self.limit})")
                self._chunks.clear()
            else:
                self._chunks.append(frame)
                self._queued += len(frame)
        state = self.state
        if state is not None and state.held():
            if not self._marked:
                self._marked = True
                state.dirty.append(self)
        else:
            self.flush()

    def flush(self) -> None:
        """Sends what is queued without blocking; leaves the rest to a writer thread."""
        self._marked = False
        with self._mutex:
            if self.dropped:
                self._drop()
                return
            if self._writing or not self._chunks:
                return
            self._writing = True
            data = self._take()
        sock = self.conn.sock
        while True:
            try:
                sent = sock.send(data, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # the peer is gone: its reader thread cleans up
                self._fail()
                return
            with self._mutex:
                self._queued -= sent
                if sent < len(data):
                    break
                if not self._chunks:
                    self._writing = False
                    return
                data = self._take()
        threading.Thread(target=self._write, args=(memoryview(data)[sent:],), daemon=True,
                         name="raylite-outbox").start()

    def _take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return data

    def _write(self, rest: memoryview) -> None:
        """The writer thread: blocking sends at the peer's pace, until nothing is left."""
        sock = self.conn.sock
        while True:
            try:
                sock.sendall(rest)
            except OSError:
                self._fail()
                return
            with self._mutex:
                self._queued -= len(rest)
                if self.dropped or not self._chunks:
                    self._writing = False
                    return
                rest = memoryview(self._take())

    def _fail(self) -> None:
        with self._mutex:
            self.dropped = True
            self._chunks.clear()
            self._writing = False

    def _drop(self) -> None:
        """Called with the mutex held, once the peer overflowed its bound."""
        if not self._why:
            return
        log.warning("dropped the connection from %s: %s", self.conn.peer, self._why)
        self._why = ""
        shut(self.conn)


def send(conn: Any, msg: Any) -> None:
    """Sends `msg` to a daemon connection through its outbox (queued while the state lock is
    held, sent once it is released)."""
    conn.outbox.put(msg)


def shut(conn: Any) -> None:
    """Ends a connection from any thread: its reader thread sees the close and cleans up."""
    try:
        conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
