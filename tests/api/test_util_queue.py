"""raylite.util.queue.Queue on both runtimes: from the driver, tasks and actors."""
import asyncio
import queue as stdlib_queue
import threading
import time

import pytest

from raylite.exceptions import RayActorError
from raylite.util.queue import Empty, Full, Queue


def test_fifo_sizes_and_exceptions(ray):
    q = Queue(maxsize=3)
    assert (q.empty(), q.full(), q.qsize(), q.size(), len(q)) == (True, False, 0, 0, 0)
    for i in range(3):
        q.put(i)
    assert (q.empty(), q.full(), q.qsize()) == (False, True, 3)
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(Full):
        q.put(3, block=False)
    assert [q.get(), q.get_nowait(), q.get(block=False)] == [0, 1, 2]
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(stdlib_queue.Empty):  # the standard library's classes catch them too
        q.get(block=False)
    assert issubclass(Full, stdlib_queue.Full)


def test_timeouts_raise_after_waiting(ray):
    q = Queue(maxsize=1)
    start = time.monotonic()
    with pytest.raises(Empty, match="empty for 0.2 s"):
        q.get(timeout=0.2)
    q.put("x")
    with pytest.raises(Full, match="full for 0.2 s"):
        q.put("y", timeout=0.2)
    assert time.monotonic() - start >= 0.35
    assert q.get(timeout=1) == "x"


def test_bad_arguments(ray):
    q = Queue()
    with pytest.raises(ValueError, match="timeout"):
        q.put(1, timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        q.get(timeout=-0.5)
    with pytest.raises(ValueError, match="num_items"):
        q.get_nowait_batch(-1)
    with pytest.raises(TypeError, match="iterable"):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError, match="maxsize"):
        Queue(maxsize="3")


def test_batches_are_all_or_nothing(ray):
    q = Queue(maxsize=4)
    q.put_nowait_batch([1, 2, 3])
    with pytest.raises(Full, match="Cannot add 2 items"):
        q.put_nowait_batch([4, 5])
    assert q.qsize() == 3
    with pytest.raises(Empty, match="Cannot get 4 items"):
        q.get_nowait_batch(4)
    assert q.get_nowait_batch(2) == [1, 2]
    assert q.get_nowait_batch(0) == []
    assert q.get_nowait_batch(1) == [3]


def test_tasks_and_actors_share_the_queue(ray):
    q = Queue()

    @ray.remote
    def produce(q, items):
        for i in items:
            q.put(i)
        return len(items)

    @ray.remote
    class Consumer:
        def __init__(self, q):
            self.q = q

        def take(self, n):
            return [self.q.get(timeout=30) for _ in range(n)]

    assert ray.get(produce.remote(q, list(range(5)))) == 5
    c = Consumer.remote(q)
    assert ray.get(c.take.remote(5)) == [0, 1, 2, 3, 4]
    ray.get(produce.remote(q, ["z"]))
    assert q.get() == "z"


@pytest.mark.cluster_only("a task that blocks on a full queue would block the caller")
def test_blocked_producer_and_consumer_wake_each_other(ray):
    q = Queue(maxsize=2)

    @ray.remote
    def produce(q, n):
        for i in range(n):
            q.put(i, timeout=30)  # blocks while the queue is full
        return "done"

    @ray.remote
    def consume(q, n):
        return [q.get(timeout=30) for _ in range(n)]

    took = consume.remote(q, 10)   # blocks until items come
    done = produce.remote(q, 10)
    assert ray.get([took, done], timeout=60) == [list(range(10)), "done"]


def test_threads_block_on_get_until_a_put(ray):
    q = Queue()
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=30)))
    t.start()
    time.sleep(0.2)
    q.put("hello")
    t.join(30)
    assert got == ["hello"]


def test_async_put_and_get(ray):
    q = Queue(maxsize=1)

    async def main():
        await q.put_async(1)
        with pytest.raises(Full):
            await q.put_async(2, block=False)
        with pytest.raises(Full):
            await q.put_async(2, timeout=0.1)
        assert await q.get_async() == 1
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        with pytest.raises(Empty):
            await q.get_async(block=False)

    asyncio.run(main())


@pytest.mark.parametrize("force", [False, pytest.param(True, marks=pytest.mark.raylite_only(
    "Ray's kill is asynchronous: a call made right after ray.kill may still reach the old "
    "instance (a CI run on Ray 2.60 saw it answered)"))])
def test_shutdown_ends_the_actor(ray, force):
    q = Queue()
    q.put(1)
    other = [q]  # a copy elsewhere (as a task would hold) keeps the handle

    @ray.remote
    def size(qs):
        return qs[0].qsize()

    assert ray.get(size.remote(other)) == 1
    handle = q.actor
    q.shutdown(force=force, grace_period_s=5)
    q.shutdown()  # twice is fine
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(2)
    with pytest.raises(RayActorError):
        ray.get(handle.qsize.remote(), timeout=30)


@pytest.mark.cluster_only("a call blocked forever in local mode would block the test itself")
def test_graceful_shutdown_falls_back_to_kill_after_the_grace_period(ray):
    q = Queue()
    blocked = q.actor.get.remote(None)  # waits forever for an item
    time.sleep(0.2)
    start = time.monotonic()
    q.shutdown(grace_period_s=0.5)
    assert time.monotonic() - start < 10
    with pytest.raises(RayActorError):
        ray.get(blocked, timeout=30)


def test_actor_options_are_passed(ray):
    q = Queue(actor_options={"name": "the-queue"})
    q.put("via name")
    assert ray.get(ray.get_actor("the-queue").get_nowait.remote()) == (True, "via name")
