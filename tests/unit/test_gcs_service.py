"""The GCS service (_gcs/service.py) with fake node daemons on in-process pipes.

Each fake node's messages are delivered on the test's thread (GcsService.deliver), and
what the GCS sends back is in the node's end of the pipe once deliver returns: no
threads, no processes, deterministic.
"""
import logging
import pickle
import time

import pytest

from raylite._gcs.placement import pick_node
from raylite._gcs.service import GcsService
from raylite._gcs.tables import NodeInfo
from raylite._protocol import inproc
from raylite._protocol import messages as m
from raylite._runtime.base import ActorMeta
from raylite.exceptions import ActorDiedError

HEAD, OTHER = b"h" * 16, b"o" * 16


def _spec(actor_id, *, name=None, owner="127.0.0.1:100", job=b"job1", detached=False,
          max_restarts=0, placement=None):
    return m.ActorSpec(actor_id=actor_id, class_id=b"c" * 16, cls=b"cls", meta=ActorMeta("A", {}, False),
                       args=b"", inlined={}, owner=owner, job_id=job, namespace="ns", name=name,
                       detached=detached, demand={}, placement=placement or {"CPU": 1.0},
                       max_restarts=max_restarts, max_concurrency=None, env_vars=None,
                       max_task_retries=0)


class FakeNode:
    """A node daemon's side of its GCS connection, driven by the test."""

    def __init__(self, gcs, node_id, resources, address):
        self.gcs, self.node_id, self.address = gcs, node_id, address
        self.mine, self.theirs = inproc.pipe(f"node {address}", "gcs")
        gcs.attach(self.theirs)
        self.resources = resources
        self.views = []  # the ClusterViews it was sent, kept apart from the other messages

    def register(self):
        heartbeat_s = 0.0 if self.node_id == self.gcs.head_node_id else 1.0  # head: never
        assert self.call(m.RegisterNode(1, self.node_id, self.address, self.resources, "h")) == \
            [m.NodeRegistered(1, True, None, heartbeat_s)]
        return self

    def send(self, msg):
        self.gcs.deliver(self.theirs, msg)

    def call(self, msg):
        self.send(msg)
        return self.got()

    def got(self):
        out = []
        for msg in self.mine.recv_ready():
            (self.views if type(msg) is m.ClusterView else out).append(msg)
        return out

    def start(self, spec, worker, restarts=0, error=None):
        """This node ran the actor's __init__ on `worker` (address w:<worker[0]>)."""
        address = f"127.0.0.1:{worker[0]}"
        self.send(m.ActorPlaced(spec.actor_id, restarts, worker, address))
        return self.call(m.ActorReady(spec.actor_id, restarts, worker, address, error))


@pytest.fixture
def gcs():
    return GcsService(head_node_id=HEAD)


@pytest.fixture
def head(gcs):
    return FakeNode(gcs, HEAD, {"CPU": 2.0}, "127.0.0.1:1").register()


def _info(node, actor_id, wait=False, req=5):
    return node.call(m.GetActorInfo(req, actor_id, None, None, wait))


def test_an_actor_is_registered_placed_started_and_its_waiters_answered(gcs, head):
    spec = _spec(b"a" * 16)
    assert head.call(m.CreateActor(3, spec, False)) == [m.ActorCreated(3, spec.actor_id, spec.meta, None),
                                                        m.PlaceActor(spec, 0)]
    assert _info(head, spec.actor_id, wait=True, req=8) == []      # waits while PENDING
    assert head.start(spec, b"w" * 16) == [m.ActorInfo(8, spec.actor_id, "ALIVE", "127.0.0.1:119",
                                                       spec.meta, None, 0)]
    assert _info(head, spec.actor_id)[0].state == "ALIVE"
    assert gcs.tables.actors[spec.actor_id].node_id == HEAD


def test_named_actors_are_unique_per_namespace(gcs, head):
    first = _spec(b"a" * 16, name="n")
    head.call(m.CreateActor(1, first, False))
    [reply] = head.call(m.CreateActor(2, _spec(b"b" * 16, name="n"), False))
    assert reply.actor_id is None and "already exists" in reply.error
    [reply] = head.call(m.CreateActor(3, _spec(b"c" * 16, name="n"), True))  # get_if_exists
    assert reply == m.ActorCreated(3, first.actor_id, first.meta, None)      # and no placement
    [info] = head.call(m.GetActorInfo(4, None, "n", "ns", False))
    assert info.actor_id == first.actor_id and info.state == "PENDING"


