"""Suite-wide guards: every test leaves no processes, threads or /dev/shm segments behind."""
import glob
import os
import threading
import time

import psutil
import pytest

import raylite


def _children() -> set:
    return {p.pid for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE}


def _segments() -> set:
    return set(glob.glob("/dev/shm/raylite_*"))


def _threads() -> set:
    return {t for t in threading.enumerate() if t.is_alive()}


def _settle(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    left = check()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = check()
    return left


@pytest.fixture(autouse=True)
def no_leaks():
    procs, segs, threads = _children(), _segments(), _threads()
    yield
    if raylite.is_initialized():
        raylite.shutdown()
        pytest.fail("the test left raylite initialized (it was shut down for it)")
    left_procs = _settle(lambda: _children() - procs)
    left_segs = _settle(lambda: _segments() - segs)
    left_threads = _settle(lambda: {t for t in _threads() - threads
                                    if not t.name.startswith(("ThreadPoolExecutor", "asyncio"))})
    problems = []
    if left_procs:
        problems.append(f"processes left running: {sorted(left_procs)}")
        for pid in left_procs:  # only the ones this test started
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
    if left_segs:
        problems.append(f"/dev/shm segments left: {sorted(left_segs)}")
    if left_threads:
        problems.append(f"threads left running: {sorted(t.name for t in left_threads)}")
    assert not problems, "; ".join(problems)
