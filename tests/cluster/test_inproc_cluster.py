"""A GCS, two node daemons and a driver in this process, over the in-process transport.

    driver ──inproc──► node "other" ──inproc──► GcsService ◄──inproc── node "head"
                          │ fake zygote: its "workers" are threads      │
                          └── RequestLease ─► a worker's lease          └── the actor's worker

The node daemons are the real NodeServer shells (scheduler, GCS link, worker admission);
only their fork servers and workers are stand-ins (threads answering StartActor and
task pushes). A driver connected to one node gets its job named by the GCS, a task's
lease from its node, and an actor the GCS placed on the other node.
"""
import itertools
import os
import pickle
import queue
import time

import pytest

from raylite._gcs.service import GcsService
from raylite._node.server import NodeServer
from raylite._protocol import inproc
from raylite._protocol import messages as m
from raylite._runtime.base import ActorMeta

HEAD, OTHER = b"h" * 16, b"o" * 16
WAIT = 5.0
_pids = itertools.count(40000)


class FakeWorker:
    """A worker process's stand-in: registers with its node, becomes actors, runs pushes."""

    def __init__(self, hub, node, worker_id, pid):
        self.worker_id, self.pid = worker_id, pid
        self.address = f"127.0.0.1:{pid}"
        self.conn = hub.connect(node)
        self.conn.send(m.RegisterWorker(worker_id, pid, self.address))
        self.actor = None

    def serve_node(self):
        while True:
            try:
                msg = self.conn.recv()
            except EOFError:
                return
            if type(msg) is m.StartActor:
                self.actor = msg.spec.actor_id
                self.conn.send(m.ActorStarted(msg.spec.actor_id, None))

    def push(self, msg):
        """What the owner's direct connection to this worker would carry back."""
        return m.TaskDone(msg.task_id, (b"ran " + msg.args,), None, False)


class FakeZygote:
    """The fork server's stand-in: a spawn starts a FakeWorker thread, a kill ends it."""

    def __init__(self, hub, node, pool):
        self.hub, self.node, self.pool = hub, node, pool
        self.pid, self.started = os.getpid(), 0.0
        self._events = queue.Queue()
        self.workers = {}

    def spawn(self, worker_id):
        pid = next(_pids)
        self._events.put(("forked", worker_id, pid))
        w = self.workers[pid] = FakeWorker(self.hub, self.node, worker_id, pid)
        self.pool.submit(w.serve_node)
        return True

    def kill(self, pid):
        w = self.workers.pop(pid, None)
        if w is not None:
            self._events.put(("exit", pid, 9))  # killed by SIGKILL
            w.conn.close()
        return True

    def crash(self, pid):
        """The worker dies on its own (the daemon did not ask)."""
        w = self.workers.pop(pid)
        self._events.put(("exit", pid, 11 << 8))  # exited with code 11
        w.conn.close()

    def events(self, timeout):
        try:
            ev = self._events.get(timeout=timeout)
        except queue.Empty:
            return []
        return None if ev is None else [ev]

    def stop(self):
        for pid in list(self.workers):
            self.kill(pid)
        self._events.put(None)

    def close_events(self):
        pass


