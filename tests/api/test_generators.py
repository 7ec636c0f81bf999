"""Streaming generators: generator tasks and actor methods give refs as they yield (Ray 2.60).

Local mode runs a generator's body as it is consumed (one step per next()), so the tests
that need the body to run ahead of its consumer are cluster_only."""
import asyncio
import pickle
import time

import pytest

import raylite

@raylite.remote
def count(n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"boom at {i}")
        yield i * 10


@raylite.remote
class Flag:
    def __init__(self):
        self.n = 0
        self.on = False

    def set(self):
        self.on = True

    def is_set(self):
        return self.on

    def bump(self):
        self.n += 1

    def get(self):
        return self.n


def _wait_for(flag_ref_fn, bound=30.0):
    deadline = time.monotonic() + bound
    while not flag_ref_fn():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def test_a_generator_function_streams_refs(ray):
    gen = count.remote(4)
    assert isinstance(gen, ray.ObjectRefGenerator)
    refs = list(gen)
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    assert ray.get(refs) == [0, 10, 20, 30]
    with pytest.raises(StopIteration):
        next(gen)
    assert ray.get(gen.completed()) is None


def test_the_first_item_is_usable_while_the_task_still_runs(ray):
    flag = Flag.remote()

    @ray.remote
    def slow(flag):
        yield "first"
        while not ray.get(flag.is_set.remote()):
            time.sleep(0.01)
        yield "second"

    gen = slow.remote(flag)
    assert ray.get(next(gen)) == "first"  # the task is blocked until the flag is set
    ray.get(flag.set.remote())
    assert ray.get(next(gen)) == "second"
    assert list(gen) == []


def test_an_error_mid_stream_surfaces_at_its_item(ray):
    gen = count.remote(5, fail_at=2)
    assert ray.get(next(gen)) == 0
    assert ray.get(next(gen)) == 10
    bad = next(gen)
    with pytest.raises(ValueError, match="boom at 2"):
        ray.get(bad)
    with pytest.raises(StopIteration):
        next(gen)


def test_what_the_body_raised_is_the_last_item_and_completed_resolves(ray):
    """completed() raises only when the task failed outside its body (a worker's death, a
    cancel: test_cancel_a_generator, tests/failures); the body's error is the last item's."""
    gen = count.remote(5, fail_at=2)
    refs = list(gen)
    assert len(refs) == 3 and ray.get(refs[:2]) == [0, 10]
    with pytest.raises(ValueError, match="boom at 2"):
        ray.get(refs[2])
    assert ray.get(gen.completed()) is None


def test_num_returns_n_keeps_values_before_an_error(ray):
    @ray.remote(num_returns=3)
    def three(fail):
        yield 1
        if fail:
            raise KeyError("late")
        yield 2
        yield 3

    assert ray.get(three.remote(False)) == [1, 2, 3]
    a, b, c = three.remote(True)
    assert ray.get(a) == 1
    for r in (b, c):
        with pytest.raises(KeyError):
            ray.get(r)


def test_num_returns_streaming_option(ray):
    gen = count.options(num_returns="streaming").remote(2)
    assert [ray.get(r) for r in gen] == [0, 10]


@pytest.mark.raylite_only("Ray 2.60 drops the values a generator yields past num_returns")
def test_a_generator_yielding_more_than_num_returns_fails(ray):
    @ray.remote(num_returns=2)
    def gen_three():
        yield from (1, 2, 3)

    for r in gen_three.remote():
        with pytest.raises(ValueError, match="num_returns=2"):
            ray.get(r)


def test_async_for_in_asyncio(ray):
    async def main():
        out = []
        async for ref in count.remote(3):
            out.append(await ref)
        return out

    assert asyncio.run(main()) == [0, 10, 20]


def test_wait_on_a_generator(ray):
    gen = count.remote(2)
    ready, rest = ray.wait([gen])
    assert ready == [gen] and rest == []
    assert ray.get(next(gen)) == 0
    ref = ray.put(1)
    ready, rest = ray.wait([gen, ref], num_returns=2)
    assert ready == [gen, ref]
    list(gen)
    assert ray.wait([gen]) == ([gen], [])  # over: ready (next() would not wait)
    assert gen.is_finished()


