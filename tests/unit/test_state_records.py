"""Every core answers a state request with frozen records (_core/records.py): the node
scheduler, the worker table, the store accounting, the GCS tables and the owner; and the
daemon's merge of them (overlay, located). No processes; each test well under 50 ms."""
import pickle
import threading
from types import SimpleNamespace

from raylite._core import records as rec
from raylite._core.owner import Owner, Task
from raylite._gcs.tables import GcsTables
from raylite._node import scheduler as sch
from raylite._node.worker_table import WorkerTable
from raylite._object_store import shm
from raylite._object_store.store import StoreAccounting
from raylite._protocol import messages as m
from raylite._runtime.base import ActorMeta
from raylite._runtime.cluster_state import owner_state, ray_nodes, resource_sum

W1, W2, W3 = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16
ACTOR = b"\xaa" * 16
MiB = 2**20


def _ids():
    n = iter(range(1, 1000))
    return lambda: next(n).to_bytes(16, "big")


def _spec(actor_id, name=None, max_restarts=0, detached=False):
    return m.ActorSpec(actor_id=actor_id, class_id=b"c", cls=b"", meta=ActorMeta("Counter", {}, False),
                       args=b"", inlined={}, owner="127.0.0.1:7", job_id=b"job1", namespace="ns",
                       name=name, detached=detached, demand={"CPU": 1.0}, placement={"CPU": 1.0},
                       max_restarts=max_restarts, max_concurrency=None, env_vars=None,
                       max_task_retries=0)


# -- the node scheduler -------------------------------------------------------------
def test_scheduler_reports_its_node_workers_leases_and_queued_requests():
    s = sch.NodeScheduler({"CPU": 2.0, "GPU": 1.0}, _ids())
    for w in (W1, W2, W3):
        s.worker_registered(w)
    grant = s.request_lease("conn-a", 1, {"CPU": 1.0, "GPU": 1.0}, "train")[0]
    start = s.place_actor(ACTOR, {"CPU": 1.0}, {"CPU": 1.0}, "Counter")[0]
    s.request_lease("conn-b", 2, {"CPU": 1.0}, "later")   # no CPU left: queued
    snap = s.state("n1", {"conn-a": "127.0.0.1:5", "conn-b": "127.0.0.1:6"})

    assert snap.nodes == (rec.NodeRecord("n1", None, None, True, None, {"CPU": 2.0, "GPU": 1.0},
                                         {"CPU": 0.0, "GPU": 0.0}),)
    workers = {w.worker_id: w for w in snap.workers}
    assert workers[W1.hex()] == rec.WorkerRecord(W1.hex(), "n1", None, "LEASED", grant.lease_id.hex(), None)
    assert workers[W2.hex()] == rec.WorkerRecord(W2.hex(), "n1", None, "ACTOR", start.lease_id.hex(),
                                                 ACTOR.hex())
    assert workers[W3.hex()].state == "IDLE" and workers[W3.hex()].lease_id is None
    assert snap.leases == (
        rec.LeaseRecord(grant.lease_id.hex(), "n1", W1.hex(), "127.0.0.1:5", {"CPU": 1.0, "GPU": 1.0}, "train"),
        rec.LeaseRecord(start.lease_id.hex(), "n1", W2.hex(), None, {"CPU": 1.0}, "Counter"),
        rec.LeaseRecord("", "n1", "", "127.0.0.1:6", {"CPU": 1.0}, "later", "PENDING"))
    snap.leases[0].demand["CPU"] = 99   # copies: the scheduler's books stay its own
    assert s.leases[grant.lease_id].demand["CPU"] == 1.0


def test_scheduler_state_follows_returned_leases_and_dead_workers():
    s = sch.NodeScheduler({"CPU": 1.0}, _ids())
    s.worker_registered(W1)
    s.worker_registered(W2)
    g = s.request_lease("a", 1, {"CPU": 1.0}, "f")[0]
    s.return_lease(g.lease_id)
    s.worker_died(W2)
    snap = s.state("n1", {})
    assert [(w.worker_id, w.state) for w in snap.workers] == [(W1.hex(), "IDLE")]
    assert snap.leases == () and snap.nodes[0].resources_available == {"CPU": 1.0}


# -- the worker table, and the daemon's overlay of the two ----------------------------
def test_worker_table_reports_starts_pids_and_deaths():
    t = WorkerTable(start_timeout=30)
    for w in (W1, W2, W3):
        t.requested(w, now=0.0)
    t.forked(W2, 202)
    t.forked(W3, 303)
    assert t.register(W3, 303, "127.0.0.1:9") is None
    snap = t.state("n1")
    assert snap.workers == (rec.WorkerRecord(W1.hex(), "n1", None, "STARTING", None, None),
                            rec.WorkerRecord(W2.hex(), "n1", 202, "STARTING", None, None),
                            rec.WorkerRecord(W3.hex(), "n1", 303, None, None, None))
    t.exited(303, "killed by SIGKILL")
    assert t.state("n1").workers[-1].state == "DEAD"
    t.gone(W3)
    assert [w.worker_id for w in t.state("n1").workers] == [W1.hex(), W2.hex()]


