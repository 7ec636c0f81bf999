"""Streaming generators when processes die: a worker killed mid-stream, an actor killed
mid-stream, a retried generator task whose items dedupe by index."""
import os
import signal

import pytest

from raylite.exceptions import ActorDiedError, WorkerCrashedError


def test_worker_killed_mid_stream(cluster):
    @cluster.remote(max_retries=0)
    def gen():
        yield os.getpid()
        yield "second"
        signal.pause()  # killed here
        yield "never"

    g = gen.remote()
    first = next(g)
    pid = cluster.get(first, timeout=30)
    second = next(g)
    assert cluster.get(second, timeout=30) == "second"
    os.kill(pid, signal.SIGKILL)
    dead = next(g)
    with pytest.raises(WorkerCrashedError, match="SIGKILL"):
        cluster.get(dead, timeout=30)
    with pytest.raises(StopIteration):
        next(g)
    assert cluster.get([first, second]) == [pid, "second"]  # delivered items stay readable
    with pytest.raises(WorkerCrashedError):
        cluster.get(g.completed(), timeout=30)


def test_actor_killed_mid_stream(cluster):
    @cluster.remote
    class A:
        def gen(self):
            yield os.getpid()
            signal.pause()
            yield "never"

    a = A.remote()
    g = a.gen.remote()
    first = next(g)
    cluster.get(first, timeout=30)
    cluster.kill(a)
    with pytest.raises(ActorDiedError):
        cluster.get(next(g), timeout=30)
    assert list(g) == []
    assert isinstance(cluster.get(first), int)


def test_a_retried_generator_dedupes_its_items(cluster, tmp_path):
    marker = tmp_path / "died-once"

    @cluster.remote(max_retries=1)
    def flaky():
        yield "a"
        yield "b"
        if not marker.exists():
            marker.write_text("x")
            os._exit(1)
        yield "c"

    assert [cluster.get(r, timeout=30) for r in flaky.remote()] == ["a", "b", "c"]


def test_a_retried_generator_with_backpressure_finishes(cluster, tmp_path):
    marker = tmp_path / "died-once"

    @cluster.remote(max_retries=1, _generator_backpressure_num_objects=1)
    def flaky():
        for i in range(4):
            yield i
            if i == 2 and not marker.exists():
                marker.write_text("x")
                os._exit(1)

    assert [cluster.get(r, timeout=30) for r in flaky.remote()] == [0, 1, 2, 3]
