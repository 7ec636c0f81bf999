"""raylite.cluster_utils.Cluster: a head and nodes on one machine (loopback), Ray's API;
large objects follow a task that spills to another node, and come back."""
import time

import pytest

import raylite
from raylite.cluster_utils import Cluster
from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@raylite.remote
def where(pause: float = 0.0) -> str:
    time.sleep(pause)
    return raylite.get_runtime_context().get_node_id()


@raylite.remote
class Where:
    def node(self) -> str:
        return raylite.get_runtime_context().get_node_id()


@pytest.fixture
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    yield c
    c.shutdown()


def test_two_nodes_tasks_spill_and_follow_resources_strategies_and_affinity(cluster):
    b = cluster.add_node(num_cpus=1, resources={"b": 1}, labels={"zone": "b"})
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    head = cluster.head_node.node_id
    nodes = {n["NodeID"]: n for n in raylite.nodes()}
    assert set(nodes) == {head, b.node_id} and all(n["Alive"] for n in nodes.values())
    assert nodes[b.node_id]["NodeManagerAddress"] == "127.0.0.1"
    assert nodes[b.node_id]["Labels"]["zone"] == "b" and nodes[b.node_id]["Resources"]["b"] == 1
    assert raylite.cluster_resources()["CPU"] == 2
    assert raylite.get(where.options(resources={"b": 1}).remote()) == b.node_id
    # two at once on one CPU each: the second spills to the other node
    assert set(raylite.get([where.remote(0.5) for _ in range(2)])) == {head, b.node_id}
    spread = raylite.get([where.options(scheduling_strategy="SPREAD").remote(0.2)
                          for _ in range(2)])
    assert set(spread) == {head, b.node_id}
    one_by_one = where.options(scheduling_strategy="SPREAD")  # each leases anew: goes round too
    assert {raylite.get(one_by_one.remote()) for _ in range(4)} == {head, b.node_id}
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=False)
    assert raylite.get([where.options(scheduling_strategy=on_b).remote() for _ in range(3)]) == \
        [b.node_id] * 3
    actor = Where.options(scheduling_strategy=on_b).remote()
    assert raylite.get(actor.node.remote()) == b.node_id
    gone = NodeAffinitySchedulingStrategy("ab" * 16, soft=False)
    with pytest.raises(raylite.exceptions.TaskUnschedulableError, match="soft=True"):
        raylite.get(where.options(scheduling_strategy=gone).remote())
    assert raylite.get(where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        "ab" * 16, soft=True)).remote()) in (head, b.node_id)
    # a worker of the other node dies: that node's daemon says how
    with pytest.raises(raylite.exceptions.WorkerCrashedError, match="exited with code 3"):
        raylite.get(crash.options(scheduling_strategy=on_b).remote())


@raylite.remote(max_retries=0)
def crash():
    import os

    os._exit(3)


def test_remove_node_and_bad_arguments(cluster):
    b = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    with pytest.raises(ValueError, match="num_cpus"):
        cluster.add_node(num_cpu=1)
    cluster.remove_node(b)
    cluster.wait_for_nodes()  # the head no longer lists it alive
    raylite.init(address=cluster.address)
    alive = [n["NodeID"] for n in raylite.nodes() if n["Alive"]]
    assert alive == [cluster.head_node.node_id]


def test_a_task_spilled_to_another_node_takes_and_returns_large_objects(cluster):
    np = pytest.importorskip("numpy")
    cluster.add_node(num_cpus=1, resources={"b": 1})
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    try:
        arr = np.arange(2_000_000, dtype=np.int64)  # 16 MB: in shared memory, on the head

        @raylite.remote(resources={"b": 1})  # only the other node has "b"
        def total(a):
            return int(a.sum()), raylite.get_runtime_context().get_node_id()

        @raylite.remote(resources={"b": 1})
        def ones():
            return np.ones(1_000_000)

        s, node = raylite.get(total.remote(raylite.put(arr)))
        assert s == int(arr.sum()) and node != raylite.get_runtime_context().get_node_id()
        assert raylite.get(ones.remote()).sum() == 1_000_000  # made there, read here
    finally:
        raylite.shutdown()


def test_a_task_runs_on_the_node_that_holds_its_largest_argument(cluster):
    """Locality (raylite._core.owner.locality): the driver's node has a free CPU, yet a task
    whose 32 MB argument lives on node B runs on B; a 1.6 MB argument here does not pull it
    back; a task with only small ones, or a strategy of its own, stays where that says."""
    np = pytest.importorskip("numpy")
    b = cluster.add_node(num_cpus=2, resources={"b": 1})
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    try:
        head = cluster.head_node.node_id

        @raylite.remote(resources={"b": 1})
        def make():
            return np.ones(4_000_000)

        @raylite.remote
        def consume(*arrays):
            return raylite.get_runtime_context().get_node_id(), sum(int(a.sum()) for a in arrays)

        big = make.remote()
        raylite.wait([big], timeout=60)
        small = raylite.put(np.ones(200_000))
        assert [raylite.get(consume.remote(big, small)) for _ in range(3)] == \
            [(b.node_id, 4_200_000)] * 3
        assert raylite.get(consume.remote(small, small)) == (head, 400_000)
        pinned = NodeAffinitySchedulingStrategy(head, soft=False)
        assert raylite.get(consume.options(scheduling_strategy=pinned).remote(big)) == \
            (head, 4_000_000)
    finally:
        raylite.shutdown()