def test_overlay_gives_each_worker_its_lease_from_the_scheduler_and_pid_from_the_table():
    s = sch.NodeScheduler({"CPU": 1.0}, _ids())
    t = WorkerTable(start_timeout=30)
    for w, pid in ((W1, 101), (W2, 202)):
        t.requested(w, now=0.0)
        t.forked(w, pid)
        t.register(w, pid, "127.0.0.1:9")
        s.worker_registered(w)
    t.requested(W3, now=0.0)
    g = s.request_lease("a", 1, {"CPU": 1.0}, "f")[0]
    t.exited(202, "exited with code 1")   # the table knows first; the scheduler is told later
    workers = rec.overlay(s.state("n1", {}).workers, t.state("n1").workers)
    assert workers == (rec.WorkerRecord(W1.hex(), "n1", 101, "LEASED", g.lease_id.hex(), None),
                       rec.WorkerRecord(W2.hex(), "n1", 202, "DEAD", None, None),
                       rec.WorkerRecord(W3.hex(), "n1", None, "STARTING", None, None))


def test_overlay_and_merge_keep_order_and_fill_only_unknown_fields():
    a, b, c = (rec.JobRecord(i, "ns", 1, True) for i in "abc")
    top = (rec.JobRecord("b", "other", None, False), c)
    assert rec.overlay((a, b), top) == (a, rec.JobRecord("b", "other", 1, False), c)
    assert rec.overlay((), top) == top and rec.overlay((a,), ()) == (a,)
    merged = rec.merge([rec.StateSnapshot("x", jobs=(a,)), rec.StateSnapshot("y", jobs=(b,), tasks=(1,))])
    assert merged == rec.StateSnapshot("cluster", jobs=(a, b), tasks=(1,))


# -- the store ---------------------------------------------------------------------
def test_store_reports_what_it_holds_and_where():
    st = StoreAccounting(100 * MiB)
    st.allocate(b"a" * 16, 60 * MiB, "127.0.0.1:5")
    st.allocate(b"b" * 16, 60 * MiB, "127.0.0.1:6")     # a is spilled to make room
    st.allocate(b"c" * 16, 200 * MiB, "127.0.0.1:5")    # larger than the store: straight to disk
    assert st.state("node n1").objects == (
        rec.ObjectRecord((b"a" * 16).hex(), "127.0.0.1:5", "SPILLED", 60 * MiB, None, None),
        rec.ObjectRecord((b"b" * 16).hex(), "127.0.0.1:6", "SHARED_MEMORY", 60 * MiB, None, None),
        rec.ObjectRecord((b"c" * 16).hex(), "127.0.0.1:5", "SPILLED", 200 * MiB, None, None))
    st.free([b"a" * 16, b"b" * 16, b"c" * 16], recyclable=[b"b" * 16])
    assert st.state().objects == ()   # a recycled segment is no object


def test_located_takes_where_from_the_store_and_references_from_the_owner():
    owner = (rec.ObjectRecord("aa", "o:1", "SHARED_MEMORY", 10, 2, 1),
             rec.ObjectRecord("bb", "o:1", "INLINE", 3, 1, 0),
             rec.ObjectRecord("cc", "o:2", "BORROWED", None, 1, 0))   # o:1's cc, borrowed here
    store = (rec.ObjectRecord("aa", "o:1", "SPILLED", 10, None, None),
             rec.ObjectRecord("dd", "o:3", "SHARED_MEMORY", 7, None, None))   # o:3 did not answer
    assert rec.located(owner, store) == (
        rec.ObjectRecord("aa", "o:1", "SPILLED", 10, 2, 1), owner[1], store[1], owner[2])


# -- the GCS tables ------------------------------------------------------------------
def test_gcs_tables_report_nodes_jobs_and_actors_with_why_they_died():
    t = GcsTables()
    t.add_node(b"\x0a" * 16, "10.0.0.1:6380", {"CPU": 4.0}, "head", is_head=True)
    t.add_node(b"\x0b" * 16, "10.0.0.2:7000", {"CPU": 2.0}, "box")
    t.remove_node(b"\x0b" * 16)
    t.add_job(b"job1", "ns", 4242)
    t.register_actor(_spec(ACTOR, name="c", max_restarts=1), False)
    t.register_actor(_spec(W1, detached=True), False)
    t.actor_started(ACTOR, W2, "127.0.0.1:9")
    t.actor_died(ACTOR, pickle.dumps("x"), may_restart=True, reason="its worker process exited")
    snap = t.state()
    assert snap.nodes == (
        rec.NodeRecord((b"\x0a" * 16).hex(), "10.0.0.1:6380", "head", True, True, {"CPU": 4.0}, {"CPU": 4.0},
                       {"ray.io/node-id": (b"\x0a" * 16).hex()}),
        rec.NodeRecord((b"\x0b" * 16).hex(), "10.0.0.2:7000", "box", False, False, {"CPU": 2.0}, {},
                       {"ray.io/node-id": (b"\x0b" * 16).hex()}))
    assert snap.jobs == (rec.JobRecord("6a6f6231", "ns", 4242, True),)
    assert snap.actors == (
        rec.ActorRecord(ACTOR.hex(), "Counter", "c", "ns", "RESTARTING", None, 1, False,
                        "its worker process exited"),
        rec.ActorRecord(W1.hex(), "Counter", None, "ns", "PENDING", None, 0, True, None))
    scheduler = rec.NodeRecord((b"\x0a" * 16).hex(), None, None, True, None, {"CPU": 4.0}, {"CPU": 1.5})
    nodes = rec.overlay(snap.nodes, (scheduler,))
    assert nodes[0] == snap.nodes[0]._replace(resources_available={"CPU": 1.5})
    view = rec.StateSnapshot("x", nodes=nodes)
    assert resource_sum(view, "resources_total") == {"CPU": 4.0}   # the dead node counts for nothing
    assert resource_sum(view, "resources_available") == {"CPU": 1.5}
    assert [(n["NodeManagerAddress"], n["Alive"], n["IsHead"]) for n in ray_nodes(view)] == \
        [("10.0.0.1", True, True), ("10.0.0.2", False, False)]


