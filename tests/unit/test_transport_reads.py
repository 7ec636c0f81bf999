"""Reading framed messages: whole frames only, polling before sleeping (transport.py)."""
import pickle
import socket
import threading
import time

import pytest

from raylite._protocol import transport
from raylite._protocol.transport import Connection


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ca, cb = Connection(a, "a"), Connection(b, "b")
    yield ca, cb
    ca.close()
    cb.close()


def test_a_frame_split_across_reads_comes_out_whole(pair):
    ca, cb = pair
    data = pickle.dumps({"x": list(range(1000))}, 5)
    frame = transport._LEN.pack(len(data)) + data
    ca.sock.sendall(frame[:3])
    assert cb.recv_ready() == []                   # not even the length yet
    ca.sock.sendall(frame[3:100])
    assert cb.recv_ready() == []                   # half a body is kept, not returned
    ca.sock.sendall(frame[100:] + frame)
    assert cb.recv_some() == [{"x": list(range(1000))}] * 2


def test_poll_gives_up_after_its_time_and_keeps_nothing_back(pair):
    ca, cb = pair
    t0 = time.perf_counter()
    assert cb.poll(0.01) == []
    assert time.perf_counter() - t0 >= 0.01
    ca.send("hello")
    assert cb.poll(1.0) == ["hello"]


def test_recv_some_sleeps_once_polling_ends(pair):
    ca, cb = pair
    timer = threading.Timer(20 * transport.SPIN, ca.send, ("late",))
    timer.start()
    assert cb.recv_some(spin=True) == ["late"]     # polled SPIN, then blocked until it came
    timer.join()


def test_recv_some_reports_a_closed_peer(pair):
    ca, cb = pair
    ca.send(1)
    ca.close()
    assert cb.recv_some(spin=True) == [1]
    with pytest.raises(EOFError):
        cb.recv_some(spin=True)


def test_close_releases_the_descriptor_at_once(pair):
    ca, cb = pair
    cb.close()
    assert cb.sock.fileno() == -1                  # closed now, not when gc finds the reader
    with pytest.raises(EOFError):
        cb.recv()                                  # a read after close is an end, not a crash


def test_a_blocking_recv_ends_with_eof_when_the_connection_is_closed(pair):
    ca, cb = pair
    got = []

    def read():
        try:
            cb.recv()
        except BaseException as e:  # noqa: BLE001 - the test looks at what it was
            got.append(e)
    t = threading.Thread(target=read)
    t.start()
    time.sleep(0.02)
    cb.close()
    t.join(1)
    assert len(got) == 1 and isinstance(got[0], EOFError), got