def test_placement_is_the_head_when_it_fits_else_a_node_that_fits(gcs, head):
    other = FakeNode(gcs, OTHER, {"CPU": 1.0, "disk": 1.0}, "127.0.0.1:2").register()
    usual, disky = _spec(b"a" * 16), _spec(b"b" * 16, placement={"disk": 1.0})
    assert head.call(m.CreateActor(1, usual, False))[1] == m.PlaceActor(usual, 0)
    assert head.call(m.CreateActor(2, disky, False)) == [m.ActorCreated(2, disky.actor_id,
                                                                        disky.meta, None)]
    assert other.got() == [m.PlaceActor(disky, 0)]               # only that node has a disk
    nodes = [NodeInfo(b"1" * 16, "a:1", {"CPU": 1}, "a", True),
             NodeInfo(b"2" * 16, "b:1", {"CPU": 1, "GPU": 1}, "b", False)]
    assert pick_node(nodes, {"CPU": 1}, b"2" * 16) == b"2" * 16   # the head, when it fits
    assert pick_node(nodes, {"GPU": 1}, b"1" * 16) == b"2" * 16   # else a node that fits
    assert pick_node(nodes, {"TPU": 1}, b"2" * 16) == b"2" * 16   # nothing fits: the head
    assert pick_node(nodes, {"TPU": 1}, None) == b"1" * 16        # no head: the first
    nodes[0].alive = False
    assert pick_node(nodes, {"CPU": 1}, b"1" * 16) == b"2" * 16   # the head is gone
    nodes[1].alive = False
    assert pick_node(nodes, {}, None) is None


def test_an_actor_restarting_with_no_node_alive_waits_for_one_to_register():
    gcs = GcsService()
    only = FakeNode(gcs, OTHER, {"CPU": 1.0}, "127.0.0.1:2").register()
    spec = _spec(b"a" * 16, max_restarts=1, detached=True)
    only.call(m.CreateActor(1, spec, False))
    only.start(spec, b"w" * 16)
    gcs.lost(only.theirs)                                     # the one node leaves
    assert gcs.tables.actors[spec.actor_id].state == "RESTARTING"
    late = FakeNode(gcs, HEAD, {"CPU": 1.0}, "127.0.0.1:1")
    late.send(m.RegisterNode(1, HEAD, "127.0.0.1:1", {"CPU": 1.0}, "h"))
    assert late.got() == [m.NodeRegistered(1, True, None, 1.0), m.PlaceActor(spec, 1)]


def test_a_crash_restarts_the_actor_and_stale_reports_change_nothing(gcs, head):
    spec = _spec(b"a" * 16, max_restarts=1)
    head.call(m.CreateActor(1, spec, False))
    head.start(spec, b"w" * 16)
    assert head.call(m.WorkerDied(b"w" * 16, "127.0.0.1:119", "killed by SIGKILL", False)) == \
        [m.PlaceActor(spec, 1)]
    [info] = _info(head, spec.actor_id)
    assert info.state == "RESTARTING" and "killed by SIGKILL" in str(pickle.loads(info.death))
    assert head.start(spec, b"w" * 16, restarts=0) == []         # the old incarnation: ignored
    assert gcs.tables.actors[spec.actor_id].state == "RESTARTING"
    head.start(spec, b"x" * 16, restarts=1)
    assert _info(head, spec.actor_id)[0].state == "ALIVE"
    head.call(m.WorkerDied(b"x" * 16, "127.0.0.1:120", "", False))  # no restarts left
    [info] = _info(head, spec.actor_id)
    assert info.state == "DEAD" and isinstance(pickle.loads(info.death), ActorDiedError)


def test_a_failed_init_is_final_and_takes_what_it_created(gcs, head):
    spec = _spec(b"a" * 16, max_restarts=3)
    head.call(m.CreateActor(1, spec, False))
    head.send(m.ActorPlaced(spec.actor_id, 0, b"w" * 16, "127.0.0.1:119"))
    child = _spec(b"c" * 16, owner="127.0.0.1:119")          # created by its __init__
    head.call(m.CreateActor(2, child, False))
    head.send(m.ActorPlaced(child.actor_id, 0, b"v" * 16, "127.0.0.1:118"))
    _info(head, spec.actor_id, wait=True, req=9)
    out = head.call(m.ActorReady(spec.actor_id, 0, b"w" * 16, "127.0.0.1:119", pickle.dumps("bad init")))
    assert m.ReleaseActor(child.actor_id) in out
    assert [x for x in out if type(x) is m.ActorInfo] == \
        [m.ActorInfo(9, spec.actor_id, "DEAD", None, spec.meta, pickle.dumps("bad init"), 0)]
    assert gcs.tables.actors[child.actor_id].state == "DEAD"


