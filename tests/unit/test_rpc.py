"""rpc.py: one endpoint per process dispatches by type, matches replies to calls, refuses
what it does not handle, survives its handlers, and fails the calls of a lost connection."""
import logging
import socket
import threading
import time

import pytest

from raylite._protocol import messages as m
from raylite._protocol.rpc import Endpoint
from raylite._protocol.transport import Connection

ID = bytes(16)


@pytest.fixture
def pair():
    """Two Connections over a socketpair: `a` talks to the peer "b", and back."""
    sa, sb = socket.socketpair()
    a, b = Connection(sa, "b"), Connection(sb, "a")
    yield a, b
    a.close()
    b.close()


def pump(ep, conn, n=1):
    """Reads `n` messages from `conn` and delivers them (at most a second)."""
    got = []
    end = time.monotonic() + 1
    while len(got) < n and time.monotonic() < end:
        got += conn.poll(0.01)
    assert len(got) == n, got
    for msg in got:
        ep.deliver(conn, msg)


def test_messages_go_to_the_handler_of_their_type(pair):
    a, b = pair
    ep = Endpoint()
    seen = []
    ep.on(m.AddBorrower, lambda conn, msg: seen.append(("add", conn, msg.object_id)))
    ep.on(m.RemoveBorrower, lambda conn, msg: seen.append(("remove", conn, msg.object_id)))
    b.send_many([m.AddBorrower(b"1"), m.RemoveBorrower(b"2"), m.AddBorrower(b"3")])
    pump(ep, a, 3)
    assert seen == [("add", a, b"1"), ("remove", a, b"2"), ("add", a, b"3")]


def _object_server():
    """(caller, server, what the server was asked): a server that notes GetObject calls."""
    caller, server, asked = Endpoint(), Endpoint(), []
    server.on(m.GetObject, lambda conn, msg: asked.append(msg))
    return caller, server, asked


def test_replies_complete_their_own_calls_in_any_order(pair):
    a, b = pair
    caller, server, asked = _object_server()
    first = caller.call(a, m.GetObject(0, b"x"))
    second = caller.call(a, m.GetObject(0, b"y"))
    pump(server, b, 2)
    assert [q.object_id for q in asked] == [b"x", b"y"] and asked[0].req != asked[1].req
    assert caller.pending() == 2 and not first.done
    server.reply(b, asked[1], m.ObjectValue(0, b"Y", None))   # answered the other way round
    server.reply(b, asked[0], m.ObjectValue(0, b"X", None))
    pump(caller, a, 2)
    assert first.result(0) == m.ObjectValue(first.id, b"X", None)
    assert second.result(0).data == b"Y"
    assert caller.pending() == 0


def test_a_reply_nobody_waits_for_goes_to_its_types_handler(pair):
    a, b = pair
    ep = Endpoint()
    late = []
    ep.on(m.LeaseGranted, lambda conn, msg: late.append(msg.req))  # state kept by the shell
    req = next(ep.ids)
    b.send(m.LeaseGranted(req, ID, ID, "127.0.0.1:1", ()))
    pump(ep, a)
    assert late == [req]


def test_unknown_type_is_refused_logged_and_changes_nothing(pair, caplog):
    a, b = pair
    ep = Endpoint()
    seen = []
    ep.on(m.AddBorrower, lambda conn, msg: seen.append(msg))
    b.send_many([m.KillActor(ID, True), m.AddBorrower(b"1")])
    with caplog.at_level(logging.WARNING, "raylite.rpc"):
        pump(ep, a, 2)
    assert seen == [m.AddBorrower(b"1")]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "refused a KillActor from b" in line and "does not handle" in line


