"""The read turn: which thread may read a connection, and Ctrl-C while it reads (read_turn.py)."""
import signal
import socket
import threading
import time

import pytest

from raylite._protocol import messages as m
from raylite._protocol.read_turn import STUCK_S, ReadTurn, shield
from raylite._protocol.transport import Connection


def test_turn_moves_to_a_waiting_thread_only_after_the_reader_finishes_a_batch():
    t = ReadTurn()
    assert not t.lead()           # the reader thread holds it: the caller waits as usual
    t.background_wait()           # ... and the reader goes on reading
    t.background_done()           # after its batch the turn goes to the caller that asked
    assert t.lead()
    assert not t.lead()           # one reader at a time on the foreground side too
    t.unlead(give_back=False)
    assert t.lead()               # sticky: the next get() reads again without asking
    t.unlead(give_back=False)


def test_reader_thread_sleeps_while_the_foreground_reads_and_resumes_when_given_back():
    t = ReadTurn()
    t.lead()
    t.background_done()
    assert t.lead()
    resumed = threading.Event()

    def reader():
        t.background_wait()
        resumed.set()
    th = threading.Thread(target=reader)
    th.start()
    time.sleep(5 * ReadTurn.IDLE_CHECK)
    assert not resumed.is_set()   # busy foreground: the reader never takes over
    t.unlead(give_back=True)
    assert resumed.wait(5)
    th.join()
    assert not t.lead()           # the reader thread holds it again


def test_reader_takes_the_turn_back_from_an_idle_foreground():
    t = ReadTurn()
    t.lead()
    t.background_done()
    assert t.lead()
    t.unlead(give_back=False)     # the caller keeps the turn but stops calling get()
    done = threading.Event()
    th = threading.Thread(target=lambda: (t.background_wait(), done.set()))
    th.start()
    assert done.wait(5)           # replies nobody waits for still get read
    th.join()
    assert not t.lead()


def test_close_releases_a_sleeping_reader():
    t = ReadTurn()
    t.lead()
    t.background_done()
    assert t.lead()
    th = threading.Thread(target=t.background_wait)
    th.start()
    t.close()
    th.join(5)
    assert not th.is_alive()


# -- Ctrl-C while the main thread reads: the shield (read_turn.shield) ---------------------

@pytest.fixture
def armed():
    """The shield armed on this (the main) thread; the program's handler restored after."""
    before = signal.getsignal(signal.SIGINT)
    shield.reset()
    assert shield.arm()
    yield shield
    shield.on = False
    shield.disarm()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_sigint_during_a_shielded_stretch_is_raised_when_it_ends(armed):
    armed.on = True
    signal.raise_signal(signal.SIGINT)
    done = [i for i in range(1000)]   # bytecode runs on: no KeyboardInterrupt here
    assert len(done) == 1000
    with pytest.raises(KeyboardInterrupt):
        armed.off()
    armed.off()                       # once: it was handled
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)   # unshielded: at once, as before


def test_a_second_ctrl_c_gets_through_a_stretch_stuck_since_the_first(armed):
    armed.on = True
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGINT)   # at once after the first: still deferred
    assert armed.pending is not None
    armed.pending = (armed.pending[0], time.monotonic() - 2 * STUCK_S)  # ... a while later
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    armed.off()                          # nothing left to raise


def test_the_programs_own_handler_is_wrapped_and_runs_after_the_stretch():
    seen = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        shield.reset()
        assert shield.arm()
        shield.on = True
        signal.raise_signal(signal.SIGINT)
        assert seen == []
        shield.off()
        assert seen == [signal.SIGINT]
        shield.disarm()
        assert signal.getsignal(signal.SIGINT) is not shield.handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_only_the_main_thread_with_a_python_handler_is_shielded():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        shield.reset()
        assert not shield.arm()      # ignored: no KeyboardInterrupt can come
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    out = []
    th = threading.Thread(target=lambda: out.append(shield.arm()))
    th.start()
    th.join()
    assert out == [False]            # other threads never get KeyboardInterrupt


def test_messages_read_but_not_handled_stay_for_the_next_reader():
    from raylite._protocol.rpc import Endpoint

    a, b = socket.socketpair()
    conn = Connection(b, "peer")
    handled = []

    def on_peer(c, msg):
        if msg.object_id == b"boom" and b"boom" not in handled:
            handled.append(msg.object_id)
            raise KeyboardInterrupt   # lands in the middle of a batch
        handled.append(msg.object_id)
    ep = Endpoint()
    ep.on(m.AddBorrower, on_peer)
    one, boom, two, three = (m.AddBorrower(x) for x in (b"one", b"boom", b"two", b"three"))
    conn.inbox.extend([one, boom, two, three])
    with pytest.raises(KeyboardInterrupt):
        ep.drain(conn)
    assert list(conn.inbox) == [two, three]   # nothing after it is lost
    ep.drain(conn)                            # whichever side reads next
    assert handled == [b"one", b"boom", b"two", b"three"] and not conn.inbox
    conn.close()
    a.close()


def test_waiting_for_bytes_reads_none_so_an_interrupt_there_loses_nothing(armed):
    a, b = socket.socketpair()
    ca, cb = Connection(a, "a"), Connection(b, "b")
    timer = threading.Timer(0.2, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        cb.wait_readable()            # sleeping, unshielded: Ctrl-C ends it
    timer.join()
    ca.send("reply")
    cb.wait_readable()
    cb.wait_readable()                # still there: waiting consumed nothing
    assert cb.recv_ready() == ["reply"]
    ca.close()
    cb.close()