@pytest.mark.cluster_only("a blocked body never runs ahead in local mode")
def test_wait_times_out_while_the_next_item_is_not_there(ray):
    flag = Flag.remote()

    @ray.remote
    def blocked(flag):
        while not ray.get(flag.is_set.remote()):
            time.sleep(0.01)
        yield 1

    gen = blocked.remote(flag)
    assert ray.wait([gen], timeout=0.2) == ([], [gen])
    assert not gen.next_ready()
    ray.get(flag.set.remote())
    assert ray.wait([gen], timeout=30) == ([gen], [])
    assert ray.get(next(gen)) == 1


def test_actor_methods_stream_sync_async_and_threaded(ray):
    @ray.remote
    class Sync:
        def gen(self, n):
            for i in range(n):
                yield i

    @ray.remote
    class Async:
        async def gen(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

        def plain(self, n):  # a plain generator method of an async actor
            for i in range(n):
                yield i

    @ray.remote(max_concurrency=2)
    class Threaded:
        def gen(self, n):  # not `yield from range(n)`: Ray's threaded and async actors
            for i in range(n):  # send() into the generator, and a range iterator has no send()
                yield i

    for actor in (Sync.remote(), Threaded.remote()):
        assert [ray.get(r) for r in actor.gen.remote(3)] == [0, 1, 2]
    a = Async.remote()
    assert [ray.get(r) for r in a.gen.remote(3)] == [0, 1, 2]
    assert [ray.get(r) for r in a.plain.remote(2)] == [0, 1]


def test_an_actor_generator_error_surfaces_at_its_item(ray):
    @ray.remote
    class A:
        def gen(self):
            yield 1
            raise RuntimeError("actor boom")

    gen = A.remote().gen.remote()
    assert ray.get(next(gen)) == 1
    with pytest.raises(RuntimeError, match="actor boom"):
        ray.get(next(gen))
    assert list(gen) == []


def test_backpressure_pauses_the_task(ray):
    counter = Flag.remote()

    @ray.remote(_generator_backpressure_num_objects=2)
    def produce(counter, n):
        for i in range(n):
            ray.get(counter.bump.remote())
            yield i

    gen = produce.remote(counter, 10)
    assert ray.get(next(gen)) == 0
    time.sleep(0.5)  # room to run ahead, if backpressure did not hold it
    assert ray.get(counter.get.remote()) <= 1 + 2  # consumed + the bound
    assert [ray.get(r) for r in gen] == list(range(1, 10))


def test_cancel_ends_the_stream_with_task_cancelled(ray):
    @ray.remote
    def forever():
        i = 0
        while True:
            yield i
            i += 1
            time.sleep(0.01)

    gen = forever.remote()
    assert ray.get(next(gen)) == 0
    ray.cancel(gen)
    seen = []
    for ref in gen:  # a few values may come before the cancel lands, then the error
        try:
            seen.append(ray.get(ref))
        except ray.exceptions.TaskCancelledError:
            seen.append("cancelled")
    assert seen[-1] == "cancelled"
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(gen.completed())


def test_large_items_and_refs_inside_items(ray):
    @ray.remote
    def big():
        yield b"x" * 300_000  # over the inline limit: shared memory on a cluster
        yield [ray.put("inner")]

    gen = big.remote()
    assert ray.get(next(gen)) == b"x" * 300_000
    [inner] = ray.get(next(gen))
    assert ray.get(inner) == "inner"


def test_the_body_sees_its_task_context(ray):
    @ray.remote
    def who():
        yield ray.get_runtime_context().get_task_name()

    assert ray.get(next(who.remote())) == "who"


def test_dynamic_gives_one_ref_to_a_dynamic_generator(ray):
    with pytest.warns(DeprecationWarning, match="dynamic"):
        ref = count.options(num_returns="dynamic").remote(3)
    value = ray.get(ref)
    assert isinstance(value, ray.DynamicObjectRefGenerator)
    assert [ray.get(r) for r in value] == [0, 10, 20]


def test_dynamic_on_an_actor_method(ray):
    @ray.remote
    class A:
        @ray.method(num_returns="dynamic")
        def gen(self, n):
            for i in range(n):
                yield i + 1

    a = A.remote()
    with pytest.warns(DeprecationWarning, match="dynamic"):
        ref = a.gen.remote(3)
    value = ray.get(ref)
    assert isinstance(value, ray.DynamicObjectRefGenerator)
    assert [ray.get(r) for r in value] == [1, 2, 3]


def test_dynamic_of_a_failed_body_gives_the_refs_and_the_failed_item_holds_its_error(ray):
    with pytest.warns(DeprecationWarning):
        bad = count.options(num_returns="dynamic").remote(3, fail_at=1)
    refs = list(ray.get(bad))
    assert len(refs) == 2 and ray.get(refs[0]) == 0
    with pytest.raises(ValueError, match="boom at 1"):
        ray.get(refs[1])


@pytest.mark.raylite_only("raylite's refusal messages")
def test_unsupported_forms_are_refused_when_decorated(ray):
    async def agen():
        yield 1

    with pytest.raises(TypeError, match="async generator"):
        ray.remote(agen)
    with pytest.raises(TypeError, match="generator function"):
        ray.remote(num_returns="streaming")(lambda: 1)
    with pytest.raises(TypeError, match="generator function"):
        ray.remote(lambda: 1).options(num_returns="streaming")

    class NotGen:
        @ray.method(num_returns="streaming")
        def f(self):
            return 1

    with pytest.raises(TypeError, match="generator method"):
        ray.remote(NotGen)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(count.remote(1))


@pytest.mark.raylite_only("reads the owner core's entries")
def test_items_belong_to_the_caller_and_are_freed_when_dropped(ray):
    import gc

    from raylite._runtime import current

    entries = current()._core.objects.entries
    gen = count.remote(4)
    first = next(gen)
    ray.wait([gen])  # the next item is in (or being made) and held by the stream
    ids = [r._id for r in [first]]
    before = len(entries)
    del gen
    gc.collect()
    assert len(entries) < before            # the stream's holds went with it
    assert all(i in entries for i in ids)   # ... not the caller's own refs
    assert ray.get(first) == 0


def test_cancel_an_actor_generator(ray):
    @ray.remote
    class A:
        def forever(self):
            i = 0
            while True:
                yield i
                i += 1
                time.sleep(0.01)

        def ping(self):
            return "pong"

    a = A.remote()
    gen = a.forever.remote()
    assert ray.get(next(gen)) == 0
    ray.cancel(gen)
    last = None
    for ref in gen:
        try:
            ray.get(ref)
        except ray.exceptions.TaskCancelledError as e:
            last = e
    assert isinstance(last, ray.exceptions.TaskCancelledError)
    assert ray.get(a.ping.remote()) == "pong"  # the actor lives on


def test_a_task_consumes_generators_it_started(ray):
    @ray.remote
    def outer(n):  # a worker's lease is warm: each push goes out at once, its items right after
        return [[ray.get(r) for r in count.remote(n)] for _ in range(20)]

    assert ray.get(outer.remote(3)) == [[0, 10, 20]] * 20


def test_a_fixed_count_generator_runs_in_its_task_context(ray):
    @ray.remote(num_returns=2)
    def two():
        yield ray.get_runtime_context().get_task_name()
        yield 2

    @ray.remote
    class A:
        @ray.method(num_returns=2)
        def two(self):
            yield ray.get_runtime_context().get_task_name()
            yield 2

    assert ray.get(two.remote()) == ["two", 2]
    assert ray.get(A.remote().two.remote()) == ["A.two", 2]


def test_backpressure_on_an_actor_method(ray):
    @ray.remote(max_concurrency=2)
    class Producer:
        def __init__(self):
            self.made = 0

        @ray.method(_generator_backpressure_num_objects=1)
        def gen(self, n):
            for i in range(n):
                self.made += 1
                yield i

        def made_so_far(self):
            return self.made

    p = Producer.remote()
    gen = p.gen.remote(5)
    assert ray.get(next(gen)) == 0
    time.sleep(0.3)  # room to run ahead, if backpressure did not hold it
    assert ray.get(p.made_so_far.remote()) <= 1 + 1
    assert [ray.get(r) for r in gen] == [1, 2, 3, 4]


def test_many_streams_at_once_consumed_round_robin(ray):
    gens = [count.remote(20) for _ in range(12)]
    got = [[] for _ in gens]
    live = list(range(len(gens)))
    while live:
        for i in list(live):
            try:
                got[i].append(ray.get(next(gens[i])))
            except StopIteration:
                live.remove(i)
    assert got == [[i * 10 for i in range(20)]] * len(gens)
