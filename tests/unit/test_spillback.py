"""Scheduling across nodes, without processes: the node scheduler's choice between here,
another node (Spill) and nowhere (Refuse) under each strategy (_node/spillback.py); the
GCS's actor placement by strategy (_gcs/placement.py); the owner core following a spill
to another node's daemon and returning the lease there (_core/owner/tasks.py)."""
import itertools

from raylite._core.owner import DAEMON, LeaseRequest, LeaseReturn, Owner, Task
from raylite._gcs.placement import Unplaceable, pick_node
from raylite._gcs.tables import NodeInfo
from raylite._node import scheduler as sch
from raylite._protocol import messages as m
from raylite.exceptions import TaskUnschedulableError

HERE, B, C = "aa" * 16, "bb" * 16, "cc" * 16


def node(total: dict, peers: dict, here: str = HERE) -> sch.NodeScheduler:
    """A scheduler with one idle worker per CPU and the other nodes `peers`:
    {id: (total, available)}; each peer's address is "<id[:2]>:1"."""
    ids = itertools.count(1)
    s = sch.NodeScheduler(total, lambda: next(ids).to_bytes(4, "big"), node_id=here)
    for i in range(int(total.get("CPU", 0))):
        s.worker_registered(bytes([i]) * 4)
    s.update_cluster(tuple((n, f"{n[:2]}:1", t, a, {}) for n, (t, a) in peers.items()))
    return s


def kinds(out: list) -> list:
    return [type(x).__name__ for x in out]


def test_default_runs_here_while_it_fits_then_spills_to_the_freest_node_that_fits():
    s = node({"CPU": 1}, {B: ({"CPU": 4}, {"CPU": 1}), C: ({"CPU": 4}, {"CPU": 3})})
    assert kinds(s.request_lease("o", 1, {"CPU": 1}, "f")) == ["Grant"]
    assert s.request_lease("o", 2, {"CPU": 1}, "f") == [sch.Spill("o", 2, "cc:1")]
    assert s.request_lease("o", 3, {"CPU": 1}, "f") == [sch.Spill("o", 3, "cc:1")]
    # C's view took what was sent there (3 -> 1 free, as B): ties go to the lower id
    assert s.request_lease("o", 4, {"CPU": 1}, "f") == [sch.Spill("o", 4, "bb:1")]
    assert s.view.peers[B].available["CPU"] == 0 and s.view.peers[C].available["CPU"] == 1


def test_a_busy_cluster_queues_here_and_a_later_view_spills_what_waits():
    s = node({"CPU": 1}, {B: ({"CPU": 1}, {"CPU": 0})})
    s.request_lease("o", 1, {"CPU": 1}, "f")
    assert s.request_lease("o", 2, {"CPU": 1}, "f") == [sch.RevokeIdle()]  # queued here
    assert s.update_cluster(((B, "bb:1", {"CPU": 1}, {"CPU": 1}, {}),)) == [sch.Spill("o", 2, "bb:1")]
    assert not s.queue


def test_custom_resources_and_gpus_go_to_the_node_that_has_them():
    s = node({"CPU": 2}, {B: ({"CPU": 1, "GPU": 2}, {"CPU": 1, "GPU": 2}),
                          C: ({"CPU": 1, "disk": 1}, {"CPU": 0, "disk": 1})})
    assert s.request_lease("o", 1, {"GPU": 1}, "g") == [sch.Spill("o", 1, "bb:1")]
    # C's CPU is busy: the request queues there (its totals fit, nothing else's do)
    assert s.request_lease("o", 2, {"CPU": 1, "disk": 1}, "d") == [sch.Spill("o", 2, "cc:1")]
    out = s.request_lease("o", 3, {"TPU": 1}, "t")                 # nowhere: queued, warned
    assert out == [sch.Infeasible("o", "t", {"TPU": 1})] and len(s.queue) == 1


def test_a_spilled_request_is_granted_or_queued_where_it_arrives_never_sent_on():
    s = node({"CPU": 1}, {B: ({"CPU": 4}, {"CPU": 4})})
    s.request_lease("o", 1, {"CPU": 1}, "f")
    assert s.request_lease("o", 2, {"CPU": 1}, "f", (), spilled=True) == [sch.RevokeIdle()]
    assert s.update_cluster(((B, "bb:1", {"CPU": 4}, {"CPU": 4}, {}),)) == [sch.RevokeIdle()]
    assert len(s.queue) == 1


def test_spread_takes_every_node_that_fits_in_turn():
    s = node({"CPU": 4}, {B: ({"CPU": 4}, {"CPU": 4}), C: ({"GPU": 1}, {"GPU": 1})})
    out = [s.request_lease("o", i, {"CPU": 1}, "f", ("SPREAD",)) for i in range(4)]
    assert [kinds(x) for x in out] == [["Grant"], ["Spill"], ["Grant"], ["Spill"]]
    assert {x[0].address for x in out if type(x[0]) is sch.Spill} == {"bb:1"}  # C has no CPU


