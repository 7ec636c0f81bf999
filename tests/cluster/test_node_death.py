"""A node that stops answering (frozen with SIGSTOP: its connections stay open) is marked
dead by the head's health check; what ran there is retried, restarted or fails precisely;
a node killed outright (its connections close) is handled the same way. Lineage across a
death, beyond plain tasks: a task whose large argument went by value to shared memory is
rebuilt (its lineage let go with its output), an actor call's output is rebuilt only when
the actor restarts and the method has max_task_retries, a task whose argument vanished
while it read it is retried (a system failure, no retry_exceptions needed), and an actor
call in that case goes again once the argument is back."""
import gc
import os
import signal
import time

import pytest

import raylite
from raylite.cluster_utils import Cluster
from raylite.exceptions import (ActorDiedError, ActorUnavailableError, ObjectLostError,
                                ObjectReconstructionFailedError, WorkerCrashedError)
from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy

TIMEOUT_S = 1.0  # the head's health check timeout in these tests (default 10 s)


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


def _alive(node_id: str) -> bool:
    return {n["NodeID"]: n["Alive"] for n in raylite.nodes()}[node_id]


def _first_run_waits(marker: str, pause: float) -> str:
    """The first run (no marker yet) leaves the marker and waits; a retry returns at once."""
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(pause)
    return raylite.get_runtime_context().get_node_id()


@raylite.remote
def where(marker: str = "", pause: float = 0.0) -> str:
    return _first_run_waits(marker, pause)


@raylite.remote
class Where:
    def node(self, marker: str = "", pause: float = 0.0) -> str:
        return _first_run_waits(marker, pause)


def _stored_on(ref) -> str:
    """The node tag (12 hex digits of its id) where the owner (this driver) says a large
    object lives."""
    from raylite import _runtime

    return _runtime.current()._objects.entries[ref._id].data.node


def _started(path: str) -> None:
    _until(lambda: os.path.exists(path), f"the call writing {path} started")


def test_a_frozen_node_is_marked_dead_and_a_restarted_daemon_joins_as_a_new_node(cluster, tmp_path):
    b = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    assert _alive(b.node_id)
    os.killpg(b.pid, signal.SIGSTOP)  # daemon, fork server, workers: frozen, sockets open
    try:
        _until(lambda: not _alive(b.node_id), "the frozen node is listed dead")
    finally:
        os.killpg(b.pid, signal.SIGCONT)
    # awake again, it finds its link to the head closed and stops
    assert b.proc.wait(30) is not None
    cluster.remove_node(b)  # gone already: the cluster stops counting it
    assert raylite.get(where.remote()) == cluster.head_node.node_id
    again = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    nodes = {n["NodeID"]: n["Alive"] for n in raylite.nodes()}
    assert nodes[b.node_id] is False and nodes[again.node_id] is True and again.node_id != b.node_id
    on_again = NodeAffinitySchedulingStrategy(again.node_id, soft=False)
    assert raylite.get(where.options(scheduling_strategy=on_again).remote()) == again.node_id


def test_tasks_and_actors_of_a_frozen_node_are_retried_restarted_or_fail(cluster, tmp_path):
    b = cluster.add_node(num_cpus=3)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    head = cluster.head_node.node_id
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=True)
    retried = where.options(scheduling_strategy=on_b, max_retries=1).remote(
        str(tmp_path / "retried"), 60)
    spent = where.options(scheduling_strategy=on_b, max_retries=0).remote(str(tmp_path / "spent"), 60)
    restarts = Where.options(scheduling_strategy=on_b, max_restarts=1).remote()
    mortal = Where.options(scheduling_strategy=on_b, max_restarts=0).remote()
    assert raylite.get([restarts.node.remote(), mortal.node.remote()]) == [b.node_id] * 2
    in_flight = restarts.node.remote(str(tmp_path / "call"), 60)
    for name in ("retried", "spent", "call"):
        _started(str(tmp_path / name))
    os.killpg(b.pid, signal.SIGSTOP)
    try:
        assert raylite.get(retried, timeout=60) == head          # run again on the head
        with pytest.raises(WorkerCrashedError, match=f"its node {b.node_id}.*nothing heard"):
            raylite.get(spent, timeout=60)
        with pytest.raises(ActorUnavailableError, match="may or may not have run"):
            raylite.get(in_flight, timeout=60)
        assert raylite.get(restarts.node.remote(), timeout=60) == head  # restarted there
        with pytest.raises(ActorDiedError, match=f"its node {b.node_id}"):
            raylite.get(mortal.node.remote(), timeout=60)
        assert not _alive(b.node_id)
    finally:
        cluster.remove_node(b, allow_graceful=False)  # SIGKILL reaches stopped processes


