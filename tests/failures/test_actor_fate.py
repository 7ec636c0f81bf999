"""What callers see when an actor's process goes away: on purpose, by a crash, or with
its owner. Real processes are killed; every wait has a bound."""
import os
import signal
import time

import pytest

import raylite
from raylite.exceptions import ActorDiedError


def _wait_dead(ray, handle, timeout=20):
    """The error a call on `handle` raises once the actor is dead (calls before that may
    still succeed while its death travels)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get(handle.ping.remote(), timeout=timeout)
        except ActorDiedError as e:
            return e
        time.sleep(0.05)
    raise AssertionError(f"the actor was still alive after {timeout}s")


# -- item 12: a restarted actor runs the calls it replays in submission order ----------
def test_restarted_actor_replays_calls_in_submission_order(cluster):
    @cluster.remote(max_restarts=1, max_task_retries=-1)
    class Recorder:
        def __init__(self):
            self.seen = []

        def pid(self):
            return os.getpid()

        def rec(self, i):
            time.sleep(0.02)
            self.seen.append(i)
            return i

        def seen_calls(self):
            return self.seen

    a = Recorder.remote()
    pid = cluster.get(a.pid.remote())
    refs = [a.rec.remote(i) for i in range(20)]
    cluster.get(refs[3], timeout=30)
    os.kill(pid, signal.SIGKILL)
    more = [a.rec.remote(i) for i in range(20, 25)]  # queued while the actor restarts
    assert cluster.get(refs + more, timeout=60) == list(range(25))
    seen = cluster.get(a.seen_calls.remote(), timeout=30)
    assert cluster.get(a.pid.remote()) != pid
    assert seen[0] >= 4 and seen == list(range(seen[0], 25)), seen


def test_idle_actor_killed_by_pid_fails_the_next_call(cluster):
    @cluster.remote
    class A:
        def pid(self):
            return os.getpid()

    a = A.remote()
    pid = cluster.get(a.pid.remote())
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)  # the connection's loss is noticed before the next call
    with pytest.raises(ActorDiedError, match="unexpectedly"):
        cluster.get(a.pid.remote(), timeout=20)


# -- item 14: "you shut it down" is not "it broke" ------------------------------------
@pytest.mark.parametrize("retries", [0, 2])
def test_exit_actor_fails_pending_calls_with_its_reason(cluster, retries):
    @cluster.remote(max_task_retries=retries, max_restarts=1)
    class Quitter:
        def ping(self):
            return "pong"

        def quit(self):
            time.sleep(0.3)  # the calls below are pending meanwhile
            raylite.actor.exit_actor()

    q = Quitter.remote()
    assert cluster.get(q.ping.remote()) == "pong"
    last = q.quit.remote()
    pending = [q.ping.remote() for _ in range(5)]
    for ref in [last, *pending]:
        with pytest.raises(ActorDiedError) as info:
            cluster.get(ref, timeout=20)
        text = str(info.value)
        assert "exit_actor()" in text and "unexpectedly" not in text, text
    with pytest.raises(ActorDiedError, match=r"exit_actor\(\)"):  # not restarted
        cluster.get(q.ping.remote(), timeout=20)


def test_terminate_and_kill_name_their_reason(cluster):
    @cluster.remote
    class A:
        def ping(self):
            return "pong"

        def slow(self):
            time.sleep(0.3)

    t = A.remote()
    t.slow.remote()
    t.__ray_terminate__.remote()
    with pytest.raises(ActorDiedError, match="__ray_terminate__"):
        cluster.get(t.ping.remote(), timeout=20)

    k = A.remote()
    assert cluster.get(k.ping.remote()) == "pong"
    pending = k.slow.remote()
    cluster.kill(k)
    with pytest.raises(ActorDiedError, match=r"ray.kill\(\)") as info:
        cluster.get(pending, timeout=20)
    assert "unexpectedly" not in str(info.value)


@pytest.mark.parametrize("restarts", [0, 1])
def test_a_crash_is_reported_as_a_crash(cluster, restarts):
    @cluster.remote(max_restarts=restarts, max_task_retries=0)
    class A:
        def pid(self):
            return os.getpid()

        def hang(self):
            time.sleep(60)

    a = A.remote()
    pid = cluster.get(a.pid.remote())
    pending = a.hang.remote()
    time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorDiedError, match="unexpectedly") as info:
        cluster.get(pending, timeout=20)
    assert "exit_actor" not in str(info.value)
    if restarts:  # the call was running when the actor restarted: it says so, is not re-run
        assert "not retried" in str(info.value)
        assert cluster.get(a.pid.remote(), timeout=20) != pid
    else:  # dead for good: later calls fail too
        with pytest.raises(ActorDiedError):
            cluster.get(a.pid.remote(), timeout=20)


# -- item 16: an actor's non-detached actors die with it -------------------------------
def _parent_and_child(ray):
    @ray.remote(num_cpus=0)
    class Child:
        def ping(self):
            return "pong"

    @ray.remote(num_cpus=0)
    class Parent:
        def __init__(self):
            self.kept = []

        def make(self, detached_name=None):
            opts = {"lifetime": "detached", "name": detached_name} if detached_name else {}
            child = Child.options(**opts).remote()
            self.kept.append(child)
            ray.get(child.ping.remote())
            return child

        def pid(self):
            return os.getpid()

        def ping(self):
            return "pong"

    return Parent, Child


@pytest.mark.parametrize("how", ["ray.kill", "os.kill"])
def test_actor_created_by_an_actor_dies_with_it(cluster, how):
    Parent, _ = _parent_and_child(cluster)
    parent = Parent.remote()
    child = cluster.get(parent.make.remote())
    detached = cluster.get(parent.make.remote("fate-detached"))
    assert cluster.get(child.ping.remote()) == "pong"
    if how == "ray.kill":
        cluster.kill(parent)
    else:
        os.kill(cluster.get(parent.pid.remote()), signal.SIGKILL)
    err = _wait_dead(cluster, child)
    assert "owner" in str(err) and "detached" in str(err), str(err)
    assert cluster.get(detached.ping.remote(), timeout=20) == "pong"
    cluster.kill(detached)


def test_actors_die_with_their_restarted_owner_and_grandchildren_too(cluster):
    Parent, _ = _parent_and_child(cluster)

    @cluster.remote(num_cpus=0, max_restarts=1)
    class Grand:
        def pid(self):
            return os.getpid()

        def make(self):
            self.p = Parent.remote()
            return self.p, cluster.get(self.p.make.remote())

    g = Grand.remote()
    parent, child = cluster.get(g.make.remote())
    os.kill(cluster.get(g.pid.remote()), signal.SIGKILL)  # restarts, in a new process
    _wait_dead(cluster, parent)
    _wait_dead(cluster, child)


def test_actor_created_by_a_task_dies_with_its_worker(cluster):
    @cluster.remote(num_cpus=0)
    class Child:
        def ping(self):
            return "pong"

    @cluster.remote
    def make():
        return Child.remote(), os.getpid()

    child, pid = cluster.get(make.remote())
    assert cluster.get(child.ping.remote(), timeout=20) == "pong"
    os.kill(pid, signal.SIGKILL)
    err = _wait_dead(cluster, child)
    assert "owner" in str(err)