def test_validator_refuses_before_the_handler_runs(pair, caplog):
    a, b = pair
    ep = Endpoint(validator=lambda msg: "RequestLease.name must be short" if len(msg.name) > 3 else None)
    seen = []
    ep.on(m.RequestLease, lambda conn, msg: seen.append(msg.name))
    b.send_many([m.RequestLease(1, {}, "too long"), m.RequestLease(2, {}, "ok")])
    with caplog.at_level(logging.WARNING, "raylite.rpc"):
        pump(ep, a, 2)
    assert seen == ["ok"]
    assert "name must be short" in caplog.records[0].getMessage()


def test_refusals_are_rate_limited_per_connection(pair, caplog):
    a, b = pair
    ep = Endpoint()
    b.send_many([m.KillActor(ID, True)] * 20)
    with caplog.at_level(logging.WARNING, "raylite.rpc"):
        pump(ep, a, 20)
    assert len(caplog.records) == 1


def test_a_failing_handler_is_logged_and_the_next_message_is_handled(pair, caplog):
    a, b = pair
    ep = Endpoint()
    seen = []

    def handler(conn, msg):
        if msg.object_id == b"bad":
            raise ValueError("boom")
        seen.append(msg.object_id)
    ep.on(m.AddBorrower, handler)
    b.send_many([m.AddBorrower(b"bad"), m.AddBorrower(b"good")])
    with caplog.at_level(logging.ERROR, "raylite.rpc"):
        pump(ep, a, 2)
    assert seen == [b"good"]
    assert "error handling AddBorrower from b" in caplog.records[0].getMessage()
    assert "boom" in caplog.text


def test_a_reply_from_another_connection_is_refused(pair, caplog):
    a, b = pair
    sc, sd = socket.socketpair()
    c, d = Connection(sc, "d"), Connection(sd, "c")
    try:
        ep = Endpoint()
        call = ep.call(a, m.GetState(0))
        (sent,) = b.poll(0.5)
        d.send(m.StateReply(sent.req, None))  # an impostor names our call
        with caplog.at_level(logging.WARNING, "raylite.rpc"):
            pump(ep, c)
        assert not call.done and "another connection" in caplog.text
        b.send(m.StateReply(sent.req, None))
        pump(ep, a)
        assert call.result(0).req == sent.req
    finally:
        c.close()
        d.close()


def test_lost_fails_every_call_pending_on_that_connection_only(pair):
    a, b = pair
    sc, sd = socket.socketpair()
    c = Connection(sc, "elsewhere")
    try:
        ep = Endpoint()
        on_a = [ep.call(a, m.GetState(0)), ep.call(a, m.GetWorkerExit(0, "127.0.0.1:1"))]
        on_c = ep.call(c, m.GetState(0))
        ep.lost(a)
        for call in on_a:
            with pytest.raises(ConnectionError, match="connection to b was lost before it answered"):
                call.result(0)
        assert not on_c.done and ep.pending() == 1
    finally:
        c.close()
        sd.close()


def test_a_call_whose_send_fails_fails_at_once(pair):
    a, b = pair
    ep = Endpoint()
    a.close()
    call = ep.call(a, m.GetState(0))
    with pytest.raises(ConnectionError, match="cannot send GetState to b"):
        call.result(0)
    assert ep.pending() == 0


def test_callbacks_run_once_whenever_they_are_added(pair):
    a, b = pair
    ep = Endpoint()
    runs = []
    call = ep.call(a, m.GetState(0))
    call.add_done_callback(lambda c: runs.append("before"))
    (sent,) = b.poll(0.5)
    b.send(m.StateReply(sent.req, None))
    pump(ep, a)
    call.add_done_callback(lambda c: runs.append(("after", c.result(0).req)))
    ep.lost(a)            # done already: no second completion, no second run
    call.fail(RuntimeError("too late"))
    assert runs == ["before", ("after", sent.req)]


