"""Authenticated, framed message connections over TCP.

    client                                   server (Listener.accept)
      ── connect ─────────────────────────►
      ◄──────────── MAGIC + 16-byte nonce ──
      ── HMAC-SHA256(token, nonce) ───────►   compare_digest, else b"NO" + close
      ◄─────────────────────────── b"OK" ──
      ── channel byte ────────────────────►   b"g" general, b"t" task pushes
      ── frames: 4-byte length + pickle ──►   (nothing is unpickled before "OK")

Everything addresses by "host:port", so one machine and many are the same
code path. Daemons bind 127.0.0.1 unless told otherwise. Each listener also
binds a Unix socket named after its host:port (abstract namespace on Linux,
else a private directory); connect() tries it first (a loopback round trip costs
about half as much), and falls back to TCP. `send` may be called from any
thread; `recv` from one reader thread per connection, or `recv_some`/`poll` by
whichever thread holds the connection's read turn (read_turn.py), which also
handles what they return from `inbox` (decoded, not yet handled) and sleeps in
`wait_readable` (reads nothing, so an interrupt there loses nothing).

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

import hashlib
import hmac
import os
import pickle
import select
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import deque
from typing import Any

from .read_turn import ReadTurn

MAGIC = b"RLT1"
_LEN = struct.Struct("!I")
_HANDSHAKE_TIMEOUT = 10.0
SPIN = 0.0002  # seconds a reader polls before it sleeps, while its peer answers that fast


class AuthenticationError(ConnectionError):
    """The peer did not prove it knows the cluster token."""


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


_ABSTRACT = sys.platform.startswith("linux")


def unix_path(address: str) -> str:
    """The Unix socket a listener at `address` also binds on this machine. On Linux it is
    in the abstract namespace: no file, so a killed process leaves nothing behind."""
    if _ABSTRACT:
        return f"\0raylite_{os.getuid()}_{address}"
    d = os.path.join(tempfile.gettempdir(), f"raylite_sock_{os.getuid()}")
    return os.path.join(d, address.replace(":", "_"))


def _digest(token: bytes, nonce: bytes) -> bytes:
    return hmac.new(token, nonce, hashlib.sha256).digest()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed during handshake")
        buf += chunk
    return buf


class Connection:
    """One framed, authenticated message stream."""

    def __init__(self, sock: socket.socket, peer: str, channel: bytes = b"g"):
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.peer = peer
        self.channel = channel
        self._reader = sock.makefile("rb", buffering=1 << 16)
        self._send_lock = threading.Lock()
        self._buf = bytearray()   # for recv_ready()/recv_some(): never mixed with recv() on one connection
        self.turn = ReadTurn()
        self.inbox: deque = deque()  # decoded, not yet handled: the turn's holder handles them
        self.quick = True         # the peer's last answer came within SPIN: poll before sleeping
        self.answered = 0.0       # when we last answered it (perf_counter), to time its reply
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
                break
            out.append(pickle.loads(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
        del buf[:pos]
        return out

    def send(self, msg: Any) -> None:
        data = pickle.dumps(msg, 5)
        with self._send_lock:
            self.sock.sendall(_LEN.pack(len(data)) + data)

    def send_many(self, msgs: list) -> None:
        payload = b"".join(_LEN.pack(len(d)) + d for d in (pickle.dumps(m, 5) for m in msgs))
        with self._send_lock:
            self.sock.sendall(payload)

    def recv(self) -> Any:
        """The next message; EOFError once the peer is gone."""
        head = self._reader.read(4)
        if len(head) < 4:
            raise EOFError(f"connection to {self.peer} closed")
        (n,) = _LEN.unpack(head)
        data = self._reader.read(n)
        if len(data) < n:
            raise EOFError(f"connection to {self.peer} closed mid-message")
        return pickle.loads(data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.turn.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def connect(address: str, token: bytes, timeout: float = 10.0, channel: bytes = b"g") -> Connection:
    """Opens and authenticates a connection; ConnectionError names what failed."""
    host, port = split_address(address)
    sock = None
    path = unix_path(address)
    if _ABSTRACT or os.path.exists(path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            sock = None
    if sock is None:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ConnectionError(f"Cannot reach a raylite process at {address}: {e}.") from None
    try:
        head = _recv_exact(sock, len(MAGIC) + 16)
        if head[:4] != MAGIC:
            raise ConnectionError(f"{address} is not a raylite process (bad greeting).")
        sock.sendall(_digest(token, head[4:]))
        verdict = _recv_exact(sock, 2)
    except (OSError, EOFError) as e:
        sock.close()
        raise ConnectionError(f"Handshake with {address} failed: {e}.") from None
    if verdict != b"OK":
        sock.close()
        raise AuthenticationError(f"{address} refused this process's cluster token. Use the token "
                                  "of the cluster you join (RAYLITE_CLUSTER_TOKEN).")
    sock.settimeout(None)
    sock.sendall(channel)
    return Connection(sock, address, channel)


class Listener:
    """A listening socket whose accept() returns authenticated Connections."""

    def __init__(self, host: str, port: int, token: bytes):
        self.token = token
        self.sock = socket.create_server((host, port), backlog=512)
        h, p = self.sock.getsockname()[:2]
        self.address = f"{h}:{p}"
        self.closed = False
        self.unix_path = unix_path(self.address)
        if not _ABSTRACT:
            os.makedirs(os.path.dirname(self.unix_path), mode=0o700, exist_ok=True)
            try:
                os.unlink(self.unix_path)  # a stale one from a dead process with this port
            except FileNotFoundError:
                pass
        self.usock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.usock.bind(self.unix_path)
        if not _ABSTRACT:
            os.chmod(self.unix_path, 0o600)
        self.usock.listen(512)

    def accept(self) -> Connection | None:
        """The next authenticated connection; None for a peer that failed the handshake."""
        ready, _, _ = select.select([self.sock, self.usock], [], [])
        listening = ready[0]
        sock, addr = listening.accept()
        if listening is self.usock:
            addr = ("unix", self.address)
        try:
            sock.settimeout(_HANDSHAKE_TIMEOUT)
            nonce = os.urandom(16)
            sock.sendall(MAGIC + nonce)
            answer = _recv_exact(sock, 32)
            if not hmac.compare_digest(answer, _digest(self.token, nonce)):
                sock.sendall(b"NO")
                sock.close()
                return None
            sock.sendall(b"OK")
            channel = _recv_exact(sock, 1)
            sock.settimeout(None)
        except (OSError, EOFError):
            sock.close()
            return None
        return Connection(sock, f"{addr[0]}:{addr[1]}", channel)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for s in (self.sock, self.usock):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            if not _ABSTRACT:
                try:
                    os.unlink(self.unix_path)
                except FileNotFoundError:
                    pass
