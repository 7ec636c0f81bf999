"""The read turn: which thread may read a connection (read_turn.py)."""
import threading
import time

from raylite._protocol.read_turn import ReadTurn


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
