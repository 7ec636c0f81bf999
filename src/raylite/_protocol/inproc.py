"""The in-process transport: connections between components of one process, by name.

    Hub ── listen("inproc://gcs") ──► InprocListener ── accept() ──► server end ─┐
        └─ connect("inproc://gcs") ─────────────────────────────────► client end ─┤
                                                                                 │
        client end.send(msg) ──► its peer's inbound queue (FIFO) ──► server end.recv()
        server end.send(msg) ──► its peer's inbound queue (FIFO) ──► client end.recv()

It speaks the interface of connection.Connection as the rest of raylite uses it
(send, send_many, recv, recv_ready, recv_some, poll, wait_readable, close, peer,
channel, inbox, turn, quick, answered, closed), so a shell written against a
socket runs unchanged over it: the head daemon talks to the GCS service in its
own process this way, and a GCS, several nodes and a driver can run in one pytest
process. It has no `sock` attribute: the daemon's Outbox hands it each message
directly (a send only appends to a queue, it never blocks).

Deterministic: the transport runs no thread of its own and no clock; messages
arrive in the order they were sent, and nothing is reordered between the two
directions' queues. A message travels as the object itself (messages are
immutable NamedTuples) unless the hub was made with `serialize=True`, which
pickles each one on send and unpickles it on receipt, as a socket would, to
catch what would not survive the wire.

Closing either end ends both directions: the other end still receives what was
sent before the close, then EOFError; a send on a closed connection raises
BrokenPipeError (an OSError, as a socket's would). There is no handshake: the
peer is this process, which holds the cluster token anyway.

    direct_pipe() ──► two DirectConnections: a send calls the receiving end's
                      handler on the sender's thread (no queue, no wake-up)

The direct kind is for a link whose two sides are one process's components and
whose latency matters: the head daemon and its GCS. A request and its reply then
cost two function calls, where a queue costs two thread wake-ups (about 40 us on
the 2-core dev VM, and much more when the machine is loaded).

One Hub per process (`hub()`), remembered with its pid, so a forked child never
reaches its parent's listeners (their threads did not survive the fork). Tests
make their own Hub to keep their names apart.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

from .codec import decode, encode
from .read_turn import ReadTurn

SCHEME = "inproc://"


class _Queue:
    """One direction of a connection: what was sent and not yet received."""

    __slots__ = ("items", "cond", "closed")

    def __init__(self, lock: threading.Lock) -> None:
        self.items: deque = deque()
        self.cond = threading.Condition(lock)
        self.closed = False


class InprocConnection:
    """One end of an in-process connection."""

    max_frame = 0  # no frames: a message of any size travels as an object

    def __init__(self, inq: _Queue, outq: _Queue, peer: str, channel: bytes, serialize: bool):
        self._in, self._out = inq, outq
        self._cond = inq.cond      # both queues share one lock: a close is seen by both at once
        self.peer = peer
        self.channel = channel
        self.serialize = serialize
        self.turn = ReadTurn()
        self.inbox: deque = deque()  # decoded, not yet handled: the turn's holder handles them
        self.quick = True
        self.answered = 0.0
        self.told = False  # as connection.Connection's
        self.closed = False

    # -- sending ---------------------------------------------------------------
    def send(self, msg: Any) -> None:
        if self.serialize:
            msg = encode(msg)
        out = self._out
        with out.cond:
            if out.closed:
                raise BrokenPipeError(f"connection to {self.peer} closed")
            out.items.append(msg)
            out.cond.notify_all()

    def send_many(self, msgs: list) -> None:
        if self.serialize:
            msgs = [encode(x) for x in msgs]
        out = self._out
        with out.cond:
            if out.closed:
                raise BrokenPipeError(f"connection to {self.peer} closed")
            out.items.extend(msgs)
            out.cond.notify_all()

    # -- receiving -------------------------------------------------------------
    def _take(self, block: bool, timeout: float | None = None) -> list:
        """Every message queued for us (waiting for one when `block`, at most `timeout`
        seconds); [] when none came; EOFError once closed and drained."""
        q = self._in
        with q.cond:
            if block and not q.items and not q.closed:
                q.cond.wait_for(lambda: q.items or q.closed, timeout)
            if self.closed:
                raise EOFError(f"connection to {self.peer} closed")
            if not q.items:
                if q.closed:
                    raise EOFError(f"connection to {self.peer} closed")
                return []
            out = list(q.items)
            q.items.clear()
        if self.serialize:
            return [decode(x) for x in out]
        return out

    def recv(self) -> Any:
        """The next message; EOFError once the peer is gone and everything it sent was read."""
        q = self._in
        with q.cond:
            while not q.items and not q.closed:
                q.cond.wait()
            if self.closed or not q.items:
                raise EOFError(f"connection to {self.peer} closed")
            msg = q.items.popleft()
        return decode(msg) if self.serialize else msg

    def recv_ready(self) -> list:
        """Every message that is here now; EOFError when closed and drained."""
        return self._take(False)

    def poll(self, seconds: float) -> list:
        """The messages that arrive within `seconds` ([] when none)."""
        return self._take(True, seconds)

    def recv_some(self, spin: bool = False) -> list:
        """Blocks until at least one message is here; returns every one."""
        return self._take(True)

    def wait_readable(self) -> None:
        """Blocks until a message is here or the connection closed, taking none."""
        q = self._in
        with q.cond:
            q.cond.wait_for(lambda: q.items or q.closed)

    def pending(self) -> int:
        """Messages sent to this end and not yet received."""
        return len(self._in.items)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.turn.close()
        with self._cond:
            for q in (self._in, self._out):
                q.closed = True
                q.cond.notify_all()


def pipe(a_name: str = "inproc:a", b_name: str = "inproc:b", channel: bytes = b"g",
         serialize: bool = False) -> tuple[InprocConnection, InprocConnection]:
    """Two connected ends: `a` sees its peer as `b_name`, `b` sees `a_name`."""
    lock = threading.Lock()
    to_a, to_b = _Queue(lock), _Queue(lock)
    return (InprocConnection(to_a, to_b, b_name, channel, serialize),
            InprocConnection(to_b, to_a, a_name, channel, serialize))


class DirectConnection:
    """One end of an in-process connection whose messages are handled on the sender's thread.

    The receiving side names its handler (`handle_with`); a send calls it at once, so
    a request and its reply cost no thread wake-up at all. Messages sent before the
    handler is named wait for it, in order. There is nothing to recv: the handler is
    the reader. Whoever sends must not hold a lock the receiver's handler takes in
    the other order (the head daemon's link to its GCS: the node's lock, then the
    GCS's, never the reverse; _gcs/service.py)."""

    max_frame = 0

    def __init__(self, peer: str, channel: bytes, serialize: bool):
        self.peer = peer
        self.channel = channel
        self.serialize = serialize
        self.other: DirectConnection | None = None
        self.handler: Any = None     # handler(conn, msg): this end's reader
        self.on_close: Any = None    # on_close(conn): once, when this end closes
        self._early: deque = deque()
        self.turn = ReadTurn()
        self.inbox: deque = deque()
        self.quick = True
        self.answered = 0.0
        self.told = False  # as connection.Connection's
        self.closed = False

    def handle_with(self, handler: Any, on_close: Any = None) -> None:
        """From now on every message sent to this end is `handler(self, msg)`."""
        self.on_close = on_close
        while self._early:
            handler(self, self._early.popleft())
        self.handler = handler

    def send(self, msg: Any) -> None:
        other = self.other
        if self.closed or other.closed:
            raise BrokenPipeError(f"connection to {self.peer} closed")
        if self.serialize:
            msg = decode(encode(msg))
        if other.handler is None:
            other._early.append(msg)
        else:
            other.handler(other, msg)

    def send_many(self, msgs: list) -> None:
        for msg in msgs:
            self.send(msg)

    def close(self) -> None:
        """Closes both ends; each one's on_close runs once."""
        if self.closed:
            return
        self.closed = True
        self.turn.close()
        if self.on_close is not None:
            self.on_close(self)
        self.other.close()


def direct_pipe(a_name: str = "inproc:a", b_name: str = "inproc:b", channel: bytes = b"g",
                serialize: bool = False) -> tuple[DirectConnection, DirectConnection]:
    """Two connected direct ends: `a` sees its peer as `b_name`, `b` sees `a_name`."""
    a, b = DirectConnection(b_name, channel, serialize), DirectConnection(a_name, channel, serialize)
    a.other, b.other = b, a
    return a, b


class InprocListener:
    """Accepts in-process connections made to its name (`address`, "inproc://NAME")."""

    def __init__(self, hub: "Hub", address: str) -> None:
        self._hub = hub
        self.address = address
        self._ready: deque[InprocConnection] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._count = 0
        self.closed = False

    def _offer(self, channel: bytes) -> InprocConnection:
        with self._cond:
            if self.closed:
                raise ConnectionError(f"Cannot reach {self.address}: its listener is closed.")
            self._count += 1
            client, server = pipe(f"{self.address}#{self._count}", self.address, channel,
                                  self._hub.serialize)
            self._ready.append(server)
            self._cond.notify_all()
        return client

    def accept(self, timeout: float | None = None) -> InprocConnection:
        """The next connection made to this name; OSError once the listener is closed,
        TimeoutError when none came within `timeout` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready or self.closed, timeout):
                raise TimeoutError(f"no connection to {self.address} within {timeout}s")
            if self.closed:
                raise OSError(f"the listener {self.address} is closed")
            return self._ready.popleft()

    def close(self) -> None:
        """Frees the name; connections not yet accepted are closed (their clients see EOF)."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            left = list(self._ready)
            self._ready.clear()
            self._cond.notify_all()
        self._hub._forget(self)
        for conn in left:
            conn.close()


class Hub:
    """The names of one process's in-process listeners."""

    def __init__(self, serialize: bool = False) -> None:
        self.serialize = serialize
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._listeners: dict[str, InprocListener] = {}

    def listen(self, address: str) -> InprocListener:
        address = _normal(address)
        with self._lock:
            if address in self._listeners:
                raise OSError(f"{address} is already in use in this process: close its listener "
                              "first, or pick another name")
            listener = self._listeners[address] = InprocListener(self, address)
        return listener

    def connect(self, address: str, channel: bytes = b"g") -> InprocConnection:
        address = _normal(address)
        with self._lock:
            listener = self._listeners.get(address)
        if listener is None:
            raise ConnectionError(f"Cannot reach {address}: nothing listens on that name in this "
                                  "process (in-process addresses reach only this process).")
        return listener._offer(channel)

    def _forget(self, listener: InprocListener) -> None:
        with self._lock:
            if self._listeners.get(listener.address) is listener:
                del self._listeners[listener.address]


def _normal(address: str) -> str:
    if not address.startswith(SCHEME) or len(address) == len(SCHEME):
        raise ValueError(f"{address!r} is not an in-process address: expected {SCHEME}NAME")
    return address


_hub: Hub | None = None
_hub_lock = threading.Lock()


def hub() -> Hub:
    """This process's hub (a fresh one in a forked child)."""
    global _hub
    h = _hub
    if h is None or h.pid != os.getpid():
        with _hub_lock:
            if _hub is None or _hub.pid != os.getpid():
                _hub = Hub()
            h = _hub
    return h


def listen(address: str) -> InprocListener:
    return hub().listen(address)


def connect(address: str, channel: bytes = b"g") -> InprocConnection:
    return hub().connect(address, channel)


def is_inproc(address: str) -> bool:
    return address.startswith(SCHEME)

