"""Listener: accepts connections and runs their handshakes side by side, never waiting on one.

    TCP socket  ─┐                      pending handshakes (ServerHandshake), each stepped
    Unix socket ─┴─► accept() ──poll──►  only when its socket is ready; one deadline for
                     (the caller's       the whole handshake ──proven──► Connection, returned
                      accept thread)                         └─failed, late, evicted─► closed,
                                                                 logged (RateLimitedLog)

Everything runs on the thread that calls accept(): no thread per peer, and a peer
that sends nothing, or a byte at a time, costs one pending entry until its deadline
(DEADLINE seconds for the whole handshake), never the time of anyone else.

Caps. Pending handshakes are grouped by peer: the source IP for TCP, the uid
(SO_PEERCRED) for the Unix socket. A peer with PER_PEER pending handshakes that
opens another loses its oldest one; when MAX_PENDING are pending in all, the oldest
of the peer with the most goes. An honest client completes its handshake within a
round trip, so only a peer opening connections faster than that can push it out.

More TCP ports (listen_also: the head's Ray client port) are more doors to the same
room: their connections go through the same handshakes, caps and token.

The Unix socket's name may be taken: on Linux any user can bind any abstract name.
The listener then serves TCP only (and says so in the log); clients reach it there,
since they refuse a Unix peer that is not their own user (handshake.dial_unix).

accept() and close() may be called from different threads; the sockets are closed
by whichever of them runs last, never under a poll() that is still using them.
"""
from __future__ import annotations

import collections
import errno
import logging
import os
import select
import socket
import threading
import time

from .connection import MAX_FRAME, Connection
from .handshake import ABSTRACT, Refused, ServerHandshake, peer_uid, private_socket_dir, unix_path
from .ratelog import RateLimitedLog

log = logging.getLogger("raylite.transport")

DEADLINE = 5.0       # seconds for a peer's whole handshake
PER_PEER = 64        # handshakes pending from one IP or uid
MAX_PENDING = 512    # handshakes pending in all
_ACCEPT_BATCH = 64   # connections accepted per wake-up before pending handshakes get a turn
_PEER_ERRORS = (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.EHOSTUNREACH)
_IN, _OUT = select.POLLIN, select.POLLOUT


