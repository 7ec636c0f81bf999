"""The pure state machines: node scheduler, store accounting, GCS tables, resources, ids, errors."""
import os
import pickle

import pytest

from raylite import _ids
from raylite._gcs.tables import GcsTables
from raylite._node import scheduler as sch
from raylite._protocol import messages as m
from raylite._node.worker_pool import describe_exit
from raylite._node.worker_table import WAIT, WorkerTable
from raylite._object_store.store import StoreAccounting
from raylite import _resources as resources
from raylite.exceptions import (ActorDiedError, GetTimeoutError, ObjectLostError,
                                OutOfDiskError, OwnerDiedError, RayTaskError,
                                TaskCancelledError)


def _sched(cpus=2, gpus=0):
    total = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    return sch.NodeScheduler(total, _ids.new_id)


def test_scheduler_spawns_then_grants():
    s = _sched()
    out = s.request_lease("owner", 1, {"CPU": 1}, "f")
    assert out == [sch.Spawn(1)]
    out = s.worker_registered(b"w1")
    assert len(out) == 1 and isinstance(out[0], sch.Grant) and out[0].worker_id == b"w1"
    assert s.available["CPU"] == 1
    assert s.return_lease(out[0].lease_id) == [] and s.available["CPU"] == 2


def test_scheduler_queues_when_full_and_lends_blocked_cpu():
    s = _sched(cpus=1)
    s.worker_registered(b"w1")
    s.worker_registered(b"w2")
    g = s.request_lease("a", 1, {"CPU": 1}, "f")[0]
    out = s.request_lease("b", 2, {"CPU": 1}, "g")
    assert not any(isinstance(i, sch.Grant) for i in out)
    assert any(isinstance(i, sch.RevokeIdle) for i in out)
    out = s.set_blocked(b"w1", True)  # the first task waits in get(): its CPU is lent
    assert [i.owner for i in out if isinstance(i, sch.Grant)] == ["b"]
    s.set_blocked(b"w1", False)
    assert s.available["CPU"] == -1  # briefly oversubscribed, as Ray
    s.return_lease(g.lease_id)
    assert s.available["CPU"] == 0


def test_scheduler_starts_only_the_workers_that_could_run_at_once():
    s = _sched(cpus=2)
    out = [i for n in range(10) for i in s.request_lease("o", n, {"CPU": 1}, "f")]
    assert sum(i.count for i in out if isinstance(i, sch.Spawn)) == 2  # not one per request
    assert [i for i in s.request_lease("o", 10, {}, "g") if isinstance(i, sch.Spawn)]  # 0 CPU fits


def test_scheduler_reaps_idle_workers_beyond_the_cpu_count_the_longest_idle_first():
    s = _sched(cpus=1)
    for w in (b"w1", b"w2", b"w3"):
        s.worker_registered(w)
    assert s.reap_idle(10.0, keep=1, after_s=1.0) == []  # first seen idle at 10.0
    assert s.reap_idle(10.9, keep=1, after_s=1.0) == []
    g = s.request_lease("a", 1, {"CPU": 1}, "f")[0]     # w1 leased: never reaped
    assert g.worker_id == b"w1"
    assert s.reap_idle(11.0, keep=1, after_s=1.0) == [sch.Kill(b"w2"), sch.Kill(b"w3")]
    assert set(s.workers) == {b"w1"} and not s.idle
    s.return_lease(g.lease_id)                          # idle again, but it is the one we keep
    assert s.reap_idle(20.0, keep=1, after_s=1.0) == []


def test_scheduler_idle_period_restarts_when_a_worker_is_leased_in_between():
    s = _sched(cpus=1)
    s.worker_registered(b"w1")
    s.worker_registered(b"w2")
    assert s.reap_idle(0.0, keep=1, after_s=1.0) == []
    g = s.request_lease("a", 1, {"CPU": 1}, "f")[0]     # w1 busy between two ticks...
    s.return_lease(g.lease_id)                          # ...and idle again: a new period
    assert s.reap_idle(1.0, keep=1, after_s=1.0) == [sch.Kill(b"w2")]
    s.worker_registered(b"w3")
    assert s.reap_idle(1.5, keep=1, after_s=1.0) == []  # w1's period began at the 1.0 tick
    assert s.reap_idle(2.0, keep=1, after_s=1.0) == [sch.Kill(b"w1")]
    assert s.workers == {b"w3": None}


def test_scheduler_infeasible_and_gpus_and_owner_gone():
    s = _sched(cpus=2, gpus=2)
    out = s.request_lease("a", 1, {"CPU": 8}, "big")
    assert isinstance(out[0], sch.Infeasible) and out[0].demand == {"CPU": 8}
    s.worker_registered(b"w1")
    s.worker_registered(b"w2")
    g = [i for i in s.request_lease("b", 2, {"CPU": 1, "GPU": 1}, "gpu") if isinstance(i, sch.Grant)]
    assert g[0].gpu_ids == (0,)
    out = s.owner_gone("b")
    assert sch.Kill(b"w1") in out or sch.Kill(b"w2") in out
    assert s.free_gpus == [0, 1]
    assert s.statistics()["pending_requests"] == 1  # the infeasible one stays queued


