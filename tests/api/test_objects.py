import asyncio
import pickle
import time

import pytest

from raylite.exceptions import GetTimeoutError



def test_put_get(ray):
    ref = ray.put({"a": [1, 2, 3]})
    assert ray.get(ref) == {"a": [1, 2, 3]}
    assert ray.get([ref, ray.put(None)]) == [{"a": [1, 2, 3]}, None]


def test_get_returns_copies(ray):
    ref = ray.put([1, 2])
    a = ray.get(ref)
    a.append(3)
    assert ray.get(ref) == [1, 2]


def test_put_of_ref_is_error(ray):
    with pytest.raises(TypeError, match="ObjectRef"):
        ray.put(ray.put(1))


def test_get_bad_arguments(ray):
    with pytest.raises(ValueError, match="ObjectRef"):
        ray.get(5)
    with pytest.raises(ValueError, match="ObjectRef"):
        ray.get((ray.put(1),))
    with pytest.raises(TypeError):
        ray.get([ray.put(1), 2])
    with pytest.raises(ValueError, match="timeout"):
        ray.get(ray.put(1), timeout=-1)


@pytest.mark.cluster_only("a slow task has finished before get() is called")
def test_get_timeout(ray):
    @ray.remote
    def slow():
        time.sleep(3)

    with pytest.raises(GetTimeoutError):
        ray.get(slow.remote(), timeout=0.1)
    assert issubclass(GetTimeoutError, TimeoutError)


def test_wait(ray):
    @ray.remote
    def value(x):
        return x

    refs = [value.remote(i) for i in range(4)]
    ready, not_ready = ray.wait(refs, num_returns=4, timeout=10)
    assert ready == refs and not_ready == []
    ready, not_ready = ray.wait(refs)
    assert len(ready) == 1 and len(not_ready) == 3 and ready[0] in refs
    assert ray.wait([]) == ([], [])


@pytest.mark.cluster_only("every task has finished by the time wait() runs")
def test_wait_timeout_returns_partial(ray):
    @ray.remote
    def slow():
        time.sleep(3)

    fast = ray.put(1)
    ready, not_ready = ray.wait([fast, slow.remote()], num_returns=2, timeout=0.2)
    assert ready == [fast] and len(not_ready) == 1


def test_wait_validation(ray):
    r = ray.put(1)
    with pytest.raises(ValueError, match="unique"):
        ray.wait([r, r])
    with pytest.raises(ValueError, match="num_returns"):
        ray.wait([r], num_returns=2)
    with pytest.raises(TypeError):
        ray.wait(r)
    with pytest.raises(TypeError):
        ray.wait([r, 3])


@pytest.mark.raylite_only("asserts raylite's 16-byte ids (Ray's ObjectRef ids are 28 bytes)")
def test_ref_hashable_picklable(ray):
    r = ray.put(3)
    assert r == r and len({r, r}) == 1
    clone = pickle.loads(pickle.dumps(r))
    assert clone == r and ray.get(clone) == 3
    assert len(r.hex()) == 32 and r.binary() == bytes.fromhex(r.hex())


def test_future_and_await(ray):
    @ray.remote
    def f():
        return 7

    assert f.remote().future().result(timeout=10) == 7

    async def main():
        return await f.remote()

    assert asyncio.run(main()) == 7


def test_refs_inside_put_values(ray):
    inner = ray.put("inner")
    outer = ray.put({"ref": inner})
    got = ray.get(outer)["ref"]
    assert isinstance(got, ray.ObjectRef) and ray.get(got) == "inner"


def test_cancel(ray):
    @ray.remote
    def quick():
        return 1

    ref = quick.remote()
    ray.get(ref)
    ray.cancel(ref)  # cancelling a finished task does nothing, as in Ray
    assert ray.get(ref) == 1
    with pytest.raises(TypeError):
        ray.cancel("not a ref")


def test_wait_options(ray):
    refs = [ray.put(i) for i in range(3)]
    ready, not_ready = ray.wait(refs, num_returns=2, timeout=0, fetch_local=False)
    assert len(ready) == 2 and len(not_ready) == 1 and set(ready + not_ready) == set(refs)
    with pytest.raises(ValueError, match="num_returns|number"):
        ray.wait(refs, num_returns=0)
    with pytest.raises(ValueError, match="timeout"):
        ray.wait(refs, timeout=-1)


def test_refs_passed_to_actor_methods(ray):
    @ray.remote
    class Box:
        def take(self, value, nested):
            return value, type(nested[0]).__name__

    r = ray.put("v")
    assert ray.get(Box.remote().take.remote(r, [r])) == ("v", "ObjectRef")


@pytest.mark.raylite_only("the suite's Ray outlives raylite.shutdown() (one Ray per test module), so its refs stay valid")
def test_ref_owned_by_a_shut_down_runtime(ray, runtime_kwargs):
    ref = ray.put(1)
    ray.shutdown()
    ray.init(**runtime_kwargs)
    with pytest.raises(ray.exceptions.ObjectLostError):
        ray.get(ref, timeout=10)
