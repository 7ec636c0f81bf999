"""Failure handling on the cluster runtime: real processes are killed."""
import os
import signal
import time

import pytest

import raylite
from raylite.exceptions import (ActorDiedError, RayActorError, TaskCancelledError,
                                WorkerCrashedError)


def test_worker_death_is_retried(cluster, tmp_path):
    marker = tmp_path / "died-once"

    @cluster.remote(max_retries=1)
    def flaky():
        if not marker.exists():
            marker.write_text("x")
            os._exit(1)
        return "ok"

    assert cluster.get(flaky.remote(), timeout=30) == "ok"


def test_worker_crash_without_retries_raises(cluster):
    @cluster.remote(max_retries=0)
    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(WorkerCrashedError):
        cluster.get(die.remote(), timeout=30)


def test_retry_exceptions(cluster, tmp_path):
    counter = tmp_path / "count"
    counter.write_text("0")

    @cluster.remote(max_retries=3, retry_exceptions=[KeyError])
    def sometimes():
        n = int(counter.read_text()) + 1
        counter.write_text(str(n))
        if n < 3:
            raise KeyError(n)
        return n

    assert cluster.get(sometimes.remote()) == 3

    @cluster.remote(max_retries=3, retry_exceptions=[KeyError])
    def other():
        raise ValueError("not retried")

    with pytest.raises(ValueError):
        cluster.get(other.remote())


def test_cancel_running_task(cluster):
    @cluster.remote
    def forever():
        time.sleep(60)

    ref = forever.remote()
    time.sleep(0.3)
    cluster.cancel(ref)
    with pytest.raises(TaskCancelledError):
        cluster.get(ref, timeout=10)


def test_force_cancel_kills_the_worker(cluster):
    @cluster.remote
    def forever():
        while True:
            pass

    ref = forever.remote()
    time.sleep(0.3)
    cluster.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        cluster.get(ref, timeout=10)
    assert cluster.get(cluster.remote(lambda: 3).remote()) == 3


def test_cancel_queued_task(cluster):
    @cluster.remote(num_cpus=2)
    def hog():
        time.sleep(1)

    first = hog.remote()
    queued = hog.remote()
    cluster.cancel(queued)
    with pytest.raises(TaskCancelledError):
        cluster.get(queued, timeout=5)
    cluster.get(first)


def test_get_timeout(cluster):
    @cluster.remote
    def slow():
        time.sleep(5)

    with pytest.raises(raylite.exceptions.GetTimeoutError):
        cluster.get(slow.remote(), timeout=0.2)


def test_actor_restarts_after_process_death(cluster):
    @cluster.remote(max_restarts=1, max_task_retries=1)
    class A:
        def __init__(self):
            self.calls = 0

        def pid(self):
            self.calls += 1
            return os.getpid(), self.calls, raylite.get_runtime_context().was_current_actor_reconstructed

    a = A.remote()
    pid, _, restarted = cluster.get(a.pid.remote())
    assert not restarted
    os.kill(pid, signal.SIGKILL)
    new_pid, calls, restarted = cluster.get(a.pid.remote(), timeout=30)
    assert new_pid != pid and calls == 1 and restarted


def test_kill_with_restart(cluster):
    @cluster.remote(max_restarts=1)
    class A:
        def pid(self):
            return os.getpid()

    a = A.remote()
    pid = cluster.get(a.pid.remote())
    cluster.kill(a, no_restart=False)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            new = cluster.get(a.pid.remote(), timeout=10)
            break
        except RayActorError:
            time.sleep(0.1)
    assert new != pid


def test_actor_init_error_surfaces_on_call(cluster):
    @cluster.remote
    class Bad:
        def __init__(self):
            raise ZeroDivisionError("no")

        def m(self):
            return 1

    b = Bad.remote()
    with pytest.raises(ActorDiedError) as info:
        cluster.get(b.m.remote(), timeout=10)
    assert "ZeroDivisionError" in str(info.value)


def test_owner_died_object(cluster):
    @cluster.remote
    class Holder:
        def make(self):
            return [raylite.put("inner")]

        def pid(self):
            return os.getpid()

    h = Holder.remote()
    [inner] = cluster.get(h.make.remote())
    assert cluster.get(inner) == "inner"
    [inner2] = cluster.get(h.make.remote())
    os.kill(cluster.get(h.pid.remote()), signal.SIGKILL)
    time.sleep(0.3)
    with pytest.raises(raylite.exceptions.OwnerDiedError):
        cluster.get(inner2, timeout=10)


def test_driver_crash_stops_the_cluster_it_started(tmp_path):
    import subprocess
    import sys

    import psutil

    code = ("import os, signal, sys, raylite\n"
            "raylite.init(num_cpus=1, _temp_dir=sys.argv[1])\n"
            "rt = raylite._runtime.current()\n"
            "raylite.get(raylite.remote(lambda: 1).remote())\n"
            "print(rt._proc.pid, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    daemon = psutil.Process(int(out.stdout.split()[0]))
    workers = daemon.children(recursive=True) if daemon.is_running() else []
    gone, alive = psutil.wait_procs([daemon, *workers], timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    deadline = time.time() + 5
    while time.time() < deadline and any(p.name.startswith("session_") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("session_")]


def test_actor_dying_in_init_restarts_or_fails(cluster, tmp_path):
    marker = tmp_path / "crashed"

    @cluster.remote(max_restarts=1)
    class Flaky:
        def __init__(self):
            if not marker.exists():
                marker.write_text("x")
                os._exit(1)

        def ok(self):
            return "up"

    assert cluster.get(Flaky.remote().ok.remote(), timeout=30) == "up"

    @cluster.remote
    class Dies:
        def __init__(self):
            os._exit(1)

        def ok(self):
            return "never"

    with pytest.raises(ActorDiedError):
        cluster.get(Dies.remote().ok.remote(), timeout=30)


def test_workers_die_with_their_daemon():
    import psutil

    raylite.init(num_cpus=1)
    rt = raylite._runtime.current()

    @raylite.remote
    def busy():
        time.sleep(60)

    @raylite.remote
    def pid():
        return os.getpid()

    worker = psutil.Process(raylite.get(pid.remote()))
    busy.remote()
    time.sleep(0.3)
    daemon = psutil.Process(rt._proc.pid)
    family = daemon.children(recursive=True)
    daemon.kill()
    gone, alive = psutil.wait_procs([worker, *family], timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    raylite.shutdown()