def test_worker_table_admits_only_the_workers_it_started():
    t = WorkerTable(start_timeout=30)
    t.requested(b"w1", now=0)
    assert t.register(b"w1", 100, "a:1") == WAIT  # the fork server has not reported it yet
    assert t.forked(b"w1", 100) is not None
    for wid, pid in ((b"w1", 0), (b"w1", -1), (b"w1", 101), (b"nope", 100)):
        assert t.register(wid, pid, "a:1") not in (None, WAIT)
    assert t.pid_of(b"nope") == 0
    assert t.register(b"w1", 100, "a:1") is None and t.pid_of(b"w1") == 100
    assert t.register(b"w1", 100, "a:1") is not None  # once
    assert t.forked(b"unknown", 7) is None  # not asked for: the shell has it killed


def test_worker_table_failed_starts_and_deaths():
    t = WorkerTable(start_timeout=30)
    for wid, pid in ((b"a", 1), (b"b", 2), (b"c", 3)):
        t.requested(wid, now=0)
        t.forked(wid, pid)
    t.requested(b"d", now=20)
    p, failed_start = t.exited(1, "killed by SIGKILL")
    assert failed_start and p.worker_id == b"a" and p.reason == "killed by SIGKILL"
    assert b"a" not in t.starting and t.pid_of(b"a") == 0  # failed start, never signalled again
    assert t.register(b"b", 2, "h:2") is None
    assert [p.worker_id for p in t.expired(now=31)] == [b"c"]  # d is not late yet
    assert t.pid_of(b"c") == 0 and t.exited(3, "killed by SIGKILL")[1] is False
    assert t.death_of("h:2")[1].worker_id == b"b"  # alive: an owner's question waits
    p, failed_start = t.exited(2, "exited with code 3")
    assert not failed_start and t.pid_of(b"b") == 0
    assert t.death_of("h:2") == ("exited with code 3", None)
    assert t.gone(b"b") is p and t.death_of("h:2")[0] == "exited with code 3"
    assert t.next_deadline() == 20
    t.requested(b"e", now=21)  # its request never reached a fork server
    t.forked(b"d", 4)
    t.starting[b"d"].sent = True
    failed, died = t.fork_server_lost("gone with it")
    assert [p.worker_id for p in failed] == [b"d"] and not died and not t.by_pid
    assert [p.worker_id for p in t.unsent()] == [b"e"]


def test_worker_exit_descriptions():
    assert describe_exit(3 << 8, None, None) == "exited with code 3"
    assert describe_exit(11, None, None) == "killed by SIGSEGV"
    assert describe_exit(9, 4, 4) == "killed by SIGKILL"
    assert "OOM killer" in describe_exit(9, 4, 5)
    assert "possibly the OOM killer" in describe_exit(9, None, 5)


def test_store_accounting_spills_lru_and_recycles():
    st = StoreAccounting(100)
    assert st.allocate(b"a", 40, "o").spill == []
    assert st.allocate(b"b", 40, "o").spill == []
    alloc = st.allocate(b"c", 40, "o")
    assert alloc.spill == [b"a"] and st.used == 80 and st.spilled_bytes == 40
    deleted, recycled = st.free([b"b"], recyclable={b"b"})
    assert recycled and not deleted and st.pool_bytes == 40
    alloc = st.allocate(b"d", 35, "o")
    assert alloc.reuse == recycled[0][1] and st.pool_bytes == 0
    deleted, _ = st.free([b"a"])
    assert deleted == [(b"a", False, True)] and st.spilled_bytes == 0
    deleted, _ = st.owner_gone("o")
    assert {d[0] for d in deleted} == {b"c", b"d"} and st.used == 0


def test_store_accounting_too_big():
    st = StoreAccounting(100)
    assert st.allocate(b"x", 500, "o", disk_free=1000).to_disk
    with pytest.raises(OutOfDiskError, match="spill disk"):
        st.allocate(b"y", 500, "o", disk_free=10)


def test_gcs_tables_actor_lifecycle():
    def Spec(actor_id, name=None, detached=False, max_restarts=0):
        return m.ActorSpec(actor_id, b"c", b"", "M", b"", {}, "o:1", b"j", "ns", name, detached,
                           {}, {}, max_restarts, None, None, 0)

    t = GcsTables()
    assert t.register_actor(Spec(b"a", "n", max_restarts=1), False) == (b"a", "M", None)
    assert t.register_actor(Spec(b"b", "n"), False)[2] is not None
    assert t.register_actor(Spec(b"b", "n"), True)[0] == b"a"
    t.actor_started(b"a", b"w", "h:1")
    assert t.lookup(None, "n", "ns").state == "ALIVE"
    assert t.actor_died(b"a", None, may_restart=True) == "RESTARTING"
    t.actor_started(b"a", b"w2", "h:2")
    assert t.actor_died(b"a", b"why", may_restart=True) == "DEAD"
    assert t.lookup(None, "n", "ns") is None
    t.register_actor(Spec(b"c", detached=True), False)
    t.register_actor(Spec(b"d"), False)
    assert t.finish_job(b"j") == [b"d"]


