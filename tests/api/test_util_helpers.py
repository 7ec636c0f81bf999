"""as_completed, map_unordered and get_node_ip_address on both runtimes."""
import time

import pytest

from raylite.util import as_completed, get_node_ip_address, map_unordered


def _sleepy(ray, per_unit=0.1):
    @ray.remote
    def f(x):
        time.sleep(x * per_unit)
        return x
    return f


def test_as_completed_yields_every_value(ray):
    f = _sleepy(ray)
    refs = [f.remote(x) for x in [3, 0, 2, 1]]
    assert sorted(as_completed(refs, chunk_size=1)) == [0, 1, 2, 3]
    assert sorted(as_completed(refs)) == [0, 1, 2, 3]
    got = list(as_completed(refs, chunk_size=2, yield_obj_refs=True))
    assert sorted(got, key=lambda r: r.hex()) == sorted(refs, key=lambda r: r.hex())
    assert list(as_completed([])) == []


@pytest.mark.cluster_only("tasks finish in a different order only when they run concurrently")
def test_as_completed_gives_the_first_finished_first(ray):
    f = _sleepy(ray)
    refs = [f.remote(x) for x in [20, 0]]
    assert next(as_completed(refs, chunk_size=1)) == 0


@pytest.mark.cluster_only("nothing is ever still running in local mode")
def test_as_completed_timeout_bounds_each_round_not_the_whole(ray):
    f = _sleepy(ray)
    refs = [f.remote(x) for x in [5, 0]]  # 0.5 s and 0 s
    start = time.monotonic()
    assert sorted(as_completed(refs, chunk_size=1, timeout=0.1)) == [0, 5]  # as in Ray
    assert time.monotonic() - start >= 0.4


def test_as_completed_raises_a_tasks_error_and_checks_arguments(ray):
    @ray.remote
    def boom():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        list(as_completed([boom.remote()]))
    with pytest.raises(ValueError, match="chunk_size"):
        as_completed([ray.put(1)], chunk_size=0)
    with pytest.raises(TypeError, match="ObjectRefs"):
        as_completed([1, 2])


def test_map_unordered_runs_a_remote_function_over_items(ray):
    f = _sleepy(ray)
    assert sorted(map_unordered(f, [3, 0, 2, 1], chunk_size=1)) == [0, 1, 2, 3]
    quick = _sleepy(ray, 0.001)  # 25 items: 0.3 s in all even one at a time (local mode)
    assert sorted(map_unordered(quick, iter(range(25)), backpressure_size=4, chunk_size=3)) == \
        list(range(25))
    assert sorted(map_unordered(f, range(5), backpressure_size=None)) == list(range(5))
    refs = list(map_unordered(f, [1, 2], yield_obj_refs=True))
    assert sorted(ray.get(refs)) == [1, 2]
    assert list(map_unordered(f, [])) == []


@pytest.mark.cluster_only("in local mode every task finishes as it is submitted")
def test_map_unordered_keeps_at_most_backpressure_size_in_flight(ray):
    submitted = []

    class Counting:
        def __init__(self, fn):
            self.fn = fn

        def remote(self, x):
            submitted.append(x)
            return self.fn.remote(x)

    f = _sleepy(ray)
    it = map_unordered(Counting(f), range(10), backpressure_size=3, chunk_size=1)
    first = next(it)
    assert first in (0, 1, 2) and submitted == [0, 1, 2]  # nothing more until one came back
    assert sorted([first, *it]) == list(range(10))


def test_map_unordered_errors(ray):
    @ray.remote
    def half(x):
        if x == 2:
            raise ValueError("two")
        return x

    with pytest.raises(ValueError, match="two"):
        list(map_unordered(half, range(4)))
    with pytest.raises(TypeError, match="remote function"):
        map_unordered(lambda x: x, [1])
    with pytest.raises(ValueError, match="backpressure_size"):
        map_unordered(half, [1], backpressure_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        map_unordered(half, [1], chunk_size=-1)


def test_get_node_ip_address(ray):
    @ray.remote
    def ip():
        from raylite.util import get_node_ip_address
        return get_node_ip_address()

    node = ray.nodes()[0]["NodeManagerAddress"]
    assert get_node_ip_address() == node == ray.get(ip.remote())
    assert get_node_ip_address("127.0.0.1:9") == "127.0.0.1"  # UDP connect: nothing is sent
    with pytest.raises(ValueError, match="host:port"):
        get_node_ip_address("no-port")


def test_get_node_ip_address_before_init():
    assert get_node_ip_address() == "127.0.0.1"


def test_list_named_actors_in_this_namespace_or_all(runtime_kwargs):
    import raylite
    from raylite.util import list_named_actors

    raylite.init(namespace="names-a", **runtime_kwargs)

    @raylite.remote
    class Named:
        def ping(self):
            return 1

    alpha = Named.options(name="alpha").remote()
    beta = Named.options(name="beta", namespace="names-b").remote()
    anonymous = Named.remote()
    assert raylite.get([a.ping.remote() for a in (alpha, beta, anonymous)]) == [1] * 3
    assert list_named_actors() == ["alpha"]
    everywhere = list_named_actors(all_namespaces=True)
    assert {"name": "alpha", "namespace": "names-a"} in everywhere
    assert {"name": "beta", "namespace": "names-b"} in everywhere
    assert all(set(entry) == {"name", "namespace"} for entry in everywhere)
    assert not [e for e in everywhere if e["namespace"] in ("names-a", "names-b")
                and e["name"] not in ("alpha", "beta")]
    raylite.kill(alpha)
    deadline = time.monotonic() + 30  # Ray ends a killed actor asynchronously
    while "alpha" in list_named_actors() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list_named_actors() == []
    assert {"name": "beta", "namespace": "names-b"} in list_named_actors(all_namespaces=True)
