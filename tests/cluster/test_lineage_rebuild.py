"""Lineage reconstruction across a node's death, beyond plain tasks (test_node_death.py):
a task whose large argument went by value to shared memory is rebuilt (and its lineage let
go with its output), an actor call's output is rebuilt only when the actor restarts and the
method has max_task_retries, and a task whose argument vanished while it read it is retried
(a system failure, no retry_exceptions needed)."""
import gc
import os
import time

import pytest

import raylite
from raylite.cluster_utils import Cluster
from raylite.exceptions import ObjectReconstructionFailedError
from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy

TIMEOUT_S = 3.0  # the head's health check timeout in these tests (default 10 s)


@pytest.fixture
def cluster(monkeypatch):
    monkeypatch.setenv("RAYLITE_HEALTH_CHECK_TIMEOUT_S", str(TIMEOUT_S))
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    yield c
    c.shutdown()


def _until(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def _core():
    from raylite import _runtime

    return _runtime.current()._core


def _stored_on(ref) -> str:
    return _core().objects.entries[ref._id].data.node


def _alive(node_id: str) -> bool:
    return {n["NodeID"]: n["Alive"] for n in raylite.nodes()}[node_id]


@raylite.remote
def grow(blob: bytes) -> tuple:
    """Its argument is over 100 KB: it went by value to our shared memory (a blob)."""
    return raylite.get_runtime_context().get_node_id(), blob[:4], blob * 2


@raylite.remote
def big(tag: str) -> tuple:
    return raylite.get_runtime_context().get_node_id(), tag, b"x" * 300_000


@raylite.remote
def bigger(x: tuple) -> tuple:
    return raylite.get_runtime_context().get_node_id(), x[1] + "+", len(x[2])


@raylite.remote
class Maker:
    def make(self, tag: str) -> tuple:
        return raylite.get_runtime_context().get_node_id(), tag, b"a" * 300_000


def test_a_task_with_a_large_by_value_argument_is_rebuilt_and_its_lineage_let_go(cluster):
    b = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=True)
    y = grow.options(scheduling_strategy=on_b, max_retries=2).remote(b"arg!" * 100_000)
    assert len(raylite.wait([y], timeout=60)[0]) == 1 and _stored_on(y) == b.node_id[:12]
    assert len(_core().lineage.book.kept) == 1          # its spec and its blob, kept
    cluster.remove_node(b, allow_graceful=False)
    node, head, data = raylite.get(y, timeout=60)       # run again, reading the same blob
    assert (node, head, len(data)) == (cluster.head_node.node_id, b"arg!", 800_000)
    del y, data
    gc.collect()
    assert _core().lineage.book.statistics()[:2] == (0, 0)  # the output went: so did its lineage


def test_actor_outputs_are_rebuilt_with_task_retries_else_fail_precisely(cluster):
    b = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=True)
    retried = Maker.options(scheduling_strategy=on_b, max_restarts=1, max_task_retries=1).remote()
    once = Maker.options(scheduling_strategy=on_b, max_restarts=1).remote()  # max_task_retries=0
    mortal = Maker.options(scheduling_strategy=on_b, max_restarts=0,
                           max_task_retries=1).remote()
    refs = [retried.make.remote("r"), once.make.remote("o"), mortal.make.remote("m")]
    assert len(raylite.wait(refs, num_returns=3, timeout=60)[0]) == 3
    assert {_stored_on(r) for r in refs} == {b.node_id[:12]}
    cluster.remove_node(b, allow_graceful=False)
    _until(lambda: not _alive(b.node_id), "the killed node is listed dead")
    node, tag, data = raylite.get(refs[0], timeout=60)  # the restarted actor made it again
    assert (node, tag, len(data)) == (cluster.head_node.node_id, "r", 300_000)
    with pytest.raises(ObjectReconstructionFailedError, match="max_task_retries"):
        raylite.get(refs[1], timeout=60)
    with pytest.raises(ObjectReconstructionFailedError, match="cannot restart"):
        raylite.get(refs[2], timeout=60)


def test_a_task_whose_argument_is_lost_while_it_reads_it_is_retried(cluster):
    """g(x) runs on C and reads x from B. x's segment on B is gone first (B's daemon cannot
    serve it: the read fails while B is still alive, as when B dies mid-read before anyone
    hears of it), then B dies: g, failed with ObjectLostError, is retried within
    max_retries once x is rebuilt, without retry_exceptions."""
    from raylite._object_store import shm

    b = cluster.add_node(num_cpus=1)
    c = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    x = big.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b.node_id, soft=True),
                    max_retries=1).remote("x")
    assert len(raylite.wait([x], timeout=60)[0]) == 1 and _stored_on(x) == b.node_id[:12]
    os.unlink(shm.segment_path(b.node_id[:12], x._id))
    on_c = NodeAffinitySchedulingStrategy(c.node_id, soft=False)
    g = bigger.options(scheduling_strategy=on_c, max_retries=1).remote(x)
    parked = _core().lineage.parked
    _until(lambda: len(parked) == 1, "g failed reading x and waits to hear of B's death")
    cluster.remove_node(b, allow_graceful=False)
    assert raylite.get(g, timeout=60) == (c.node_id, "x+", 300_000)
    assert raylite.get(x, timeout=60)[1] == "x" and not parked
