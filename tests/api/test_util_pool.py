"""raylite.util.multiprocessing.Pool on both runtimes: the standard library's results and errors."""
import multiprocessing
import sys
import threading
import time

import pytest

from raylite.exceptions import RayActorError
from raylite.util.multiprocessing import Pool, RemoteTraceback, TimeoutError


def square(x):
    return x * x


def fails_on_three(x):
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


@pytest.fixture
def pool(ray):
    p = Pool(processes=2)
    yield p
    p.terminate()


def test_map_starmap_and_chunksizes(pool):
    assert pool.map(square, range(10)) == [x * x for x in range(10)]
    assert pool.map(square, (x for x in range(7)), chunksize=3) == [x * x for x in range(7)]
    assert pool.map(lambda x: -x, [5], chunksize=100) == [-5]
    assert pool.map(square, []) == []
    assert pool.starmap(pow, [(2, 3), (3, 2), (10, 0)]) == [8, 9, 1]
    assert pool.starmap(pow, iter([(2, 5)] * 30), chunksize=4) == [32] * 30
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(square, [1], chunksize=0)


def test_map_over_ranges_tuples_and_list_subclasses(pool):
    for r in (range(3, 50, 7), range(40, -9, -3), range(0), range(10**12, 10**12 + 5)):
        assert pool.map(square, r) == [x * x for x in r]
        assert pool.map(square, r, chunksize=2) == [x * x for x in r]
    assert pool.starmap(pow, ((2, 3), (3, 2))) == [8, 9]

    class Items(list):
        pass

    assert pool.map(square, Items([1, 2, 3])) == [1, 4, 9]


@pytest.mark.raylite_only("what travels to raylite's Pool workers")
def test_a_range_is_sent_as_ranges_and_a_list_as_lists(ray, monkeypatch):
    sent = []
    submit = Pool._submit

    def spy(self, key, fn, mode, chunks, slot=None):
        sent.extend(chunks)
        return submit(self, key, fn, mode, chunks, slot)

    monkeypatch.setattr(Pool, "_submit", spy)
    with Pool(processes=2) as p:
        assert p.map(square, range(20), chunksize=6) == [x * x for x in range(20)]
        assert sent == [range(0, 6), range(6, 12), range(12, 18), range(18, 20)]
        sent.clear()
        assert p.map(square, list(range(5)), chunksize=3) == [0, 1, 4, 9, 16]
        assert sent == [[0, 1, 2], [3, 4]]


def test_imap_and_imap_unordered(pool):
    assert list(pool.imap(square, range(20))) == [x * x for x in range(20)]
    assert list(pool.imap(square, iter(range(50)), chunksize=7)) == [x * x for x in range(50)]
    assert sorted(pool.imap_unordered(square, range(20), chunksize=3)) == \
        sorted(x * x for x in range(20))
    assert list(pool.imap(square, [])) == []
    with pytest.raises(ValueError, match="chunksize"):
        pool.imap(square, [1], chunksize=0)


def test_imap_reads_its_iterable_lazily(pool):
    taken = []

    def items():
        for i in range(1000):
            taken.append(i)
            yield i

    it = pool.imap(square, items(), chunksize=2)
    assert next(it) == 0
    assert len(taken) < 1000  # a bounded window of chunks in flight, not the whole input
    assert list(it) == [x * x for x in range(1, 1000)]


def test_apply_and_apply_async(pool):
    assert pool.apply(divmod, (17, 5)) == (3, 2)
    assert pool.apply(dict, (), {"a": 1}) == {"a": 1}
    assert pool.apply(dict, kwargs={"b": 2}) == {"b": 2}  # Ray's keyword
    r = pool.apply_async(square, (9,))
    assert r.get(timeout=30) == 81 and r.ready() and r.successful()
    with pytest.raises(TypeError, match="callable"):
        pool.apply_async(42)


def test_async_results_and_callbacks(pool):
    seen, errors = [], []
    r = pool.map_async(square, range(5), callback=seen.append, error_callback=errors.append)
    assert r.get(timeout=30) == [0, 1, 4, 9, 16]
    assert seen == [[0, 1, 4, 9, 16]] and errors == []  # the callback ran before get() returned
    r = pool.starmap_async(pow, [(2, 2)], callback=seen.append)
    r.wait(30)
    assert r.get() == [4] and seen[-1] == [4]
    r = pool.map_async(fails_on_three, range(5), callback=seen.append, error_callback=errors.append)
    with pytest.raises(ValueError, match="bad item 3"):
        r.get(timeout=30)
    assert not r.successful() and isinstance(errors[0], ValueError) and len(seen) == 2
    done = threading.Event()
    pool.apply_async(square, (3,), callback=lambda v: done.set())
    assert done.wait(30)


@pytest.mark.parametrize("error", [RuntimeError, SystemExit])
def test_a_failing_callback_is_logged_and_the_pool_goes_on(pool, caplog, error):
    def bad_callback(value):
        raise error("callback broke")

    r = pool.apply_async(square, (4,), callback=bad_callback)
    assert r.get(timeout=30) == 16 and r.successful()
    seen = []
    assert pool.apply_async(square, (5,), callback=seen.append).get(timeout=30) == 25
    assert seen == [25]
    assert "callback broke" in caplog.text


def test_a_functions_exception_is_reraised_as_itself(pool):
    with pytest.raises(ValueError, match="bad item 3") as info:
        pool.map(fails_on_three, range(6))
    assert type(info.value) is ValueError  # not a wrapper: exactly what the function raised
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "fails_on_three" in str(info.value.__cause__)
    with pytest.raises(ZeroDivisionError):
        pool.apply(divmod, (1, 0))
    with pytest.raises(ValueError):
        pool.starmap(fails_on_three, [(3,)])


