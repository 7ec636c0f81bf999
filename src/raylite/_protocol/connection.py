"""One framed message stream over an authenticated socket (handshake.py made it).

    frame = 4-byte big-endian length + a message's bytes (codec.py: pickle, protocol 5)

`send` may be called from any thread; `recv` from one reader thread per connection,
or `recv_some`/`poll` by whichever thread holds the connection's read turn
(read_turn.py), which also handles what they return from `inbox` (decoded, not yet
handled) and sleeps in `wait_readable` (reads nothing, so an interrupt there loses
nothing).

A frame's length is checked against `max_frame` (MAX_FRAME unless the connection
was made with another) before its body is read: a larger one is a FrameTooLarge
error, and the reader closes the connection (its caller logs why). Large values
travel through shared memory, never in frames, so the limit is generous; and a
frame over CHUNK bytes is read a chunk at a time, so a length prefix alone never
makes the reader reserve memory for a body that has not arrived.

Polling before sleeping. Waking a thread that sleeps on a socket costs both
sides: the sender's send() wakes it (on a VM, an interrupt to the other CPU)
and the sleeper waits to be scheduled; on the 2-core development VM that is
about half of a call's round trip. So while a peer answers quickly (its last
answer came within SPIN), the reader polls for up to SPIN before it sleeps,
yielding the CPU between polls to any thread that is ready to run (on a busy
machine the peer or our own other threads need it more). A slow peer turns
polling off after one miss; the CPU spent is bounded by SPIN per message awaited.
"""
from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections import deque
from typing import Any

from .codec import decode, encode
from .read_turn import ReadTurn

_LEN = struct.Struct("!I")
MAX_FRAME = 256 * 2**20  # bytes in one frame's body, unless a Listener or connect() is told otherwise
CHUNK = 2**20            # a body larger than this is read a chunk at a time
SPIN = 0.0002  # seconds a reader polls before it sleeps, while its peer answers that fast


PIPE_SIZE = 2**20        # bytes a recv_file pipe is asked to hold (Linux allows 1 MiB unprivileged)


def make_pipe() -> tuple:
    """A pipe for recv_file (read end, write end), asked to hold PIPE_SIZE bytes."""
    import fcntl

    r, w = os.pipe()
    try:
        fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except OSError:
        pass   # the default (64 KiB) works, with more calls
    return r, w


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    """Writes all of `data` to the file `fd` at `offset`, however short each write."""
    while data:
        n = os.pwrite(fd, data, offset)
        if n <= 0:
            raise OSError(f"writing to a file wrote {n} bytes")
        data, offset = data[n:], offset + n


class FrameTooLarge(ValueError):
    """A peer announced a frame larger than this connection accepts."""


