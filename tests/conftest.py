"""Suite-wide guards: every test leaves no processes, threads or /dev/shm segments behind.

A test that leaves raylite initialized is shut down for it (tests normally use
fixtures that shut down); whatever the test or that shutdown leaves running then
fails the test. Leftovers get a short grace period to finish.
"""
import glob
import os
import threading
import time

import psutil
import pytest

import raylite

pytest_plugins = ("pytester",)  # test_leak_guard.py runs this guard on tests that leak

# Every node daemon this test run starts (directly or through subprocesses) makes node ids
# that start with this prefix, so its segments are /dev/shm/raylite_<PREFIX>...: the guard
# counts and removes only those, never another program's (another test run's, a benchmark's).
PREFIX = os.urandom(2).hex()
os.environ["RAYLITE_NODE_ID_PREFIX"] = PREFIX

# Seconds a finishing process, thread or segment may take to go away.
GRACE = float(os.environ.get("RAYLITE_TEST_LEAK_GRACE", "2.0"))


def _children() -> set:
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.add(p.pid)
        except psutil.NoSuchProcess:  # exited between the listing and the look
            pass
    return out


def _segments() -> set:
    return set(glob.glob(f"/dev/shm/raylite_{PREFIX}*"))


def _threads() -> set:
    return {t for t in threading.enumerate() if t.is_alive() and not _rays_thread(t)}


def _ray_processes() -> set:
    """The processes of the Ray instance that tests/api/conftest.py keeps up for the API tests
    (RAYLITE_RUNTIME=ray): Ray's daemons and the workers under them. It stops them after the
    last API test and fails if any outlives ray.shutdown(). Empty unless Ray runs here."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return set()
    node = getattr(ray._private.worker, "_global_node", None)
    out = set()
    for infos in (node.all_processes.values() if node is not None else ()):
        for info in infos:
            try:
                root = psutil.Process(info.process.pid)
                out.add(root.pid)
                out.update(p.pid for p in root.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
    return out


def _rays_thread(t: threading.Thread) -> bool:
    """A thread Ray's driver library runs while Ray is initialized (its log printer, error
    listener, GC thread); the Ray fixture checks none is left after ray.shutdown()."""
    import sys

    target = getattr(t, "_target", None)
    if isinstance(t, threading._DummyThread):  # a thread of Ray's C++ core calling back into
        ray = sys.modules.get("ray")           # Python (raylite is pure Python: never its own)
        return ray is not None and ray.is_initialized()
    return type(t).__module__.startswith("ray.") or \
        getattr(target, "__module__", "").startswith("ray.")


def _settle(check, timeout: float = GRACE):
    """Polls `check` until it returns nothing or the grace period ends; returns the last result."""
    deadline = time.monotonic() + timeout
    left = check()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = check()
    return left


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Tests start from raylite's defaults, whatever RAYLITE_* (or the RAY_* ones raylite
    reads) the developer's shell sets."""
    for name in list(os.environ):
        if name.startswith("RAYLITE_") and name not in ("RAYLITE_TEST_LEAK_GRACE",
                                                         "RAYLITE_NODE_ID_PREFIX") \
                or name in ("RAY_ADDRESS", "RAY_NAMESPACE"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def no_leaks():
    procs, segs, threads = _children(), _segments(), _threads()
    yield
    if raylite.is_initialized():
        raylite.shutdown()
    left_procs = _settle(lambda: _children() - procs - _ray_processes())
    left_segs = _settle(lambda: _segments() - segs)
    left_threads = _settle(lambda: _threads() - threads)
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
        for path in left_segs:
            try:
                os.unlink(path)
            except OSError:
                pass
    if left_threads:
        problems.append(f"threads left running: {sorted(t.name for t in left_threads)}")
    assert not problems, "; ".join(problems)
