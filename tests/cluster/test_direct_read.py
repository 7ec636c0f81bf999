"""A thread waiting in get() reads its reply off the connection itself (read_turn.py).

Each test first makes calls one at a time, so the turn is with the caller, then
checks that failures, retries, interrupts and replies nobody waits for still
come out right on that path.
"""
import os
import signal
import threading
import time

import pytest

from raylite._runtime import current
from raylite.exceptions import RayActorError, WorkerCrashedError


def _caller_reads() -> bool:
    return any(c.turn._fg for c in current()._task_peers.values())


def _warm(cluster, make_ref):
    for _ in range(5):
        cluster.get(make_ref())
    assert _caller_reads(), "the turn never reached the calling thread"


def test_worker_crash_is_reported_to_a_caller_reading_itself(cluster):
    @cluster.remote(max_retries=0)
    def f(die):
        if die:
            os.kill(os.getpid(), signal.SIGKILL)
        return 1

    _warm(cluster, lambda: f.remote(False))
    with pytest.raises(WorkerCrashedError):
        cluster.get(f.remote(True))
    assert cluster.get(f.remote(False)) == 1


def test_retry_after_worker_death_reaches_a_caller_reading_itself(cluster, tmp_path):
    marker = tmp_path / "died-once"

    @cluster.remote(max_retries=1)
    def f(die):
        if die and not marker.exists():
            marker.write_text("x")
            os._exit(1)
        return "ok"

    _warm(cluster, lambda: f.remote(False))
    assert cluster.get(f.remote(True)) == "ok"


def test_actor_killed_while_its_caller_reads(cluster):
    @cluster.remote
    class A:
        def m(self, secs=0):
            time.sleep(secs)
            return 1

    a = A.remote()
    _warm(cluster, lambda: a.m.remote())
    threading.Timer(0.5, cluster.kill, (a,)).start()
    with pytest.raises(RayActorError):
        cluster.get(a.m.remote(30))


def test_interrupt_during_get_loses_no_reply(cluster):
    @cluster.remote
    class A:
        def m(self, x, secs=0):
            time.sleep(secs)
            return x

    a = A.remote()
    _warm(cluster, lambda: a.m.remote(0))
    slow = a.m.remote("slow", 1.0)
    timer = threading.Timer(0.3, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        cluster.get(slow)
    timer.join()
    assert cluster.get(slow) == "slow"
    assert [cluster.get(a.m.remote(i)) for i in range(20)] == list(range(20))


def test_replies_nobody_waits_for_are_still_read(cluster):
    @cluster.remote
    class A:
        def m(self, x):
            return x

    a = A.remote()
    _warm(cluster, lambda: a.m.remote(0))
    fut = a.m.remote(7).future()       # the caller holds the turn but is not in get()
    assert fut.result(timeout=10) == 7
    ready, _ = cluster.wait([a.m.remote(8)], timeout=10)
    assert len(ready) == 1


def test_threads_calling_one_at_a_time_on_one_connection_all_get_their_own_replies(cluster):
    @cluster.remote
    class A:
        def echo(self, x):
            return x

    @cluster.remote
    def echo(x):
        return x

    a = A.remote()
    _warm(cluster, lambda: a.echo.remote(0))
    wrong = []

    def caller(k):
        for i in range(200):
            x = (k, i)
            if cluster.get(a.echo.remote(x)) != x or cluster.get(echo.remote(x)) != x:
                wrong.append(x)
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads) and not wrong