def test_a_killed_node_retries_its_tasks_and_drivers_elsewhere_carry_on(cluster, tmp_path):
    b = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=True)
    refs = [where.options(scheduling_strategy=on_b, max_retries=2).remote(
        str(tmp_path / f"t{i}"), 60) for i in range(2)]
    for i in range(2):
        _started(str(tmp_path / f"t{i}"))
    cluster.remove_node(b, allow_graceful=False)
    assert raylite.get(refs, timeout=60) == [cluster.head_node.node_id] * 2
    assert raylite.get([where.remote() for _ in range(4)], timeout=60) == \
        [cluster.head_node.node_id] * 4


def test_an_actor_restarted_after_its_node_died_has_a_creation_attempt_per_node(cluster):
    from raylite.util.state import list_tasks

    b = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=True)
    a = Where.options(scheduling_strategy=on_b, max_restarts=1).remote()
    assert raylite.get(a.node.remote(), timeout=60) == b.node_id
    attempts = lambda: sorted(list_tasks(filters=[("task_id", "=", a._actor_id.hex())],
                                         detail=True),
                              key=lambda r: r.attempt_number)
    _until(lambda: [r.state for r in attempts()] == ["FINISHED"], "attempt 0 finished")
    cluster.remove_node(b, allow_graceful=False)
    _until(lambda: not _alive(b.node_id), "the node seen dead")
    head = cluster.head_node.node_id
    assert raylite.get(a.node.remote(), timeout=60) == head  # restarted there
    _until(lambda: [r.state for r in attempts()] == ["FAILED", "FINISHED"], "attempt 1 finished")
    [died, back] = attempts()
    assert (died.error_type, died.node_id, back.node_id) == ("NODE_DIED", b.node_id, head)
    assert f"its node {b.node_id}" in died.error_message


@raylite.remote
def big(tag: str) -> tuple:
    """Over 100 KB: it lives in the shared memory of the node that ran it."""
    return raylite.get_runtime_context().get_node_id(), tag, b"x" * 300_000


@raylite.remote
def bigger(x: tuple) -> tuple:
    return raylite.get_runtime_context().get_node_id(), x[1] + "+", x[2] * 2


def _made_on(node):
    """x = big("x") with one retry, done, stored on `node` (nothing of it read here)."""
    x = big.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=True),
                    max_retries=1).remote("x")
    assert len(raylite.wait([x], timeout=60)[0]) == 1 and _stored_on(x) == node.node_id[:12]
    return x


def test_objects_lost_with_a_node_are_rebuilt_from_lineage_or_fail_precisely(cluster):
    b = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    head = cluster.head_node.node_id
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=True)
    x = big.options(scheduling_strategy=on_b, max_retries=1).remote("x")
    y = bigger.options(scheduling_strategy=on_b, max_retries=1).remote(x)
    spent = big.options(scheduling_strategy=on_b, max_retries=0).remote("spent")
    ready, _ = raylite.wait([x, y, spent], num_returns=3, timeout=60)  # done; nothing read here
    assert len(ready) == 3 and {_stored_on(r) for r in ready} == {b.node_id[:12]}
    cluster.remove_node(b, allow_graceful=False)  # its shared memory goes with it
    _until(lambda: not _alive(b.node_id), "the killed node is listed dead")
    node, tag, data = raylite.get(y, timeout=60)  # y and x (its argument) run again
    assert (node, tag, len(data)) == (head, "x+", 600_000)
    assert raylite.get(x, timeout=60)[:2] == (head, "x")
    with pytest.raises(ObjectReconstructionFailedError, match="no retries left"):
        raylite.get(spent, timeout=60)
    assert isinstance(ObjectReconstructionFailedError(), ObjectLostError)


