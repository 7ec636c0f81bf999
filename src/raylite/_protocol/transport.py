"""Authenticated, framed message connections between raylite processes: the entry points.

    connect(address, token) ──Unix socket (ours only) or TCP──► handshake ──► Connection
    Listener(host, port, token).accept() ─────────────────────► handshake ──► Connection
    connect("inproc://NAME", token) ──────────────────────────────────────► InprocConnection

    handshake.py   both sides prove the cluster token; nothing is unpickled before
    listener.py    handshakes side by side on the accept thread, deadlines, per-peer caps
    connection.py  frames (4-byte length + pickle), the frame limit, polling reads
    inproc.py      the same interface between components of one process, by name

Everything addresses by "host:port", so one machine and many are the same code path.
Daemons bind 127.0.0.1 unless told otherwise. Each listener also binds a Unix socket
named after its host:port; connect() tries it first (a loopback round trip costs
about half as much) when its peer there is our own user, and falls back to TCP.
"""
from __future__ import annotations

import socket
import time

from . import inproc
from .connection import _LEN, CHUNK, MAX_FRAME, SPIN, Connection, FrameTooLarge  # noqa: F401
from .handshake import MAGIC, AuthenticationError, client_handshake, dial_unix, unix_path  # noqa: F401
from .listener import Listener  # noqa: F401


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def source_ip(host: str) -> str:
    """This machine's address on its route to `host`: what a process there reaches us on
    (a UDP connect sends nothing). Loopback for a loopback host, or when there is no route."""
    host = host.strip("[]")
    if host in LOOPBACK or host.startswith("127."):
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            ip = s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    return "127.0.0.1" if ip == "0.0.0.0" else ip


def connect(address: str, token: bytes, timeout: float = 10.0, channel: bytes = b"g",
            max_frame: int = MAX_FRAME) -> Connection:
    """Opens a connection and runs the handshake, all within `timeout` seconds;
    ConnectionError (AuthenticationError when a proof failed) names what failed.
    An "inproc://NAME" address reaches a listener in this process (no handshake)."""
    if address.startswith(inproc.SCHEME):
        return inproc.connect(address, channel)
    deadline = time.monotonic() + timeout
    host, port = split_address(address)
    sock = dial_unix(address)
    if sock is None:
        try:
            sock = socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.01))
        except OSError as e:
            raise ConnectionError(f"Cannot reach a raylite process at {address}: {e}.") from None
    try:
        client_handshake(sock, address, token, channel, deadline)
    except AuthenticationError:
        sock.close()
        raise
    except (OSError, EOFError) as e:
        sock.close()
        raise ConnectionError(f"Handshake with {address} failed: {e}.") from None
    sock.settimeout(None)
    return Connection(sock, address, channel, max_frame)