def test_imap_raises_at_the_failing_chunk_and_goes_on(pool):
    it = pool.imap(fails_on_three, range(6))
    assert [next(it), next(it), next(it)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3"):
        next(it)
    assert list(it) == [4, 5]


def test_an_exception_that_cannot_be_pickled_still_arrives(pool):
    def raises_unpicklable(x):
        err = RuntimeError("holds a lock")
        err.lock = threading.Lock()
        raise err

    with pytest.raises(RuntimeError, match="holds a lock"):
        pool.map(raises_unpicklable, [1])


@pytest.mark.cluster_only("a result is always ready at once in local mode")
def test_timeouts_are_multiprocessings(pool):
    r = pool.apply_async(time.sleep, (2,))
    with pytest.raises(multiprocessing.TimeoutError):
        r.get(timeout=0.1)
    assert TimeoutError is multiprocessing.TimeoutError and not r.ready()
    it = pool.imap(time.sleep, [2])
    with pytest.raises(multiprocessing.TimeoutError):
        it.next(timeout=0.1)
    assert r.get(timeout=30) is None


def test_processes_and_bad_arguments(ray):
    with Pool() as p:  # one process per CPU, as in Ray
        assert p._processes == 4
        assert p.map(square, range(3)) == [0, 1, 4]
    with pytest.raises(ValueError, match="5 processes .* 4 CPUs"):
        Pool(processes=5)
    with pytest.raises(ValueError, match="processes"):
        Pool(processes=0)
    with pytest.raises(TypeError, match="initializer"):
        Pool(initializer=3)
    with pytest.raises(ValueError, match="maxtasksperchild"):
        Pool(maxtasksperchild=0)
    with Pool(processes=2, ray_remote_args={"num_cpus": 2}) as p:
        assert p.map(square, [2]) == [4]
    with pytest.raises(ValueError, match="3 processes of 2 CPU"):
        Pool(processes=3, ray_remote_args={"num_cpus": 2})


@pytest.fixture
def token_attr():
    yield
    if hasattr(sys, "_raylite_pool_test_token"):
        del sys._raylite_pool_test_token


def _set_token(prefix):
    import sys
    import uuid
    sys._raylite_pool_test_token = f"{prefix}-{uuid.uuid4().hex}"


def _token(_x):
    import sys
    return sys._raylite_pool_test_token


def test_initializer_runs_in_each_worker(ray, token_attr):
    with Pool(processes=1, initializer=_set_token, initargs=("init",)) as p:
        tokens = p.map(_token, range(4))
    assert len(set(tokens)) == 1 and tokens[0].startswith("init-")


def test_maxtasksperchild_gives_a_fresh_worker_after_that_many_chunks(ray, token_attr):
    p = Pool(processes=1, initializer=_set_token, initargs=("w",), maxtasksperchild=2)
    tokens = p.map(_token, range(6), chunksize=1)
    assert tokens[0] == tokens[1] != tokens[2] == tokens[3] != tokens[4] == tokens[5]
    p.close()
    p.join()


def fails_from_three(x):
    if x >= 3:
        raise ValueError(f"bad item {x}")
    return x


@pytest.mark.cluster_only("local mode's workers share one process, so one token")
def test_a_map_gives_each_worker_its_share_of_chunks_in_one_call(ray, token_attr):
    with Pool(processes=2, initializer=_set_token, initargs=("w",)) as p:
        tokens = p.map(_token, range(8), chunksize=1)
        assert tokens[:4] == [tokens[0]] * 4 and tokens[4:] == [tokens[4]] * 4
        assert tokens[0] != tokens[4]  # contiguous shares, two workers, results in order
        with pytest.raises(ValueError, match="bad item 3"):  # the first failure in order
            p.map(fails_from_three, range(8), chunksize=1)
        assert p.map(square, range(9), chunksize=2) == [x * x for x in range(9)]


def test_close_join_and_the_context_manager(ray):
    p = Pool(processes=2)
    with pytest.raises(ValueError, match="still running"):
        p.join()
    r = p.apply_async(time.sleep, (0.3,))
    it = p.imap(square, range(40))
    p.close()
    with pytest.raises(ValueError, match="Pool not running"):
        p.map(square, [1])
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply_async(square, (1,))
    p.join()  # waits for the work given
    assert r.ready() and r.get() is None
    assert list(it) == [x * x for x in range(40)]
    with Pool(processes=1) as q:
        assert q.map(square, [3]) == [9]
    with pytest.raises(ValueError, match="Pool not running"):
        q.map(square, [1])
    q.join()  # after terminate: returns


@pytest.mark.cluster_only("nothing is still running in local mode when terminate() comes")
def test_terminate_fails_the_work_in_flight(ray):
    p = Pool(processes=1)
    errors = []
    r = p.apply_async(time.sleep, (30,), error_callback=errors.append)
    time.sleep(0.3)
    start = time.monotonic()
    p.terminate()
    with pytest.raises(RayActorError):
        r.get(timeout=30)
    assert time.monotonic() - start < 15 and isinstance(errors[0], RayActorError)
    p.join()


def test_pool_inside_a_task(ray):
    @ray.remote
    def nested():
        from raylite.util.multiprocessing import Pool

        with Pool(processes=1) as p:
            return p.map(abs, [-1, -2])

    assert ray.get(nested.remote()) == [1, 2]