@pytest.fixture
def cluster(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    hub = inproc.Hub(serialize=True)  # every message pickled, as on the wire
    gcs = GcsService(head_node_id=HEAD)
    gcs.serve(hub.listen("inproc://gcs"))
    pool = ThreadPoolExecutor(8)
    nodes = {}
    for node_id, name, total in ((HEAD, "head", {"CPU": 1.0}), (OTHER, "other", {"CPU": 1.0})):
        session = tmp_path / name
        session.mkdir(mode=0o700)
        listener = hub.listen(f"inproc://{name}")
        server = NodeServer(listener, FakeZygote(hub, listener.address, pool),
                            dict(total, object_store_memory=2**20), str(session), 0, node_id=node_id)
        server.attach_gcs(hub.connect("inproc://gcs"), f"127.0.0.1:{len(nodes) + 1}", total)
        server.start()
        nodes[name] = server
    yield hub, gcs, nodes
    for server in nodes.values():
        server.stop()
    gcs.stop()
    pool.shutdown(wait=True)


def _spec(actor_id, job_id, max_restarts=0, name="counter"):
    return m.ActorSpec(actor_id=actor_id, class_id=b"c" * 16, cls=b"cls", meta=ActorMeta("A", {}, False),
                       args=b"", inlined={}, owner="127.0.0.1:99", job_id=job_id, namespace="ns",
                       name=name, detached=False, demand={}, placement={"CPU": 1.0},
                       max_restarts=max_restarts, max_concurrency=None, env_vars=None, max_task_retries=0)


def _reply(conn, kind):
    [msg] = conn.poll(WAIT)
    assert type(msg) is kind, msg
    return msg


def test_a_task_and_an_actor_call_flow_through_a_gcs_and_two_nodes(cluster):
    hub, gcs, nodes = cluster
    assert {n.node_id for n in gcs.tables.nodes.values() if n.alive} == {HEAD, OTHER}
    driver = hub.connect("inproc://other")
    driver.send(m.RegisterClient(1, "driver", os.getpid(), "127.0.0.1:99", "ns", None, None))
    job = _reply(driver, m.ClientRegistered)
    assert job.node_id == OTHER and job.namespace == "ns" and gcs.tables.jobs[job.job_id].alive

    # a task: a lease from the driver's own node, then a push straight to that worker
    driver.send(m.RequestLease(2, {"CPU": 1.0}, "f"))
    lease = _reply(driver, m.LeaseGranted)
    worker = nodes["other"].zygote.workers[int(lease.address.rpartition(":")[2])]
    assert worker.push(m.PushTask(b"t" * 16, b"f" * 16, None, b"x", {}, (b"r" * 16,), "f",
                                  job.job_id, "ns", None, (), {}, "127.0.0.1:99")).results == (b"ran x",)
    driver.send(m.ReturnLease(lease.lease_id))

    # an actor: the GCS places it on the head (it fits there), its node starts it
    spec = _spec(b"a" * 16, job.job_id)
    driver.send(m.CreateActor(3, spec, False))
    assert _reply(driver, m.ActorCreated).actor_id == spec.actor_id
    driver.send(m.GetActorInfo(4, spec.actor_id, None, None, True))
    info = _reply(driver, m.ActorInfo)
    assert info.state == "ALIVE" and gcs.tables.actors[spec.actor_id].node_id == HEAD
    host = nodes["head"].zygote.workers[int(info.address.rpartition(":")[2])]
    assert host.actor == spec.actor_id
    call = m.PushActorTask(b"u" * 16, spec.actor_id, "incr", b"1", {}, (b"s" * 16,), "127.0.0.1:99")
    assert host.push(call).results == (b"ran 1",)
    driver.send(m.GetActorInfo(5, None, "counter", "ns", False))   # its name, from the GCS
    assert _reply(driver, m.ActorInfo).actor_id == spec.actor_id

    # the driver leaves: its job ends at the GCS, and the head's node ends the actor's worker
    driver.close()
    assert _until(lambda: host.conn.closed)
    assert gcs.tables.actors[spec.actor_id].state == "DEAD" and not gcs.tables.jobs[job.job_id].alive


def _until(predicate):
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_a_crashed_actor_worker_is_reported_through_its_node_and_restarted(cluster):
    hub, gcs, nodes = cluster
    driver = hub.connect("inproc://head")
    driver.send(m.RegisterClient(1, "driver", os.getpid(), "127.0.0.1:99", None, None, None))
    job = _reply(driver, m.ClientRegistered)
    spec = _spec(b"a" * 16, job.job_id, max_restarts=1, name=None)
    driver.send(m.CreateActor(2, spec, False))
    _reply(driver, m.ActorCreated)
    driver.send(m.GetActorInfo(3, spec.actor_id, None, None, True))
    first = _reply(driver, m.ActorInfo)
    zygote = nodes["head"].zygote
    zygote.crash(int(first.address.rpartition(":")[2]))
    assert _until(lambda: gcs.tables.actors[spec.actor_id].restarts == 1)
    driver.send(m.GetActorInfo(4, spec.actor_id, None, None, True))
    again = _reply(driver, m.ActorInfo)                        # alive again, on a new worker
    assert again.state == "ALIVE" and again.address != first.address
    assert "exited with code 11" in str(pickle.loads(again.death))
    driver.close()


def test_a_placement_group_spread_over_two_nodes(cluster):
    """Two phases across nodes: each node holds its bundle, both commit, an actor in bundle 1
    goes to bundle 1's node; removal gives both nodes their resources back."""
    from raylite import _resources as res

    hub, gcs, nodes = cluster
    driver = hub.connect("inproc://other")
    driver.send(m.RegisterClient(1, "driver", os.getpid(), "127.0.0.1:99", "ns", None, None))
    job = _reply(driver, m.ClientRegistered)
    gid = b"p" * 16
    group = m.PlacementGroupSpec(gid, ({"CPU": 1.0}, {"CPU": 1.0}), "STRICT_SPREAD", "pair", "ns",
                                 False, job.job_id)
    driver.send(m.CreatePlacementGroup(2, group))
    assert _reply(driver, m.PlacementGroupCreated) == m.PlacementGroupCreated(2, None, None)
    assert _until(lambda: gcs.tables.groups.groups[gid].state == "CREATED")
    head, other = nodes["head"].sched, nodes["other"].sched
    assert _until(lambda: f"CPU_group_1_{gid.hex()}" in other.available)
    assert head.available["CPU"] == 0 and other.available["CPU"] == 0
    assert head.available[f"CPU_group_0_{gid.hex()}"] == 1
    assert f"CPU_group_1_{gid.hex()}" not in head.total

    demand = res.in_group({"CPU": 1.0}, gid.hex(), 1)
    spec = _spec(b"a" * 16, job.job_id, name=None)._replace(
        demand=demand, placement=demand, placement_group=(gid, 1, False))
    driver.send(m.CreateActor(3, spec, False))
    _reply(driver, m.ActorCreated)
    driver.send(m.GetActorInfo(4, spec.actor_id, None, None, True))
    assert _reply(driver, m.ActorInfo).state == "ALIVE"
    assert gcs.tables.actors[spec.actor_id].node_id == OTHER    # not the head: its bundle's node

    three = group._replace(group_id=b"q" * 16, bundles=({"CPU": 1.0},) * 3, name="")
    driver.send(m.CreatePlacementGroup(5, three))               # two nodes: it cannot be placed
    assert "cannot be placed" in _reply(driver, m.PlacementGroupCreated).warning
    driver.send(m.GetPlacementGroup(6, None, "pair", "ns"))
    [record] = _reply(driver, m.PlacementGroupInfo).records
    assert record.bundle_nodes == (HEAD.hex(), OTHER.hex()) and record.state == "CREATED"

    driver.send(m.RemovePlacementGroup(7, gid))
    assert _reply(driver, m.Ack).error is None
    assert _until(lambda: head.available.get("CPU") == 1 and other.available.get("CPU") == 1)
    assert not [k for k in list(head.total) + list(other.total) if gid.hex() in k]
    assert gcs.tables.actors[spec.actor_id].state == "DEAD"
    driver.send(m.RequestLease(8, demand, "f"))                  # a task sent to it afterwards
    assert _reply(driver, m.LeaseGranted).refused is not None
    driver.close()
