"""Raw payloads between files (connection.py): send_file sends a file's bytes after a
frame (sendfile), recv_file writes them into a file at an offset (splice through a pipe,
after what the reader had buffered), and the next frame is read intact after them."""
import os
import socket
import threading

import pytest

from raylite._protocol import connection
from raylite._protocol.connection import Connection, make_pipe

SIZE = 3 * connection.PIPE_SIZE + 12345     # several pipe-fulls and a ragged end


@pytest.fixture(params=["unix", "tcp"])
def pair(request):
    if request.param == "unix":
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
        listener.close()
    ca, cb = Connection(a, "a"), Connection(b, "b")
    yield ca, cb
    ca.close()
    cb.close()


def _file(tmp_path, name: str, data: bytes) -> int:
    fd = os.open(tmp_path / name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.pwrite(fd, data, 0)
    return fd


def _check_round_trip(ca, cb, tmp_path):
    data = os.urandom(SIZE)
    src = _file(tmp_path, "src", data)
    dst = _file(tmp_path, "dst", b"\xee" * (SIZE + 100))   # a recycled file: old bytes in it
    pipe = make_pipe()

    def send():
        ca.send("first")
        ca.send_file(("chunk", 0), src, 0, 1000)          # a small piece: it is buffered whole
        ca.send_file(("chunk", 1000), src, 1000, SIZE - 1000)
        ca.send("after")

    t = threading.Thread(target=send)
    t.start()
    try:
        assert cb.recv() == "first"
        assert cb.recv() == ("chunk", 0)
        cb.recv_file(dst, 100, 1000, pipe)
        assert cb.recv() == ("chunk", 1000)
        cb.recv_file(dst, 1100, SIZE - 1000, pipe)
        assert cb.recv() == "after"                       # framing intact after the payloads
    finally:
        t.join()
        for fd in pipe:
            os.close(fd)
    got = os.pread(dst, SIZE + 100, 0)
    os.close(src)
    os.close(dst)
    assert got[:100] == b"\xee" * 100 and got[100:] == data


def test_a_file_travels_into_another_file_at_an_offset(pair, tmp_path):
    _check_round_trip(*pair, tmp_path)


def test_without_splice_it_goes_through_one_buffer(pair, tmp_path, monkeypatch):
    monkeypatch.delattr(os, "splice", raising=False)
    _check_round_trip(*pair, tmp_path)


def test_a_peer_that_closes_mid_payload_is_an_eof(pair, tmp_path):
    ca, cb = pair
    dst = _file(tmp_path, "dst", b"")
    pipe = make_pipe()
    try:
        ca.send("chunk")
        ca.sock.sendall(b"x" * 5000)
        ca.close()
        assert cb.recv() == "chunk"
        with pytest.raises(EOFError, match="closed mid-transfer"):
            cb.recv_file(dst, 0, 10_000, pipe)
        assert os.pread(dst, 10_000, 0) == b"x" * 5000
    finally:
        for fd in (dst, *pipe):
            os.close(fd)