def test_kill_releases_the_worker_answers_waiters_and_shares_fate(gcs, head):
    parent, child = _spec(b"p" * 16), _spec(b"c" * 16, owner="127.0.0.1:119")
    detached = _spec(b"d" * 16, owner="127.0.0.1:119", detached=True)
    for i, s in enumerate((parent, child, detached)):
        head.call(m.CreateActor(i, s, False))
    head.start(parent, b"w" * 16)                              # its worker is 127.0.0.1:119
    _info(head, child.actor_id, wait=True, req=7)
    out = head.call(m.KillActor(parent.actor_id, True, "it was killed"))
    assert m.ReleaseActor(parent.actor_id) in out and m.ReleaseActor(child.actor_id) in out
    [waiter] = [x for x in out if type(x) is m.ActorInfo]
    assert waiter.req == 7 and waiter.state == "DEAD" and "exited" in str(pickle.loads(waiter.death))
    assert gcs.tables.actors[detached.actor_id].state == "PENDING"  # detached: it stays


def test_a_workers_exit_ends_the_actors_it_created(gcs, head):
    child = _spec(b"c" * 16, owner="127.0.0.1:50")
    head.call(m.CreateActor(1, child, False))
    out = head.call(m.WorkerDied(b"t" * 16, "127.0.0.1:50", "exited with code 0", True))
    assert out == [m.ReleaseActor(child.actor_id)]
    assert "the worker process that created it" in str(pickle.loads(gcs.tables.actors[child.actor_id].death))


def test_jobs_are_named_by_the_gcs_and_end_with_their_actors(gcs, head):
    [reply] = head.call(m.RegisterJob(4, None, 77, "127.0.0.1:9"))
    assert reply.req == 4 and len(reply.job_id) == 4 and reply.namespace.startswith("anonymous-")
    [named] = head.call(m.RegisterJob(5, "ns", 78, "127.0.0.1:8"))
    assert named.namespace == "ns" and named.job_id != reply.job_id
    mine, kept = _spec(b"a" * 16, job=reply.job_id), _spec(b"b" * 16, job=reply.job_id, detached=True)
    head.call(m.CreateActor(1, mine, False))
    head.call(m.CreateActor(2, kept, False))
    other = FakeNode(gcs, OTHER, {"CPU": 1.0}, "127.0.0.1:2").register()
    other.send(m.JobFinished(reply.job_id))                   # not that node's job: refused
    assert gcs.tables.jobs[reply.job_id].alive
    assert head.call(m.JobFinished(reply.job_id)) == [m.ReleaseActor(mine.actor_id)]
    assert not gcs.tables.jobs[reply.job_id].alive and gcs.tables.actors[kept.actor_id].state == "PENDING"


def test_a_node_leaving_ends_its_jobs_and_moves_its_actors():
    gcs = GcsService()                                        # no head: any node that fits
    first = FakeNode(gcs, HEAD, {"CPU": 2.0}, "127.0.0.1:1").register()
    other = FakeNode(gcs, OTHER, {"CPU": 1.0, "disk": 1.0}, "127.0.0.1:2").register()
    [job] = other.call(m.RegisterJob(1, "ns", 5, "127.0.0.1:70"))
    drivers = _spec(b"d" * 16, job=job.job_id, max_restarts=1)  # its driver's actor
    roaming = _spec(b"r" * 16, max_restarts=-1)
    first.call(m.CreateActor(1, drivers, False))
    first.call(m.CreateActor(2, roaming, False))
    first.start(roaming, b"w" * 16)
    gcs.lost(first.theirs)                                    # the first node leaves
    assert not gcs.tables.nodes[HEAD].alive
    assert other.got() == [m.NodeDied(HEAD, "127.0.0.1:1", "left the cluster", ("127.0.0.1:119",)),
                           m.PlaceActor(drivers, 1), m.PlaceActor(roaming, 1)]  # they move
    assert "left the cluster" in str(pickle.loads(gcs.tables.actors[roaming.actor_id].death))
    gcs.lost(other.theirs)                                    # and the driver's node leaves
    assert not gcs.tables.jobs[job.job_id].alive
    assert gcs.tables.actors[drivers.actor_id].state == "DEAD"
    assert gcs.tables.actors[roaming.actor_id].state == "RESTARTING"  # waits for a node


