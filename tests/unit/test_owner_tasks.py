"""The owner core's tasks and leases: submit, lease, push, done, retries, crashes, cancel."""
import pytest

from raylite._core.owner import (DAEMON, MAX_LEASE_REQUESTS, WAKE, LeaseRequest, LeaseReturn,
                                 Owner, Task)
from raylite._protocol import messages as m
from raylite.exceptions import RaySystemError, TaskCancelledError, WorkerCrashedError

ME, D = "me:1", DAEMON
KEY = (("CPU", 1),)


def owner() -> Owner:
    o = Owner(ME, sys_path=lambda: ("/src",))
    o.tasks.add_function(b"f", b"pickled f")
    return o


def task(n: int, retries: int = 0, retry_exceptions=False, inlined=None, args=b"a") -> Task:
    tid = bytes([n]) * 4  # ids grow in submission order
    msg = m.PushTask(tid, b"f", None, args, inlined or {}, (tid + b"r",), "f", b"j", "ns", None,
                     (), {"CPU": 1}, ME, 0)
    return Task(tid, msg, msg.return_ids, "f", retries, retry_exceptions, [], None, KEY)


def grant(o: Owner, out: list, worker: str, lease: bytes = b"L") -> list:
    req = next(msg.req for _, msg in out if type(msg) is LeaseRequest)
    return o.tasks.lease_granted(req, lease, (), worker, worker, closing=False)


def test_submit_lease_push_done_then_idle_and_returned():
    o = owner()
    t = task(1)
    out = o.tasks.submit(t)
    assert out == [(D, LeaseRequest(1, {"CPU": 1}, "f"))]
    out = grant(o, out, "w1")
    [(conn, push)] = out
    assert conn == "w1" and push.function == b"pickled f" and push.sys_path == ("/src",)
    w = o.objects.wait([o.objects.entries[t.return_ids[0]]], 1, "wake")
    assert w is not None
    out = o.task_done("w1", t.task_id, (b"result",), None, False, now=10.0)
    assert out == [(WAKE, "wake")] and o.objects.entries[t.return_ids[0]].data == b"result"
    assert t.task_id not in o.tasks.tasks
    t2 = task(2)  # the idle lease takes the next task; the function's bytes went already
    [(conn, push)] = o.tasks.submit(t2)
    assert conn == "w1" and push.function is None
    o.task_done("w1", t2.task_id, (b"r2",), None, False, now=11.0)
    assert o.tasks.return_idle(now=11.1, older_than=0.2) == []
    assert o.tasks.return_idle(now=11.3, older_than=0.2) == [(D, LeaseReturn(b"L"))]


def test_quiet_only_with_no_task_no_lease_and_no_request():
    """What lets the maintenance thread wake less often (cluster_tasks._maintain)."""
    o = owner()
    assert o.tasks.quiet()
    t = task(1)
    out = o.tasks.submit(t)
    assert not o.tasks.quiet()                      # a lease asked for
    grant(o, out, "w1")
    o.task_done("w1", t.task_id, (b"result",), None, False, now=10.0)
    assert not o.tasks.quiet()                      # the idle lease is still held
    o.tasks.return_idle(now=11.0, older_than=0.2)
    assert o.tasks.quiet()


def test_lease_requests_per_key_are_bounded_and_unused_grants_go_back():
    o = owner()
    out = []
    for i in range(MAX_LEASE_REQUESTS + 4):
        out += o.tasks.submit(task(i + 1))
    assert len(out) == MAX_LEASE_REQUESTS
    o2 = owner()
    out = o2.tasks.submit(task(1))
    o2.cancel(task(1).return_ids[0], False)  # queue empty again by the time the grant comes
    assert grant(o2, out, "w1") == [(D, LeaseReturn(b"L"))]
    assert o2.tasks.lease_granted(99, b"L2", (), "w", "w", False) == [(D, LeaseReturn(b"L2"))]


def test_race_a_dependency_finishing_between_argument_preparation_and_submit():
    """The race, as fixed in a24322c: the shell prepares a task's arguments without the lock
    and sees its dependency `d` pending; before it submits, `d` completes (its waiters are
    released: none yet). A core that trusted the shell's view would add the task as a waiter
    of `d` and the task would wait forever for a completion that already happened (no
    LeaseRequest, ever). The core looks again and sends the task on, with `d` inlined."""
    o = owner()
    o.objects.expect(b"d")
    inlined, deps = o.objects.inline_args([b"d"])   # argument preparation: d pending
    assert deps == [b"d"]
    o.complete(b"d", b"dv", None)                    # ... d finishes meanwhile
    t = task(1, inlined=inlined)
    out = o.tasks.submit(t, deps, [b"d"])            # ... then the task is submitted
    assert [type(msg) for _, msg in out] == [LeaseRequest]
    [(_, push)] = grant(o, out, "w1")
    assert push.inlined == {b"d": (b"dv", None)}