def test_a_read_from_a_node_that_froze_meanwhile_gets_the_rebuilt_object(cluster):
    """get() starts pulling from B just as B freezes: the head's daemon fails that pull
    once B is marked dead (no more dials to it), and get() waits for the rebuild instead."""
    b = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    x = _made_on(b)
    os.killpg(b.pid, signal.SIGSTOP)
    try:
        assert raylite.get(x, timeout=60)[:2] == (cluster.head_node.node_id, "x")
        assert not _alive(b.node_id)
    finally:
        cluster.remove_node(b, allow_graceful=False)


@raylite.remote
class Borrower:
    def look(self, refs: list) -> int:
        """Learns where the object is from its owner (wait() fetches that, not the bytes),
        and keeps the ref (so it keeps what it learnt)."""
        self.refs = refs
        return len(raylite.wait(refs, timeout=30)[0])

    def read(self) -> tuple:
        return raylite.get(self.refs[0], timeout=60)[:2]


def test_a_borrower_that_knew_a_lost_objects_old_place_asks_its_owner_again(cluster):
    """An actor on C learnt that x lives on B; B dies and x is rebuilt on the head: the
    actor's read from B fails, and it asks x's owner (this driver) where x is now."""
    b = cluster.add_node(num_cpus=2)
    c = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    head = cluster.head_node.node_id
    x = big.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b.node_id, soft=True),
                    max_retries=1).remote("x")
    borrower = Borrower.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(c.node_id, soft=False)).remote()
    assert raylite.get(borrower.look.remote([x]), timeout=60) == 1  # it knows: on B
    assert _stored_on(x) == b.node_id[:12]
    cluster.remove_node(b, allow_graceful=False)
    _until(lambda: not _alive(b.node_id), "the killed node is listed dead")
    assert raylite.get(borrower.read.remote(), timeout=60) == (head, "x")  # rebuilt


def _core():
    from raylite import _runtime

    return _runtime.current()._core


@raylite.remote
def grow(blob: bytes) -> tuple:
    """Its argument is over 100 KB: it went by value to our shared memory (a blob)."""
    return raylite.get_runtime_context().get_node_id(), blob[:4], blob * 2


@raylite.remote
class Maker:
    def make(self, tag: str) -> tuple:
        return raylite.get_runtime_context().get_node_id(), tag, b"a" * 300_000


def test_a_task_with_a_large_by_value_argument_is_rebuilt_and_its_lineage_let_go(
        cluster, monkeypatch):
    """Lineage is bounded (here to one task's blob): y1's is evicted when y2's comes, so
    y1 cannot be rebuilt and says why; y2 is, reading its kept blob; its lineage goes
    with its output."""
    monkeypatch.setenv("RAYLITE_MAX_LINEAGE_BYTES", "600000")
    b = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=True)
    y1 = grow.options(scheduling_strategy=on_b, max_retries=2).remote(b"one!" * 100_000)
    assert len(raylite.wait([y1], timeout=60)[0]) == 1
    y2 = grow.options(scheduling_strategy=on_b, max_retries=2).remote(b"arg!" * 100_000)
    assert len(raylite.wait([y2], timeout=60)[0]) == 1
    assert {_stored_on(y1), _stored_on(y2)} == {b.node_id[:12]}
    kept = _core().lineage.book.kept
    assert [t.return_ids[0] for t, _, _ in kept.values()] == [y2._id]  # y1 evicted
    cluster.remove_node(b, allow_graceful=False)
    node, head, data = raylite.get(y2, timeout=60)      # run again, reading the same blob
    assert (node, head, len(data)) == (cluster.head_node.node_id, b"arg!", 800_000)
    with pytest.raises(ObjectReconstructionFailedError, match="evicted"):
        raylite.get(y1, timeout=60)
    del y2, data
    gc.collect()
    assert _core().lineage.book.statistics() == (0, 0, 1)  # y2's output went: its lineage too


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