def test_resources_arithmetic():
    pool = {"CPU": 2.0}
    assert resources.fits({"CPU": 2}, pool) and not resources.fits({"CPU": 2.5}, pool)
    assert resources.missing({"CPU": 3, "GPU": 1}, pool) == {"CPU": (3, 2.0), "GPU": (1, 0.0)}
    resources.subtract(pool, {"CPU": 1})
    resources.add(pool, {"x": 1})
    assert pool == {"CPU": 1.0, "x": 1}
    total = resources.node_total(3, 1, {"x": 2}, 10 * 2**20)
    assert total["CPU"] == 3 and total["GPU"] == 1 and total["x"] == 2
    assert total["object_store_memory"] == 10 * 2**20


def test_ids_unique_and_fork_aware():
    ids = {_ids.new_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 16 for i in ids)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, _ids.new_id())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 16)
    assert child[:8] != next(iter(ids))[:8]


def test_exception_tree():
    assert issubclass(GetTimeoutError, TimeoutError)
    assert issubclass(OwnerDiedError, ObjectLostError)
    err = RayTaskError("f", "Traceback...\nValueError: x", ValueError("x"), pid=1)
    dual = err.as_instanceof_cause()
    assert isinstance(dual, ValueError) and isinstance(dual, RayTaskError)
    assert dual.args == ("x",)
    again = pickle.loads(pickle.dumps(dual))
    assert isinstance(again, RayTaskError) and isinstance(again.cause, ValueError)


class _TwoArgs(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)
        self.code = code


def test_as_instanceof_cause_with_any_signature():
    dual = RayTaskError("f", "tb", _TwoArgs(1, "x")).as_instanceof_cause()
    assert isinstance(dual, _TwoArgs) and dual.code == 1 and dual.args == (1, "x")
    assert str(dual).startswith("ray::f()")
    cause = KeyError("k")
    assert RayTaskError("f", "tb", cause).as_instanceof_cause().cause is cause


@pytest.mark.parametrize("err", [
    OwnerDiedError("ab12", "Object ab12 is lost: its owner exited."),
    ObjectLostError("ab12"),
    TaskCancelledError("t1"),
    TaskCancelledError("t1", "stopped by the user"),
    ActorDiedError("the actor is dead", "a1", ValueError("why")),
    GetTimeoutError("too slow"),
])
def test_errors_survive_pickling(err):
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and str(again) == str(err)
    assert again.__dict__.keys() == err.__dict__.keys()
    for k in ("object_ref_hex", "task_id", "actor_id"):
        assert getattr(again, k, None) == getattr(err, k, None)


def test_resource_defaults_and_description():
    total = resources.node_total(None, None, None, None)
    assert total["CPU"] == (os.cpu_count() or 1) and "GPU" not in total
    assert total["object_store_memory"] > 0 and total["node:127.0.0.1"] == 1
    assert resources.describe({"GPU": 1, "CPU": 0.5}) == "{CPU: 0.5, GPU: 1}"
    assert resources.fits({}, {}) and resources.missing({"x": 1}, {"x": 1}) == {}


def test_random_ids():
    assert len(_ids.random_id()) == 16 and len(_ids.random_id(4)) == 4
    assert _ids.random_id() != _ids.random_id()


def test_node_side_cores_keep_a_bounded_log_of_recent_events():
    from raylite._node.scheduler import LOG_SIZE, NodeScheduler
    from raylite._node.worker_table import WorkerTable
    from raylite._object_store.store import StoreAccounting

    ids = iter(range(10**6))
    sched = NodeScheduler({"CPU": 1}, lambda: next(ids).to_bytes(4, "big"))
    sched.worker_registered(b"w")
    for i in range(LOG_SIZE + 10):
        sched.request_lease("owner", i, {"CPU": 1}, "f")
    assert len(sched.log) == LOG_SIZE and sched.log[-1] == ("request", "f", LOG_SIZE + 9)
    assert ("registered", b"w") not in sched.log  # the oldest went first
    table = WorkerTable(30.0, remember=4)
    for i in range(6):
        table.requested(bytes([i]), float(i))
    assert [e[1] for e in table.log] == [bytes([i]) for i in range(2, 6)]
    store = StoreAccounting(1000)
    store.allocate(b"o", 10, "owner")
    store.free([b"o"])
    assert [e[0] for e in store.log] == ["allocate", "free"]