def test_a_task_waits_for_its_pending_dependencies_then_goes():
    o = owner()
    o.objects.expect(b"d1")
    o.objects.expect(b"d2")
    t = task(1)
    assert o.tasks.submit(t, [b"d1", b"d2"], [b"d1", b"d2"]) == []
    assert o.state().tasks[0].state == "WAITING_FOR_ARGS"
    assert o.complete(b"d1", b"1", None) == []
    out = o.complete(b"d2", None, "failed upstream")
    assert [type(msg) for _, msg in out] == [LeaseRequest]
    assert t.msg.inlined == {b"d1": (b"1", None), b"d2": (None, "failed upstream")}


def test_exceptions_are_retried_while_retries_last():
    o = owner()
    t = task(1, retries=1, retry_exceptions=(ValueError,))
    out = grant(o, o.tasks.submit(t), "w1")
    err = RaySystemError("wrapped")
    err.cause = ValueError("flaky")
    out = o.task_done("w1", t.task_id, (), err, True, now=1.0)
    assert [(c, type(msg)) for c, msg in out] == [("w1", m.PushTask)]  # again, on the same lease
    assert t.attempt == 1 and t.retries == 0
    out = o.task_done("w1", t.task_id, (), err, True, now=2.0)
    assert out == [] and o.objects.entries[t.return_ids[0]].error is err
    other = task(2, retries=3, retry_exceptions=(KeyError,))  # not a KeyError: no retry
    assert [c for c, _ in o.tasks.submit(other)] == ["w1"]   # the idle lease takes it
    o.task_done("w1", other.task_id, (), err, True, now=3.0)
    assert o.objects.entries[other.return_ids[0]].error is err


def test_a_worker_crash_retries_then_fails_with_how_it_died():
    o = owner()
    t = task(1, retries=1)
    grant(o, o.tasks.submit(t), "w1")
    out, crashed = o.peer_lost("w1")
    assert crashed == [] and [type(msg) for _, msg in out] == [LeaseRequest]
    grant(o, out, "w2", b"L2")
    assert t.conn == "w2"
    out, crashed = o.peer_lost("w2")
    assert crashed == [t] and t.task_id not in o.tasks.tasks
    o.fail_crashed(crashed, "killed by SIGKILL")
    error = o.objects.entries[t.return_ids[0]].error
    assert isinstance(error, WorkerCrashedError) and "killed by SIGKILL" in str(error)


def test_cancel_fails_a_queued_task_and_names_the_worker_of_a_running_one():
    o = owner()
    queued = task(1)
    requests = o.tasks.submit(queued)
    out, running = o.cancel(queued.return_ids[0], False)
    assert running is None and isinstance(o.objects.entries[queued.return_ids[0]].error,
                                          TaskCancelledError)
    t = task(2)
    assert o.tasks.submit(t) == []  # the first task's lease request is still out: it serves
    grant(o, requests, "w1")
    out, running = o.cancel(t.return_ids[0], True)
    assert out == [] and running == ("w1", t.task_id)
    o.task_done("w1", t.task_id, (), "KeyboardInterrupt", True, now=1.0)
    assert isinstance(o.objects.entries[t.return_ids[0]].error, TaskCancelledError)


def test_a_gone_daemon_fails_every_task_without_a_worker():
    o = owner()
    running, queued = task(1), task(2)
    out = o.tasks.submit(running) + o.tasks.submit(queued)
    grant(o, out, "w1")
    out = o.fail_queued(RaySystemError("the cluster is gone"))
    assert isinstance(o.objects.entries[queued.return_ids[0]].error, RaySystemError)
    assert running.task_id in o.tasks.tasks and o.tasks.keys[KEY].requests == 0


def test_shared_memory_arguments_are_freed_with_their_task():
    class Loc(tuple):
        object_id = b"args"

    o = owner()
    t = task(1, args=Loc())
    grant(o, o.tasks.submit(t), "w1")
    o.task_done("w1", t.task_id, (b"r",), None, False, now=1.0)
    assert o.objects.take_frees()[0] == [(b"args", True, None, ())]  # the worker mapped it