def test_node_affinity_hard_and_soft():
    s = node({"CPU": 1}, {B: ({"CPU": 1}, {"CPU": 0})})
    assert s.request_lease("o", 1, {"CPU": 1}, "f", ("NODE", B, False)) == [sch.Spill("o", 1, "bb:1")]
    assert kinds(s.request_lease("o", 2, {"CPU": 1}, "f", ("NODE", HERE, False))) == ["Grant"]
    [refused] = s.request_lease("o", 3, {"CPU": 1}, "f", ("NODE", C, False))
    assert type(refused) is sch.Refuse and C in refused.why and "soft=True" in refused.why
    [refused] = s.request_lease("o", 4, {"GPU": 1}, "f", ("NODE", B, False))  # never fits there
    assert type(refused) is sch.Refuse and "that node has only" in refused.why
    # soft: a node that is gone, or could never run it, falls back to the default
    s2 = node({"CPU": 1}, {B: ({"CPU": 1}, {"CPU": 1})})
    assert kinds(s2.request_lease("o", 1, {"CPU": 1}, "f", ("NODE", C, True))) == ["Grant"]
    assert s2.request_lease("o", 2, {"GPU": 1}, "f", ("NODE", B, True))[0] == \
        sch.Infeasible("o", "f", {"GPU": 1})


def test_actor_placement_by_strategy():
    nodes = [NodeInfo(b"\xaa" * 16, "a:1", {"CPU": 1}, "a", True),
             NodeInfo(b"\xbb" * 16, "b:1", {"CPU": 1, "b": 1}, "b", False),
             NodeInfo(b"\xcc" * 16, "c:1", {"CPU": 1}, "c", False)]
    head = nodes[0].node_id
    assert pick_node(nodes, {"CPU": 1}, head) == head
    assert pick_node(nodes, {"b": 1}, head) == nodes[1].node_id
    assert [pick_node(nodes, {"CPU": 1}, head, ("SPREAD",), i) for i in range(3)] == \
        [n.node_id for n in nodes]
    assert pick_node(nodes, {"CPU": 1}, head, ("NODE", C, False)) == nodes[2].node_id
    assert type(pick_node(nodes, {"CPU": 1}, head, ("NODE", "dd" * 16, False))) is Unplaceable
    assert type(pick_node(nodes, {"b": 1}, head, ("NODE", C, False))) is Unplaceable
    assert pick_node(nodes, {"CPU": 1}, head, ("NODE", "dd" * 16, True)) == head
    assert pick_node(nodes, {"b": 1}, head, ("NODE", C, True)) == nodes[1].node_id


def _task(tid: bytes, strategy=()) -> Task:
    msg = m.PushTask(tid, b"f", None, b"a", {}, (tid + b"r",), "f", b"j", "ns", None, (),
                     {"CPU": 1}, "me:1", 0)
    return Task(tid, msg, msg.return_ids, "f", 0, False, [], None, (("CPU", 1), strategy), strategy)


def test_the_owner_follows_a_spill_and_returns_the_lease_to_the_daemon_that_granted_it():
    o = Owner("me:1", sys_path=lambda: ())
    o.tasks.add_function(b"f", b"pickled")
    t = _task(b"t1", ("SPREAD",))
    [(_, first)] = o.tasks.submit(t)
    assert first == LeaseRequest(first.req, {"CPU": 1}, "f", ("SPREAD",))
    [(target, again)] = o.tasks.lease_spilled(first.req, "bb:1", closing=False)
    assert target is DAEMON and again.daemon == "bb:1" and again.spilled
    [(conn, push)] = o.tasks.lease_granted(again.req, b"L", (), "w:1", "w-conn", closing=False)
    assert conn == "w-conn" and push.task_id == b"t1"
    out = o.task_done("w-conn", b"t1", (b"r",), None, False, now=1.0)
    # a SPREAD key's lease goes back as soon as nothing is queued: to the daemon that granted it
    assert (DAEMON, LeaseReturn(b"L", False, "bb:1")) in out


def test_a_refused_lease_fails_the_keys_queued_tasks_as_unschedulable():
    o = Owner("me:1", sys_path=lambda: (), encode_error=lambda e: e)
    o.tasks.add_function(b"f", b"pickled")
    t1, t2 = _task(b"t1", ("NODE", B, False)), _task(b"t2", ("NODE", B, False))
    out = o.tasks.submit(t1) + o.tasks.submit(t2)
    o.lease_refused(out[0][1].req, "no live node has the id")
    for t in (t1, t2):
        error = o.objects.entries[t.return_ids[0]].error
        assert isinstance(error, TaskUnschedulableError) and "no live node" in str(error)
    assert not o.tasks.tasks


def test_scheduling_strategy_options_and_their_wire_form():
    import pytest

    from raylite import _options
    from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy as NA

    task = _options.TaskOptions()
    assert _options.strategy_wire(task.scheduling_strategy) == ()
    assert _options.strategy_wire(_options.merge(task, "task", {"scheduling_strategy": "SPREAD"})
                                  .scheduling_strategy) == ("SPREAD",)
    pinned = _options.merge(task, "task", {"scheduling_strategy": NA(B.upper(), soft=True)})
    assert _options.strategy_wire(pinned.scheduling_strategy) == ("NODE", B, True)
    for bad in ("PACK", NA(b"\xbb", soft=False), NA(B, soft=1)):
        with pytest.raises(ValueError, match="NodeAffinitySchedulingStrategy|scheduling_strategy"):
            _options.merge(task, "task", {"scheduling_strategy": bad})
