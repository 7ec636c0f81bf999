"""The handshake: each side proves it knows the cluster token before anything is unpickled.

    client (connect)                                      server (Listener)
      ── TCP or Unix connect ──────────────────────────►
      ◄─────────────────────────── MAGIC + server nonce Ns (16 bytes)
      ── client nonce Nc (16) + channel (1) + client proof (32) ──►
                                 compare_digest, else "NO" and close
      ◄─────────────────────────────── "OK" + server proof (32)
      compare_digest, else close
      ── frames ───────────────────────────────────────►  (the first byte either side unpickles)

    client proof = HMAC-SHA256(token, "raylite client proof" | MAGIC | Ns | Nc | channel)
    server proof = HMAC-SHA256(token, "raylite server proof" | MAGIC | Ns | Nc | channel)

Both proofs bind both nonces, so neither can be replayed on another connection; they
carry different labels, so a fake server cannot reflect the client's proof back as its
own. The token never travels. The channel byte (b"g" general, b"t" task pushes, b"s"
a node daemon joining the head's GCS) is bound into the proofs too. What the handshake
cannot stop is a relay: a process that a client was told to dial and that forwards the
bytes to the real server. Clients dial
only addresses they got from the cluster itself or from their user.

The client side (`client_handshake`) blocks with one deadline for the whole exchange.
The server side (`ServerHandshake`) is a non-blocking state machine that the Listener
steps whenever the socket is ready, so no peer can hold up another one.

Unix sockets. On Linux a listener also binds an abstract Unix socket named after its
address (no file, nothing left behind by a killed process). Any user can bind any
abstract name, so a client checks the peer's uid (SO_PEERCRED) and uses the socket only
when the server is its own user, else it dials TCP. Elsewhere the socket is a file in
<tmp>/raylite_sock_<uid>, used only while that directory is ours and private (0700).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import sys
import time

from .. import _private_files as private
from .. import exceptions

MAGIC = b"RLT2"  # RLT1 had the client prove itself only
NONCE = 16
PROOF = 32
CLIENT_LABEL = b"raylite client proof"
SERVER_LABEL = b"raylite server proof"
CHANNELS = (b"g", b"t", b"s")
GREETING = len(MAGIC) + NONCE
ANSWER = NONCE + 1 + PROOF          # what the client sends: Nc, channel, its proof
ABSTRACT = sys.platform.startswith("linux")
_CRED = struct.Struct("3i")         # struct ucred: pid, uid, gid


class AuthenticationError(exceptions.AuthenticationError, ConnectionError):
    """The peer did not prove it knows the cluster token (or refused ours, or does not
    speak this version of the handshake). Public as raylite.exceptions.AuthenticationError
    (Ray's name); also a ConnectionError."""


def proof(token: bytes, label: bytes, server_nonce: bytes, client_nonce: bytes, channel: bytes) -> bytes:
    return hmac.new(token, label + MAGIC + server_nonce + client_nonce + channel, hashlib.sha256).digest()


# -- Unix sockets ----------------------------------------------------------------
def unix_path(address: str) -> str:
    """The Unix socket a listener at `address` also binds on this machine."""
    if ABSTRACT:
        return f"\0raylite_{os.getuid()}_{address}"
    return os.path.join(_socket_dir(), address.replace(":", "_"))


def _socket_dir() -> str:
    import tempfile  # only without abstract sockets (not Linux): not at every process's start

    return os.path.join(tempfile.gettempdir(), f"raylite_sock_{os.getuid()}")


def private_socket_dir(create: bool) -> bool:
    """Whether the (non-Linux) socket directory exists, is ours and is private; `create`
    makes it first when missing. Another user may have made it first to catch our sockets."""
    d = _socket_dir()
    try:
        if create:
            private.make_dir(d)
            return True
        return private.check_dir(d)
    except (private.NotPrivateError, OSError):
        return False


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket; None where it cannot be known."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        return _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))[1]
    except OSError:
        return None


def dial_unix(address: str) -> socket.socket | None:
    """A Unix connection to this machine's listener at `address`, when one runs as our own
    user; None otherwise (the caller dials TCP). Never waits: a listener whose backlog is
    full (one that never accepts, say) is passed over at once."""
    path = unix_path(address)
    if not ABSTRACT and not (os.path.exists(path) and private_socket_dir(create=False)):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    if ABSTRACT and peer_uid(sock) != os.getuid():
        sock.close()  # another user holds the name: never talk to it
        return None
    return sock


# -- the client side ---------------------------------------------------------------
def client_handshake(sock: socket.socket, address: str, token: bytes, channel: bytes,
                     deadline: float) -> None:
    """Runs the client's side on a connected socket, all of it before `deadline`
    (time.monotonic()). AuthenticationError when a proof (or the greeting) is wrong;
    OSError or EOFError when the connection fails."""
    greeting = _recv_exact(sock, GREETING, deadline)
    if greeting[:len(MAGIC)] != MAGIC:
        raise AuthenticationError(f"{address} is not a raylite process of this version (it "
                                  f"greeted with {greeting[:len(MAGIC)]!r}, not {MAGIC!r}).")
    server_nonce, client_nonce = greeting[len(MAGIC):], os.urandom(NONCE)
    sock.sendall(client_nonce + channel + proof(token, CLIENT_LABEL, server_nonce, client_nonce, channel))
    verdict = _recv_exact(sock, 2, deadline)
    if verdict == b"NO":
        raise AuthenticationError(f"{address} refused this process's cluster token. Use the token "
                                  "of the cluster you join (RAYLITE_CLUSTER_TOKEN).")
    answer = _recv_exact(sock, PROOF, deadline) if verdict == b"OK" else b""
    if not hmac.compare_digest(answer, proof(token, SERVER_LABEL, server_nonce, client_nonce, channel)):
        raise AuthenticationError(f"{address} did not prove it knows the cluster token: it is not "
                                  "the raylite cluster you meant (another program, or another "
                                  "user's, listens there). Nothing it sent was loaded.")


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed during the handshake")
        buf += chunk
    return buf


# -- the server side ---------------------------------------------------------------
class Refused(Exception):
    """A handshake that failed; the text says why (for the listener's log)."""


class ServerHandshake:
    """One accepted socket's handshake, stepped by the listener without ever blocking.

    step() sends what is due, reads what has arrived and returns True once the peer
    has proven itself and our proof is sent (`channel` is then set); False while it
    waits (`wants_write` says for what); Refused when the peer failed."""

    __slots__ = ("sock", "key", "peer", "deadline", "nonce", "out", "got", "channel", "ok")

    def __init__(self, sock: socket.socket, key: str, peer: str, deadline: float):
        self.sock, self.key, self.peer, self.deadline = sock, key, peer, deadline
        self.nonce = os.urandom(NONCE)
        self.out = MAGIC + self.nonce
        self.got = b""
        self.channel = b""
        self.ok = False

    @property
    def wants_write(self) -> bool:
        return bool(self.out)

    def step(self, token: bytes) -> bool:
        try:
            if self.out:
                self.out = self.out[self.sock.send(self.out):]
            if self.ok:
                return not self.out
            if not self.out:
                self._read(token)
                if self.ok:
                    self.out = self.out[self.sock.send(self.out):]
                    return not self.out
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            raise Refused(f"the connection failed during the handshake ({e.strerror or e})") from None
        return False

    def _read(self, token: bytes) -> None:
        chunk = self.sock.recv(ANSWER - len(self.got))
        if not chunk:
            raise Refused("it closed the connection during the handshake")
        self.got += chunk
        if len(self.got) < ANSWER:
            return
        client_nonce, channel, answer = self.got[:NONCE], self.got[NONCE:NONCE + 1], self.got[NONCE + 1:]
        if channel not in CHANNELS or not hmac.compare_digest(
                answer, proof(token, CLIENT_LABEL, self.nonce, client_nonce, channel)):
            try:
                self.sock.send(b"NO")
            except OSError:
                pass
            raise Refused("it did not prove it knows the cluster token")
        self.channel, self.ok = channel, True
        self.out = b"OK" + proof(token, SERVER_LABEL, self.nonce, client_nonce, channel)