def test_state_reports_tasks_where_they_are():
    o = owner()
    t1, t2 = task(1), task(2)
    out = o.tasks.submit(t1) + o.tasks.submit(t2)
    grant(o, out, "w1")
    here = Task(b"h" * 4, None, (), "local", 0, False, None)
    o.tasks.running_here(here, "local")  # local mode: on the caller's thread
    states = {r.task_id: (r.state, r.worker, r.owner) for r in o.state().tasks}
    assert states == {t1.task_id.hex(): ("RUNNING", "w1", ME),
                      t2.task_id.hex(): ("WAITING_FOR_LEASE", None, ME),
                      here.task_id.hex(): ("RUNNING", "local", ME)}
    o.tasks.drop(here.task_id)
    assert len(o.state().tasks) == 2


@pytest.mark.parametrize("retries", [0, -1])
def test_retry_rule_counts_down_or_forever(retries):
    t = task(1, retries=retries, retry_exceptions=True)
    results = [t.retry_error(ValueError()) for _ in range(3)]
    assert results == ([False] * 3 if retries == 0 else [True] * 3)


def test_a_dead_node_gives_back_the_connections_of_its_leases_and_requests_go_home():
    """Node B (daemon at "B:1") died while the GCS could not tell its workers' sockets had
    closed (frozen): the owner names the connections of every lease B granted, busy or idle,
    for the shell to close; lease requests asked of B are asked of our own daemon again; a
    task that was running there is retried, and with no retries left fails naming the node."""
    o = owner()
    t1, t2, t3 = task(1, retries=1), task(2), task(3)
    out = o.tasks.submit(t1) + o.tasks.submit(t2) + o.tasks.submit(t3)
    reqs = [msg.req for _, msg in out if type(msg) is LeaseRequest]
    o.tasks.lease_spilled(reqs[0], "B:1", False)
    o.tasks.lease_spilled(reqs[1], "B:1", False)
    o.tasks.lease_spilled(reqs[2], "B:1", False)
    asked_b = [r for r, (_, at) in o.tasks.lease_reqs.items() if at == "B:1"]
    assert len(asked_b) == 3
    o.tasks.lease_granted(asked_b[0], b"L1", (), "wb1", "wb1", False)   # t1 runs on B
    o.tasks.lease_granted(asked_b[1], b"L2", (), "wb2", "wb2", False)   # t2 runs on B
    out, conns = o.node_died("B:1")
    assert conns == {"wb1", "wb2"}
    # t3's request, asked of B and never answered, goes to our own daemon
    assert [(t, msg.daemon) for t, msg in out] == [(D, "")]
    assert not [r for r, (_, at) in o.tasks.lease_reqs.items() if at == "B:1"]
    out, crashed = o.peer_lost("wb1", "n1 at B:1 died: nothing heard")
    assert crashed == [] and t1.attempt == 1 and t1.task_id in o.tasks.tasks  # retried
    out, crashed = o.peer_lost("wb2", "n1 at B:1 died: nothing heard")
    assert crashed == [t2]
    o.fail_crashed(crashed, "its node n1 at B:1 died: nothing heard")
    err = o.objects.entries[t2.return_ids[0]].error
    assert isinstance(err, WorkerCrashedError) and "its node n1 at B:1 died" in str(err)


def test_a_spread_keys_lease_goes_back_when_its_queue_is_empty_so_the_next_task_leases_anew():
    o = owner()
    t1, t2, t3 = (task(i) for i in (1, 2, 3))
    for t in (t1, t2, t3):
        t.strategy, t.key = ("SPREAD",), (KEY, ("SPREAD",))
    out = grant(o, o.tasks.submit(t1), "w1")
    assert [msg.task_id for _, msg in out] == [t1.task_id]
    out = o.task_done("w1", t1.task_id, (b"r",), None, False, now=1.0)
    assert (D, LeaseReturn(b"L")) in out                   # nothing queued: returned, not idle
    [(_, req)] = o.tasks.submit(t2)
    assert type(req) is LeaseRequest and req.strategy == ("SPREAD",)
    out = o.tasks.lease_granted(req.req, b"L2", (), "w2", "w2", False)
    o.tasks.submit(t3)                                     # queued while t2 runs
    out = o.task_done("w2", t2.task_id, (b"r",), None, False, now=2.0)
    assert [msg.task_id for conn, msg in out if conn == "w2"] == [t3.task_id]  # reused