def test_callbacks_racing_completion_each_run_exactly_once(pair):
    a, _ = pair
    ep = Endpoint()
    for _ in range(20):
        call = ep.call(a, m.GetState(0))
        runs = []
        go = threading.Barrier(2)

        def add():
            go.wait()
            for i in range(50):
                call.add_done_callback(lambda c, i=i: runs.append(i))
        t = threading.Thread(target=add)
        t.start()
        go.wait()
        call.fail(RuntimeError("done"))
        t.join()
        assert sorted(runs) == list(range(50))


def test_result_waits_no_longer_than_its_timeout_and_forgets_the_call(pair):
    a, b = pair
    ep = Endpoint()
    late = []
    ep.on(m.StateReply, lambda conn, msg: late.append(msg.req))
    call = ep.call(a, m.GetState(0))
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match="b did not answer GetState within 0.02s"):
        call.result(0.02)
    assert time.perf_counter() - t0 < 0.04
    assert ep.pending() == 0
    (sent,) = b.poll(0.5)
    b.send(m.StateReply(sent.req, None))
    pump(ep, a)                                 # too late: the type's handler gets it
    assert late == [sent.req] and not call.done


def test_result_wakes_as_soon_as_another_thread_delivers_the_reply(pair):
    a, b = pair
    ep = Endpoint()
    call = ep.call(a, m.GetState(0))
    (sent,) = b.poll(0.5)
    b.send(m.StateReply(sent.req, None))
    reader = threading.Thread(target=pump, args=(ep, a))
    reader.start()
    assert call.result(1.0).req == sent.req
    reader.join()


def test_only_requests_are_called_and_replies_must_fit_their_request(pair):
    a, _ = pair
    ep = Endpoint()
    with pytest.raises(TypeError, match="AddBorrower is not a request type"):
        ep.call(a, m.AddBorrower(ID))
    with pytest.raises(TypeError, match="Ack does not answer GetState"):
        ep.reply(a, m.GetState(3), m.Ack(3))


def test_every_message_with_an_id_is_a_request_or_a_reply_in_the_one_table():
    requests, replies = set(m.REPLIES), set(m.REPLIES.values())
    assert not requests & replies
    for cls in vars(m).values():
        if isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields"):
            has_id = cls._fields[:1] == ("req",)
            assert has_id == (cls in requests or cls in replies), cls.__name__


def test_serve_delivers_until_the_peer_closes_then_fails_the_calls_left(pair):
    a, b = pair
    ep = Endpoint()
    seen = []
    ep.on(m.AddBorrower, lambda conn, msg: seen.append(msg.object_id))
    reader = threading.Thread(target=ep.serve, args=(a,))
    reader.start()
    call = ep.call(a, m.GetState(0))
    b.send(m.AddBorrower(b"1"))
    b.close()
    reader.join(1)
    assert not reader.is_alive() and a.closed and seen == [b"1"]
    with pytest.raises(ConnectionError, match="connection to b was lost"):
        call.result(0)


def test_serve_closes_a_connection_that_sends_garbage(pair, caplog):
    a, b = pair
    ep = Endpoint()
    b.sock.sendall(b"\0\0\0\3abc")   # a frame, but no pickle
    with caplog.at_level(logging.WARNING, "raylite.rpc"):
        ep.serve(a)                  # returns: the connection is closed
    assert a.closed and "unreadable message from b" in caplog.text


def test_an_interrupted_wait_forgets_the_call(pair):
    import signal

    a, _ = pair
    ep = Endpoint()
    call = ep.call(a, m.GetState(0))
    timer = threading.Timer(0.01, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        call.result(1.0)
    timer.join()
    assert ep.pending() == 0


def test_waiting_for_a_call_keeps_it_booked_until_its_reply(pair):
    a, b = pair
    caller, server, asked = _object_server()
    call = caller.call(a, m.GetObject(0, b"x"))
    pump(server, b)
    assert call.wait(0.01) is False and caller.pending() == 1  # not given up, unlike result()
    server.reply(b, asked[0], m.ObjectValue(0, b"X", None))
    pump(caller, a)
    assert call.wait(0.01) is True and call.result(0).data == b"X"
