"""The node daemon dies under a driver (item 13 of issue 11).

Every pending and later call fails promptly with one clear RaySystemError that
names the cluster and the next step; nothing hangs and nothing raises a raw
BrokenPipeError; shutdown() afterwards works and leaves nothing behind (the
suite's leak guard checks processes, threads and /dev/shm segments).
"""
import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest

import raylite
from raylite._protocol import messages as m
from raylite._runtime import current
from raylite.exceptions import RayError, RaySystemError

BOUND = 10  # seconds: far more than "promptly", far less than a hang


def _gone(exc_info, address):
    text = str(exc_info.value)
    assert "is gone" in text and address in text and "raylite.shutdown()" in text, text


def test_every_pending_and_later_call_fails_clearly_when_the_daemon_dies():
    raylite.init(num_cpus=1)
    rt = current()
    address = rt.daemon_address
    daemon = psutil.Process(rt._proc.pid)

    @raylite.remote
    def sleepy(s):
        time.sleep(s)
        return s

    @raylite.remote
    class A:
        def ping(self):
            return 1

        def slow(self, s):
            time.sleep(s)
            return s

    a = A.remote()
    assert raylite.get(a.ping.remote()) == 1
    big = raylite.put(np.ones(2**20, dtype=np.uint8))        # a shared-memory segment
    running = sleepy.remote(60)                              # holds the only CPU
    time.sleep(0.5)
    queued = [sleepy.remote(0) for _ in range(3)]            # no worker for them yet
    in_actor = a.slow.remote(60)
    waiting_actor = A.options(num_cpus=1).remote()           # cannot be placed yet
    waiting_call = waiting_actor.ping.remote()

    daemon.send_signal(signal.SIGSTOP)                       # a daemon call is pending...
    _all_stopped(daemon)
    pending_call: list = []
    caller = threading.Thread(
        target=lambda: pending_call.append(_raises(lambda: rt._call(m.GetState(0)))))
    caller.start()
    time.sleep(0.3)
    daemon.kill()                                            # ... when the daemon dies
    daemon.wait(BOUND)
    t0 = time.monotonic()

    for ref in queued + [waiting_call]:
        with pytest.raises(RaySystemError) as e:
            raylite.get(ref, timeout=BOUND)
        _gone(e, address)
    for ref in (running, in_actor):   # their workers died with the daemon
        with pytest.raises(RayError):
            raylite.get(ref, timeout=BOUND)
    caller.join(BOUND)
    assert pending_call and isinstance(pending_call[0], RaySystemError), pending_call
    assert "is gone" in str(pending_call[0])

    later = [lambda: raylite.put(np.ones(2**20, dtype=np.uint8)), lambda: raylite.put(1),
             raylite.cluster_resources, raylite.nodes, raylite.available_resources,
             lambda: sleepy.remote(0), lambda: A.remote(), lambda: a.ping.remote(),
             lambda: raylite.kill(a), lambda: raylite.get_actor("anyone")]
    for call in later:
        with pytest.raises(RaySystemError) as e:
            call()
        _gone(e, address)
    assert time.monotonic() - t0 < BOUND
    assert int(raylite.get(big).sum()) == 2**20   # what is already here stays readable
    raylite.shutdown()
    assert not raylite.is_initialized()
    left = os.listdir(rt.session_dir) if os.path.exists(rt.session_dir) else []
    assert left in ([], ["logs"])                 # what the dead daemon left is cleaned up,
    if left:                                      # its logs kept as a clean stop keeps them
        assert os.listdir(os.path.join(rt.session_dir, "logs"))
    raylite.init(num_cpus=1)                      # and a new cluster works
    assert raylite.get(sleepy.remote(0)) == 0
    raylite.shutdown()


def test_a_task_retried_after_the_daemon_died_fails_instead_of_waiting():
    raylite.init(num_cpus=1)
    rt = current()
    daemon = psutil.Process(rt._proc.pid)

    @raylite.remote(max_retries=3)
    def sleepy(s):
        time.sleep(s)
        return s

    ref = sleepy.remote(60)
    time.sleep(0.5)
    daemon.kill()
    with pytest.raises(RayError) as e:   # the worker died too: the retry finds no cluster
        raylite.get(ref, timeout=BOUND)
    assert isinstance(e.value, RaySystemError), repr(e.value)
    raylite.shutdown()


def _all_stopped(proc):
    """Waits until every thread of `proc` has stopped: a group stop reaches the threads one
    by one, and on a loaded machine one of them may still answer a request meanwhile."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            try:
                with open(f"/proc/{proc.pid}/task/{tid}/stat") as f:
                    states.append(f.read().rpartition(")")[2].split()[0])
            except OSError:
                pass  # a thread that just exited
        if states and all(s in "tT" for s in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"the daemon's threads did not all stop within {BOUND}s")


def _raises(fn):
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - the test inspects it
        return e
    return None


def test_dropping_an_actor_handle_after_the_daemon_died_is_quiet(capfd):
    raylite.init(num_cpus=1)
    rt = current()

    @raylite.remote
    class A:
        def ping(self):
            return 1

    a = A.remote()
    assert raylite.get(a.ping.remote()) == 1
    psutil.Process(rt._proc.pid).kill()
    deadline = time.monotonic() + BOUND
    while rt._gone is None and time.monotonic() < deadline:
        time.sleep(0.05)
    del a                  # the maintenance thread would end the actor: there is none
    time.sleep(0.5)
    assert all(t.is_alive() for t in rt._threads if t.name == "raylite-leases")
    raylite.shutdown()
    assert "Traceback" not in capfd.readouterr().err