def test_a_silent_node_is_marked_dead_and_its_actors_move():
    clock = [100.0]
    gcs = GcsService(head_node_id=HEAD, health_timeout_s=2.0, clock=lambda: clock[0])
    head = FakeNode(gcs, HEAD, {"CPU": 0.5}, "127.0.0.1:1").register()
    assert gcs.health.statistics()["watched"] == 0               # the head's node: never
    quiet = FakeNode(gcs, OTHER, {"CPU": 1.0}, "127.0.0.1:2")
    assert quiet.call(m.RegisterNode(1, OTHER, "127.0.0.1:2", {"CPU": 1.0}, "h")) == \
        [m.NodeRegistered(1, True, None, 0.4)]                   # a fifth of the timeout
    spec = _spec(b"a" * 16, max_restarts=1, placement={"CPU": 1.0})
    head.call(m.CreateActor(1, spec, False))
    assert quiet.got() == [m.PlaceActor(spec, 0)]
    quiet.start(spec, b"w" * 16)
    clock[0] = 101.9
    gcs.check_health(clock[0])
    quiet.send(m.NodeHeartbeat())                                # heard: the clock restarts
    clock[0] = 102.5
    gcs.check_health(clock[0])
    assert gcs.tables.nodes[OTHER].alive
    gcs.check_health(103.3)
    gcs.check_health(104.0)                                      # silent for 2.1 s
    assert not gcs.tables.nodes[OTHER].alive and gcs.health.statistics()["marked_dead"] == 1
    got = head.got()
    assert type(got[0]) is m.NodeDied and got[0].node_id == OTHER and "nothing heard" in got[0].why
    assert got[0].actors == ("127.0.0.1:119",)
    assert gcs.tables.actors[spec.actor_id].state == "RESTARTING"  # on the next node that fits
    death = str(pickle.loads(gcs.tables.actors[spec.actor_id].death))
    assert OTHER.hex() in death and "nothing heard from it" in death
    assert quiet.theirs.closed                                   # it finds out if it wakes up
    assert [n.alive for n in gcs.tables.state().nodes] == [True, False]  # listed, as dead


def test_messages_before_registration_or_with_bad_fields_are_refused(gcs, caplog):
    node = FakeNode(gcs, HEAD, {"CPU": 1.0}, "127.0.0.1:1")
    with caplog.at_level(logging.WARNING, "raylite.gcs"):
        assert node.call(m.CreateActor(1, _spec(b"a" * 16), False)) == []
        assert "has not registered" in caplog.text
        node.register()
        other = FakeNode(gcs, OTHER, {}, "127.0.0.1:2").register()  # refusals log once per peer
        assert other.call(m.CreateActor(1, _spec(b"short"), False)) == []
        assert "CreateActor.spec: ActorSpec.actor_id must be a 16-byte id" in caplog.text
    assert gcs.tables.actors == {}
    [again] = node.call(m.RegisterNode(2, b"x" * 16, "127.0.0.1:3", {}, "h"))
    assert not again.ok and "registered node" in again.error
    twin = FakeNode(gcs, HEAD, {}, "127.0.0.1:4")
    [dup] = twin.call(m.RegisterNode(3, HEAD, "127.0.0.1:4", {}, "h"))
    assert not dup.ok and "registered already" in dup.error


def test_kv_and_state(gcs, head):
    assert head.call(m.KvPut(1, b"k", b"v", True)) == [m.KvReply(1, True)]
    assert head.call(m.KvPut(2, b"k", b"w", False)) == [m.KvReply(2, False)]
    assert head.call(m.KvGet(3, b"k")) == [m.KvReply(3, True, b"v")]
    head.call(m.KvPut(4, b"k2", b"x", True))
    assert head.call(m.KvKeys(5, b"k")) == [m.KvReply(5, True, None, (b"k", b"k2"))]
    assert head.call(m.KvDelete(6, b"k")) == [m.KvReply(6, True)]
    assert head.call(m.KvGet(7, b"k")) == [m.KvReply(7, False)]
    FakeNode(gcs, OTHER, {"CPU": 1.0}, "127.0.0.1:2").register()
    head.call(m.CreateActor(1, _spec(b"a" * 16), False))
    [state] = head.call(m.GetState(8, ("nodes", "actors")))
    snap = state.snapshot
    assert state.req == 8 and snap.source == "gcs" and snap.jobs == ()   # only the kinds asked
    assert [(n.is_head, n.resources_total) for n in snap.nodes] == [(True, {"CPU": 2.0}),
                                                                     (False, {"CPU": 1.0})]
    assert [(a.actor_id, a.state) for a in snap.actors] == [((b"a" * 16).hex(), "PENDING")]


