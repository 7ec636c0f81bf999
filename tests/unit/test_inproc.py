"""The in-process transport (_protocol/inproc.py): order, batches, closes, names, forks."""
import os
import threading

import pytest

from raylite._protocol import inproc, messages as m
from raylite._protocol import transport


@pytest.fixture
def hub():
    return inproc.Hub()


@pytest.fixture
def pair():
    a, b = inproc.pipe("a", "b")
    yield a, b
    a.close()
    b.close()


def test_messages_arrive_in_order_one_at_a_time_or_as_a_batch(pair):
    a, b = pair
    for i in range(3):
        a.send(i)
    a.send_many([3, 4])
    assert b.recv() == 0
    assert b.recv_some() == [1, 2, 3, 4]
    b.send("back")
    assert a.recv_ready() == ["back"] and a.recv_ready() == []
    assert (a.peer, b.peer) == ("b", "a")


def test_poll_waits_its_time_then_returns_nothing(pair):
    a, b = pair
    assert b.poll(0.002) == []
    threading.Timer(0.002, a.send, ("late",)).start()
    assert b.poll(1.0) == ["late"]


def test_a_blocked_reader_wakes_for_a_message_and_for_a_close(pair):
    a, b = pair
    got = []
    t = threading.Thread(target=lambda: got.append(b.recv()))
    t.start()
    a.send("x")
    t.join(1)
    assert got == ["x"]
    t = threading.Thread(target=b.wait_readable)
    t.start()
    a.close()
    t.join(1)
    assert not t.is_alive()


def test_a_close_ends_both_directions_after_what_was_sent(pair):
    a, b = pair
    a.send(1)
    a.send(2)
    a.close()
    assert b.recv() == 1 and b.recv_some() == [2]   # what was sent before the close arrives
    with pytest.raises(EOFError):
        b.recv_some()
    with pytest.raises(EOFError):
        b.recv()
    with pytest.raises(OSError):                     # BrokenPipeError, as a socket's
        b.send(3)
    with pytest.raises(OSError):
        a.send(3)
    with pytest.raises(EOFError):                    # our own closed end reads nothing more
        a.recv_ready()
    a.close()                                        # twice is fine
    assert a.closed and not b.closed


def test_it_speaks_the_connection_interface_the_shells_use(pair):
    a, _ = pair
    for name in ("send", "send_many", "recv", "recv_ready", "recv_some", "poll", "wait_readable",
                 "close", "peer", "channel", "inbox", "turn", "quick", "answered", "closed"):
        assert hasattr(a, name), name
    assert getattr(a, "sock", None) is None  # the daemon's Outbox hands it messages directly


def test_listen_and_connect_by_name(hub):
    listener = hub.listen("inproc://gcs")
    client = hub.connect("inproc://gcs", channel=b"t")
    server = listener.accept(timeout=1)
    assert server.channel == client.channel == b"t"
    assert server.peer.startswith("inproc://gcs#") and client.peer == "inproc://gcs"
    msg = m.GetActorInfo(7, None, "a", "ns", True)
    client.send(msg)
    assert server.recv() is msg                    # no copy unless the hub serializes
    server.close()
    client.close()
    listener.close()


def test_names_are_unique_and_freed_on_close(hub):
    listener = hub.listen("inproc://x")
    with pytest.raises(OSError, match="already in use"):
        hub.listen("inproc://x")
    pending = hub.connect("inproc://x")            # never accepted
    listener.close()
    with pytest.raises(EOFError):
        pending.recv()                             # its server end went with the listener
    with pytest.raises(OSError):
        listener.accept(timeout=0)
    with pytest.raises(ConnectionError, match="nothing listens"):
        hub.connect("inproc://x")
    hub.listen("inproc://x").close()               # the name is free again


def test_accept_times_out_and_bad_names_are_refused(hub):
    listener = hub.listen("inproc://quiet")
    with pytest.raises(TimeoutError):
        listener.accept(timeout=0.001)
    listener.close()
    with pytest.raises(ValueError, match="not an in-process address"):
        hub.listen("127.0.0.1:5")
    with pytest.raises(ValueError):
        hub.connect("inproc://")


def test_a_serializing_hub_copies_like_the_wire():
    hub = inproc.Hub(serialize=True)
    listener = hub.listen("inproc://s")
    client = hub.connect("inproc://s")
    server = listener.accept(0)
    msg = m.KillActor(b"a" * 16, True)
    client.send(msg)
    got = server.recv()
    assert got == msg and got is not msg
    with pytest.raises(Exception):                 # what a socket could not carry fails here too
        client.send(lambda: None)
    for c in (client, server, listener):
        c.close()


def test_transport_connect_reaches_in_process_listeners():
    listener = inproc.listen("inproc://test-transport")
    try:
        client = transport.connect("inproc://test-transport", b"token ignored in process")
        server = listener.accept(0)
        client.send("hi")
        assert server.recv() == "hi"
        client.close()
        server.close()
    finally:
        listener.close()


def test_a_forked_child_gets_its_own_hub(monkeypatch):
    h = inproc.hub()
    assert inproc.hub() is h
    monkeypatch.setattr(h, "pid", h.pid + 1)  # the parent's hub, as a forked child sees it
    assert inproc.hub() is not h and inproc.hub().pid == os.getpid()


def test_a_direct_pipe_hands_each_message_to_the_receivers_handler_on_the_senders_thread():
    a, b = inproc.direct_pipe("a", "b")
    got, closed = [], []
    a.send("early")                                # before b names its handler: kept, in order
    b.handle_with(lambda conn, msg: got.append((conn, msg, threading.get_ident())), closed.append)
    a.send_many(["x", "y"])
    me = threading.get_ident()
    assert got == [(b, "early", me), (b, "x", me), (b, "y", me)]
    a.handle_with(lambda conn, msg: conn.send(msg.upper()) if msg == "ping" else got.append(msg))
    b.send("ping")                                 # a answers at once, still on this thread
    assert got[-1] == (b, "PING", me)
    a.close()
    assert closed == [b] and b.closed and a.closed  # both ends closed, b's on_close ran once
    with pytest.raises(OSError):
        b.send("late")
    b.close()
    assert closed == [b]


def test_a_serializing_direct_pipe_copies():
    a, b = inproc.direct_pipe(serialize=True)
    got = []
    b.handle_with(lambda conn, msg: got.append(msg))
    msg = m.KillActor(b"a" * 16, True)
    a.send(msg)
    assert got == [msg] and got[0] is not msg
