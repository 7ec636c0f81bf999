"""The frame limit (connection.py): a length over max_frame is refused before its body is
read, on both read paths; a large frame under it is read a chunk at a time."""
import socket
import threading

import pytest

from raylite._protocol import transport
from raylite._protocol.connection import CHUNK, Connection, FrameTooLarge


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ca, cb = Connection(a, "a"), Connection(b, "b", max_frame=4 * CHUNK)
    yield ca, cb
    ca.close()
    cb.close()


def test_recv_refuses_a_length_over_the_limit_without_waiting_for_the_body(pair):
    ca, cb = pair
    ca.sock.sendall(transport._LEN.pack(4 * CHUNK + 1))  # and no body: it must not wait for one
    with pytest.raises(FrameTooLarge, match="over this connection's maximum"):
        cb.recv()


def test_recv_some_refuses_a_length_over_the_limit_without_waiting_for_the_body(pair):
    ca, cb = pair
    ca.sock.sendall(transport._LEN.pack(2**32 - 1) + b"\x80\x05")
    with pytest.raises(FrameTooLarge):
        cb.recv_some()


def test_a_frame_larger_than_a_chunk_arrives_whole(pair):
    ca, cb = pair
    value = bytes(range(256)) * (3 * CHUNK // 256 + 7)
    t = threading.Thread(target=ca.send, args=(value,))   # more than the socket buffer holds
    t.start()
    assert cb.recv() == value
    t.join()
    t = threading.Thread(target=lambda: ca.send_many([value, "after"]))
    t.start()
    got = []
    while len(got) < 2:
        got += cb.recv_some()
    t.join()
    assert got == [value, "after"]