class Connection:
    """One framed, authenticated message stream."""

    def __init__(self, sock: socket.socket, peer: str, channel: bytes = b"g",
                 max_frame: int = MAX_FRAME):
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.peer = peer
        self.channel = channel
        self.max_frame = max_frame
        self._reader = sock.makefile("rb", buffering=1 << 16)
        self._send_lock = threading.Lock()
        self._buf = bytearray()   # for recv_ready()/recv_some(): never mixed with recv() on one connection
        self.turn = ReadTurn()
        self.inbox: deque = deque()  # decoded, not yet handled: the turn's holder handles them
        self.quick = True         # the peer's last answer came within SPIN: poll before sleeping
        self.answered = 0.0       # when we last answered it (perf_counter), to time its reply
        self.told = False         # a worker told this peer who it is (its task events' runs)
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv_ready(self) -> list:
        """Every complete message that can be read without blocking; EOFError when closed."""
        return self._recv(socket.MSG_DONTWAIT)

    def poll(self, seconds: float) -> list:
        """Whole messages that arrive within `seconds`, read without sleeping; [] when none."""
        end = time.perf_counter() + seconds
        while True:
            out = self._recv(socket.MSG_DONTWAIT)
            if out or time.perf_counter() >= end:
                return out
            os.sched_yield()

    def recv_some(self, spin: bool = False) -> list:
        """Blocks until at least one whole message is here (polling for SPIN first when
        `spin`); returns every whole one. Bytes are kept in the connection's buffer until
        their frame is complete, so an exception (KeyboardInterrupt in get()) between two
        reads loses nothing."""
        out = self.poll(SPIN) if spin else []
        while not out:
            out = self._recv(0)
        return out

    def wait_readable(self) -> None:
        """Blocks until bytes arrive (or the peer closes), reading none of them: an exception
        here (KeyboardInterrupt) loses nothing."""
        self.sock.recv(1, socket.MSG_PEEK)

    def _recv(self, flags: int) -> list:
        """One read into the buffer (none when MSG_DONTWAIT finds nothing); its whole frames."""
        try:
            chunk = self.sock.recv(1 << 16, flags)
        except (BlockingIOError, InterruptedError):
            return []
        if not chunk:
            raise EOFError(f"connection to {self.peer} closed")
        self._buf += chunk
        return self._frames()

    def _frames(self) -> list:
        buf = self._buf
        out = []
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                if n > self.max_frame:
                    raise self._too_large(n)
                break
            out.append(decode(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
        del buf[:pos]
        return out

    def send(self, msg: Any) -> None:
        data = encode(msg)
        with self._send_lock:
            self.sock.sendall(_LEN.pack(len(data)) + data)

    def send_many(self, msgs: list) -> None:
        payload = b"".join(_LEN.pack(len(d)) + d for d in (encode(m) for m in msgs))
        with self._send_lock:
            self.sock.sendall(payload)

    def send_raw(self, msg: Any, payload: Any) -> None:
        """A message followed by `payload`'s bytes, unframed, sent straight from its buffer
        (an object's mapped file: no copy in this process). Only a peer that reads the
        connection itself and knows from `msg` how many bytes follow may receive this
        (recv_into); object transfers between node daemons do (_node/transfer.py)."""
        data = encode(msg)
        with self._send_lock:
            self.sock.sendall(_LEN.pack(len(data)) + data)
            self.sock.sendall(payload)

    def send_file(self, msg: Any, fd: int, offset: int, count: int) -> None:
        """send_raw whose payload is `count` bytes of the file `fd` from `offset`, moved by
        the kernel (sendfile(2): the pages are not copied through this process; over a
        veth pair or loopback the receiver may get the very pages, so the file must not
        be rewritten while its bytes may be in flight)."""
        data = encode(msg)
        with self._send_lock:
            self.sock.sendall(_LEN.pack(len(data)) + data)
            out = self.sock.fileno()
            while count:
                n = os.sendfile(out, fd, offset, count)
                if not n:
                    raise EOFError(f"the file ended {count} bytes early while sending to "
                                   f"{self.peer}")
                offset += n
                count -= n

    def recv_file(self, fd: int, offset: int, count: int, pipe: tuple) -> None:
        """recv_into for a file: exactly `count` raw bytes (after a send_raw message) written
        to `fd` at `offset`, moved by splice(2) through `pipe` (read end, write end): no
        copy through this process, and tmpfs fills the file's pages as for write(2).
        Bytes the reader buffered already are written first. EOFError when the peer goes."""
        if not count:
            return
        buffered = self._reader.peek(1)[:count]   # a read (blocking) when none is buffered
        if not buffered:
            raise EOFError(f"connection to {self.peer} closed mid-transfer")
        self._reader.read(len(buffered))
        pwrite_all(fd, memoryview(buffered), offset)
        offset, count = offset + len(buffered), count - len(buffered)
        if not hasattr(os, "splice"):   # not Linux: through one buffer
            buf = memoryview(bytearray(min(count, PIPE_SIZE)))
            while count:
                k = min(count, len(buf))
                self.recv_into(buf[:k])
                pwrite_all(fd, buf[:k], offset)
                offset, count = offset + k, count - k
            return
        src, (r, w) = self.sock.fileno(), pipe
        while count:
            n = os.splice(src, w, min(count, PIPE_SIZE))
            if not n:
                raise EOFError(f"connection to {self.peer} closed mid-transfer")
            count -= n
            while n:
                k = os.splice(r, fd, n, offset_dst=offset)
                if not k:
                    raise OSError(f"splice(2) into a file moved nothing at offset {offset}")
                offset, n = offset + k, n - k

    def recv_into(self, view: Any) -> None:
        """Reads exactly len(view) raw bytes (after a send_raw message) into `view`, e.g. a
        writable map of an object's file; EOFError when the peer goes first."""
        view = memoryview(view).cast("B")
        got, n = 0, len(view)
        while got < n:
            k = self._reader.readinto(view[got:])
            if not k:
                raise EOFError(f"connection to {self.peer} closed mid-transfer")
            got += k

    def recv(self) -> Any:
        """The next message; EOFError once the peer is gone or close() was called."""
        try:
            return self._recv_frame()
        except (ValueError, AttributeError):  # the buffered reader was closed under us
            if self.closed:
                raise EOFError(f"connection to {self.peer} closed") from None
            raise

    def _recv_frame(self) -> Any:
        head = self._reader.read(4)
        if len(head) < 4:
            raise EOFError(f"connection to {self.peer} closed")
        (n,) = _LEN.unpack(head)
        if n <= CHUNK:
            data = self._reader.read(n)
        elif n > self.max_frame:
            raise self._too_large(n)
        else:
            data = bytearray()
            while len(data) < n:
                chunk = self._reader.read(min(CHUNK, n - len(data)))
                if not chunk:
                    break
                data += chunk
        if len(data) < n:
            raise EOFError(f"connection to {self.peer} closed mid-message")
        return decode(data)

    def _too_large(self, n: int) -> FrameTooLarge:
        return FrameTooLarge(f"{self.peer} announced a frame of {n} bytes, over this connection's "
                             f"maximum of {self.max_frame}; closing the connection")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.turn.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.raw.close()  # else the reader's hold keeps the descriptor open until gc
        self.sock.close()