@raylite.remote
class Lender:
    def make_on(self, node_id: str) -> list:
        """x = big("x") owned by this actor, made on `node_id`; handed out inside a list (so
        the caller borrows it)."""
        self.x = big.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node_id, soft=True), max_retries=1).remote("x")
        raylite.wait([self.x], timeout=60)
        return [self.x]


@pytest.mark.parametrize("whose", ["ours", "an actor's"])
def test_a_task_whose_argument_is_lost_while_it_reads_it_is_retried(cluster, whose):
    """g(x) runs on C and reads x from B. x's segment on B is gone first (B's daemon cannot
    serve it: the read fails while B is still alive, as when B dies mid-read before anyone
    hears of it), then B dies: g, failed with ObjectLostError, is retried within
    max_retries, without retry_exceptions, once x is rebuilt: by us, or (x borrowed from
    an actor) by the actor its worker then asks."""
    from raylite._object_store import shm

    b = cluster.add_node(num_cpus=1)
    c = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    if whose == "ours":
        x = _made_on(b)
    else:
        head = NodeAffinitySchedulingStrategy(cluster.head_node.node_id, soft=False)
        lender = Lender.options(scheduling_strategy=head).remote()
        [x] = raylite.get(lender.make_on.remote(b.node_id), timeout=60)
        assert len(raylite.wait([x], timeout=60)[0]) == 1 and _stored_on(x) == b.node_id[:12]
    os.unlink(shm.segment_path(b.node_id[:12], x._id))
    on_c = NodeAffinitySchedulingStrategy(c.node_id, soft=False)
    g = bigger.options(scheduling_strategy=on_c, max_retries=1).remote(x)
    parked = _core().lineage.parked
    _until(lambda: len(parked) == 1, "g failed reading x and waits to hear of B's death")
    cluster.remove_node(b, allow_graceful=False)
    node, tag, data = raylite.get(g, timeout=60)
    assert (node, tag, len(data)) == (c.node_id, "x+", 600_000)
    assert raylite.get(x, timeout=60)[1] == "x" and not parked


@raylite.remote
class Doubler:
    def __init__(self):
        self.calls = 0

    def double(self, x: tuple) -> tuple:
        self.calls += 1
        return raylite.get_runtime_context().get_node_id(), x[1] + "+", x[2] * 2, self.calls


def test_an_actor_call_whose_argument_is_lost_while_it_reads_it_goes_again(cluster):
    """As above, with an actor call on C reading x (no max_task_retries): its worker says the
    method never ran, so the call goes again once x is rebuilt, as a Ray actor call waits for
    its argument; the method runs once."""
    from raylite._object_store import shm

    b = cluster.add_node(num_cpus=1)
    c = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    raylite.init(address=cluster.address)
    d = Doubler.options(scheduling_strategy=NodeAffinitySchedulingStrategy(c.node_id, soft=False),
                        max_restarts=0).remote()
    raylite.get(d.__ray_ready__.remote(), timeout=60)
    x = _made_on(b)
    os.unlink(shm.segment_path(b.node_id[:12], x._id))
    call = d.double.remote(x)
    parked = _core().lineage.parked
    _until(lambda: len(parked) == 1, "the call failed reading x and waits to hear of B's death")
    cluster.remove_node(b, allow_graceful=False)
    node, tag, data, calls = raylite.get(call, timeout=60)
    assert (node, tag, len(data), calls) == (c.node_id, "x+", 600_000, 1)
    assert not parked