# -- the owner: its core, driven by events, as the cluster runtime's shell reports it --------
def test_owner_state_reports_tasks_by_stage_and_objects_by_kind():
    me, lender, worker = "127.0.0.1:5", "127.0.0.1:6", "127.0.0.1:8"
    o = Owner(me, sys_path=tuple)
    o.tasks.add_function(b"f", b"pickled")

    def task(n, key, retries=0):
        msg = m.PushTask(bytes([n]) * 16, b"f", None, b"", {}, (), f"f{n}", b"j", "ns", None, (),
                         {"CPU": 1}, me, 0)
        return Task(msg.task_id, msg, (), f"f{n}", retries, True, [], None, key)

    o.objects.expect(b"p" * 16)                                     # pending, owned
    o.tasks.submit(task(1, "k1"), [b"p" * 16], [b"p" * 16])         # waits for it
    o.tasks.submit(task(2, "k2"))                                   # waits for a lease
    call = m.PushActorTask(bytes([3]) * 16, ACTOR, "f3", b"", {}, (), me, None)
    o.actors.submit(Task(call.task_id, call, (), "f3", 0, False, [], ACTOR), None)  # queued
    [(_, ask)] = o.tasks.submit(task(4, "k4", retries=1))
    o.tasks.lease_granted(ask.req, b"L", (), worker, "conn", closing=False)
    failed = RuntimeError("flaky")
    failed.cause = ValueError()
    o.task_done("conn", bytes([4]) * 16, (), failed, True, now=1.0)  # retried on its lease
    o.objects.expect(b"e" * 16)
    o.complete(b"e" * 16, None, b"err")
    o.objects.put(b"s" * 16, b"abc", None)
    o.objects.ref_created(b"s" * 16, me)
    o.objects.ref_created(b"s" * 16, me)
    o.objects.put(b"b" * 16, shm.ShmObject(b"b" * 16, 5 * MiB, "node"), None)
    o.objects.borrower(b"b" * 16, +1)
    o.objects.borrower(b"b" * 16, +1)
    o.objects.ref_created(b"l" * 16, lender)                         # borrowed and fetched
    o.objects.entry(b"l" * 16, lender)
    o.complete(b"l" * 16, b"12345", None, owned=False)
    o.objects.ref_created(b"r" * 16, lender)                         # borrowed, not fetched
    snap = owner_state(SimpleNamespace(_lock=threading.RLock(), _core=o))
    assert snap.source == "owner 127.0.0.1:5" and snap.actors == ()
    assert [(t.name, t.state, t.worker, t.attempt) for t in snap.tasks] == [
        ("f1", "WAITING_FOR_ARGS", None, 0), ("f2", "WAITING_FOR_LEASE", None, 0),
        ("f3", "QUEUED", None, 0), ("f4", "RUNNING", "127.0.0.1:8", 1)]
    assert snap.tasks[2].actor_id == ACTOR.hex() and snap.tasks[0].owner == "127.0.0.1:5"
    me = "127.0.0.1:5"
    assert snap.objects == (
        rec.ObjectRecord((b"p" * 16).hex(), me, "PENDING", None, 0, 0),
        rec.ObjectRecord((b"e" * 16).hex(), me, "ERROR", None, 0, 0),
        rec.ObjectRecord((b"s" * 16).hex(), me, "INLINE", 3, 2, 0),
        rec.ObjectRecord((b"b" * 16).hex(), me, "SHARED_MEMORY", 5 * MiB, 0, 2, ("node",)),
        rec.ObjectRecord((b"l" * 16).hex(), "127.0.0.1:6", "BORROWED", 5, 1, 0),
        rec.ObjectRecord((b"r" * 16).hex(), "127.0.0.1:6", "BORROWED", None, 1, 0))
    assert pickle.loads(pickle.dumps(snap)) == snap   # travels as plain data