def test_the_service_serves_nodes_on_its_own_threads(gcs):
    hub = inproc.Hub()
    gcs.serve(hub.listen("inproc://gcs"))
    conn = hub.connect("inproc://gcs")
    conn.send(m.RegisterNode(1, HEAD, "127.0.0.1:1", {"CPU": 1.0}, "h"))
    assert conn.poll(1.0) == [m.NodeRegistered(1, True)]
    conn.close()
    for _ in range(1000):
        if not gcs.tables.nodes[HEAD].alive:
            break
        time.sleep(0.001)
    assert not gcs.tables.nodes[HEAD].alive                  # its reader saw the close
    gcs.stop()


def test_every_message_of_the_gcs_protocol_has_a_check_for_every_field():
    from raylite._gcs import service
    from raylite._protocol import validate

    gcs_protocol = set(service._HANDLERS) | {m.PlaceActor, m.ReleaseActor, m.JobRegistered}
    for cls in gcs_protocol:
        assert list(validate.SPECS[cls]) == list(cls._fields), cls.__name__
    ok = [m.RegisterJob(1, None, 5, "127.0.0.1:5"), m.JobFinished(b"job1"),
          m.ActorPlaced(b"a" * 16, 0, b"w" * 16, "127.0.0.1:5"),
          m.ActorReady(b"a" * 16, 2, b"w" * 16, "127.0.0.1:5", b"err"),
          m.WorkerDied(b"w" * 16, "127.0.0.1:5", "", True), m.KvPut(1, b"k", b"", False),
          m.KvKeys(1, b""), m.PlaceActor(_spec(b"a" * 16), 1), m.ReleaseActor(b"a" * 16)]
    assert [validate.problem(x) for x in ok] == [None] * len(ok)
    assert validate.problem(m.KvGet(1, b"")) == "KvGet.key must be non-empty bytes of at most 1024, not bytes b''"
    assert validate.problem(m.ActorPlaced(b"a" * 16, -1, b"w" * 16, "x:1")).startswith(
        "ActorPlaced.restarts must be an integer from 0")
    assert validate.problem(m.JobFinished(b"job")) == "JobFinished.job_id must be a 4-byte id, not bytes b'job'"


def test_nodes_report_what_is_free_and_every_node_hears_each_change(gcs, head):
    other = FakeNode(gcs, OTHER, {"CPU": 2.0}, "127.0.0.1:2").register()
    head.got(), other.got()
    assert len(head.views) == 1  # the second node's registration: now there are others
    head.views.clear(), other.views.clear()
    other.send(m.NodeResources({"CPU": 0.5}, 3))
    head.got(), other.got()
    [view] = head.views
    assert other.views == [view]
    assert (OTHER.hex(), "127.0.0.1:2", {"CPU": 2.0}, {"CPU": 0.5},
            {"ray.io/node-id": OTHER.hex()}) in view.nodes
    other.send(m.NodeResources({"CPU": 0.5}, 0))  # nothing changed: nobody is told
    assert head.got() == [] and len(head.views) == 1
    [rec] = [n for n in gcs.tables.state().nodes if n.node_id == OTHER.hex()]
    assert rec.resources_available == {"CPU": 0.5}


def test_an_actor_with_hard_affinity_to_no_live_node_dies_unschedulable(gcs, head):
    from raylite.exceptions import ActorUnschedulableError

    spec = _spec(b"a" * 16)._replace(strategy=("NODE", "dd" * 16, False))
    assert head.call(m.CreateActor(1, spec, False)) == [m.ActorCreated(1, spec.actor_id, spec.meta,
                                                                       None)]
    entry = gcs.tables.actors[spec.actor_id]
    assert entry.state == "DEAD"
    error = pickle.loads(entry.death)
    assert isinstance(error, ActorUnschedulableError) and "dd" * 16 in str(error)