class Listener:
    """A listening TCP socket (and Unix socket) whose accept() returns authenticated Connections."""

    def __init__(self, host: str, port: int, token: bytes, *, deadline: float = DEADLINE,
                 per_peer: int = PER_PEER, max_pending: int = MAX_PENDING,
                 max_frame: int = MAX_FRAME):
        self.token = token
        self.deadline, self.per_peer, self.max_pending = deadline, per_peer, max_pending
        self.max_frame = max_frame
        self.sock = socket.create_server((host, port), backlog=512)
        self.sock.setblocking(False)
        h, p = self.sock.getsockname()[:2]
        self.address = f"{h}:{p}"
        self.unix_path = unix_path(self.address)
        self.usock = self._bind_unix()
        self.also: list[socket.socket] = []  # more TCP ports (listen_also)
        self.closed = False
        self.refusals = 0            # handshakes refused so far (failed, late or evicted)
        self.refused_log = RateLimitedLog(log)
        self._pending: dict[int, ServerHandshake] = {}           # fd -> handshake, oldest first
        self._by_peer: dict[str, dict[int, ServerHandshake]] = {}  # key -> its pending, oldest first
        self._ready: collections.deque[Connection] = collections.deque()
        self._poll: select.poll | None = None  # made by the first accept(): a forked child never has one
        self._lock = threading.Lock()
        self._accepting = False

    def _bind_unix(self) -> socket.socket | None:
        if not ABSTRACT and not private_socket_dir(create=True):
            log.warning("serving %s on TCP only: %s is not a private directory of this user",
                        self.address, os.path.dirname(self.unix_path))
            return None
        if not ABSTRACT:
            try:
                os.unlink(self.unix_path)  # a stale one from a dead process with this port
            except FileNotFoundError:
                pass
        usock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            usock.bind(self.unix_path)
            if not ABSTRACT:
                os.chmod(self.unix_path, 0o600)
            usock.listen(512)
        except OSError as e:
            usock.close()
            log.warning("serving %s on TCP only: its Unix socket name is taken (%s); another "
                        "user may be squatting it", self.address, e.strerror or e)
            return None
        usock.setblocking(False)
        return usock

    def listen_also(self, host: str, port: int) -> str:
        """Listens on one more TCP port (0: any free one) and returns its "host:port"; called
        before the first accept(). Its connections are this listener's: the same handshake,
        caps and token. OSError if it cannot bind."""
        if self._poll is not None or self.closed:
            raise RuntimeError("listen_also() comes before the listener's first accept()")
        sock = socket.create_server((host, port), backlog=512)
        sock.setblocking(False)
        self.also.append(sock)
        h, p = sock.getsockname()[:2]
        return f"{h}:{p}"

    @property
    def _listening(self) -> list[socket.socket]:
        return [s for s in (self.sock, self.usock, *self.also) if s is not None]

    # -- accepting -------------------------------------------------------------
    def accept(self) -> Connection:
        """The next authenticated connection; OSError once the listener is closed.
        One thread at a time calls it (the owner's accept thread)."""
        with self._lock:
            if self.closed:
                raise OSError(errno.EBADF, "the listener is closed")
            self._accepting = True
            if self._poll is None:
                self._poll = select.poll()
                for s in self._listening:
                    self._poll.register(s.fileno(), _IN)
        try:
            while not self._ready:
                self._round()
            return self._ready.popleft()
        finally:
            with self._lock:
                self._accepting = False
                if self.closed:
                    self._close_all()

    def _round(self) -> None:
        """One poll: accepts what is waiting, steps the handshakes that can move, expires late ones."""
        timeout = None
        if self._pending:
            oldest = next(iter(self._pending.values()))  # all have one duration: the first ends first
            timeout = max(0, int((oldest.deadline - time.monotonic()) * 1000) + 1)
        events = self._poll.poll(timeout)
        if self.closed:
            raise OSError(errno.EBADF, "the listener is closed")
        for fd, _ in events:
            h = self._pending.get(fd)
            if h is not None:
                self._step(h)
            else:
                for s in self._listening:
                    if s.fileno() == fd:
                        self._accept_batch(s)
        now = time.monotonic()
        while self._pending:
            h = next(iter(self._pending.values()))
            if h.deadline > now:
                break
            self._refuse(h, f"it did not finish the handshake within {self.deadline:g} s")

    def _accept_batch(self, listening: socket.socket) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, addr = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if self.closed:
                    raise
                if e.errno in _PEER_ERRORS:  # that one connection failed before we took it
                    continue
                # Out of file descriptors or memory, or worse: never let the accept thread
                # die of it; wait a little (the error may last) and try again.
                self.refused_log.warning("accept", "cannot accept connections on %s: %s",
                                         self.address, e.strerror or e)
                time.sleep(0.05)
                return
            sock.setblocking(False)
            if listening is self.usock:
                uid = peer_uid(sock)
                key = "unix" if uid is None else f"uid {uid}"
                peer = f"unix:{self.address}"
            else:
                key, peer = addr[0], f"{addr[0]}:{addr[1]}"
            self._admit(ServerHandshake(sock, key, peer, time.monotonic() + self.deadline))

    def _admit(self, h: ServerHandshake) -> None:
        mine = self._by_peer.setdefault(h.key, {})
        if len(mine) >= self.per_peer:
            self._refuse(next(iter(mine.values())), f"{self.per_peer} of its handshakes were pending")
        elif len(self._pending) >= self.max_pending:
            biggest = max(self._by_peer.values(), key=len)
            self._refuse(next(iter(biggest.values())),
                         f"{self.max_pending} handshakes were pending and it had the most")
        fd = h.sock.fileno()
        self._pending[fd] = mine[fd] = h
        self._by_peer[h.key] = mine  # _refuse may have dropped the peer's (then empty) group
        self._poll.register(fd, _IN)
        self._step(h)

    def _step(self, h: ServerHandshake) -> None:
        try:
            done = h.step(self.token)
        except Refused as e:
            self._refuse(h, str(e))
            return
        fd = h.sock.fileno()
        if not done:
            self._poll.modify(fd, _OUT if h.wants_write else _IN)
            return
        self._forget(h)
        try:
            h.sock.setblocking(True)
            conn = Connection(h.sock, h.peer, h.channel, self.max_frame)
        except OSError:  # the peer went away between its proof and now
            h.sock.close()
            return
        self._ready.append(conn)

    def _refuse(self, h: ServerHandshake, why: str) -> None:
        self._forget(h)
        h.sock.close()
        self.refusals += 1
        if not self.closed:  # once closing, peers cut off mid-handshake are ours going away
            self.refused_log.warning(h.key, "refused a connection to %s from %s: %s",
                                     self.address, h.key, why)

    def _forget(self, h: ServerHandshake) -> None:
        fd = h.sock.fileno()
        self._poll.unregister(fd)
        del self._pending[fd]
        mine = self._by_peer[h.key]
        del mine[fd]
        if not mine:
            del self._by_peer[h.key]

    # -- closing ---------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for s in self._listening:
                try:
                    s.shutdown(socket.SHUT_RDWR)  # wakes an accept() blocked in poll()
                except OSError:
                    pass
            if not self._accepting:
                self._close_all()

    def _close_all(self) -> None:
        for s in self._listening:
            s.close()
        for h in list(self._pending.values()):
            h.sock.close()
        self._pending.clear()
        self._by_peer.clear()
        while self._ready:
            self._ready.popleft().close()
        if not ABSTRACT and self.usock is not None:
            try:
                os.unlink(self.unix_path)
            except FileNotFoundError:
                pass
