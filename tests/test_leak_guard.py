"""The suite's leak guard (tests/conftest.py) fails tests that leave things running."""
import os
import pathlib
import uuid

import pytest

CONFTEST = (pathlib.Path(__file__).parent / "conftest.py").read_text()

LEAKY = '''
import os, subprocess, threading, time
import raylite

def test_leaks_a_thread():
    threading.Thread(target=time.sleep, args=(5,), daemon=True, name="leaky").start()

def test_leaks_a_process():
    subprocess.Popen(["sleep", "30"])

def test_leaks_a_segment():
    prefix = os.environ["RAYLITE_NODE_ID_PREFIX"]  # the guard's own: it removes only those
    tag = os.environ["GUARDTEST_TAG"]  # this run's own names: concurrent runs never mix
    open(f"/dev/shm/raylite_{prefix}guardtest_{tag}", "wb").close()
    open(f"/dev/shm/raylite_notours_guardtest_{tag}", "wb").close()

def test_thread_finishing_within_grace_is_fine():
    threading.Thread(target=time.sleep, args=(0.1,), daemon=True).start()

def test_left_initialized_is_shut_down():
    raylite.init(local_mode=True)

def test_after_that_raylite_is_shut_down():
    assert not raylite.is_initialized()
'''


def test_guard_fails_leaks_and_cleans_up(pytester, monkeypatch):
    monkeypatch.setenv("RAYLITE_TEST_LEAK_GRACE", "0.5")
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("GUARDTEST_TAG", tag)
    pytester.makeconftest(CONFTEST.replace('pytest_plugins = ("pytester",)', ""))
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=6, errors=3)  # a leak fails the teardown
    out = result.stdout.str()
    assert "threads left running: ['leaky']" in out
    assert "processes left running" in out
    assert "guardtest_" in out and "/dev/shm segments left: ['/dev/shm/raylite_" in out
    left = list(pathlib.Path("/dev/shm").glob(f"raylite_*guardtest_{tag}"))
    assert [p.name.split("_")[1] for p in left] == ["notours"]  # not the run's own: left alone
    for p in left:
        p.unlink()
