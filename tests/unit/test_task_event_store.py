"""Task events: the bounded store (pure), the owner core's events, the trace, the checks."""
import pickle

import pytest

from raylite._core import task_events as te
from raylite._core.owner import DAEMON, LeaseRequest, Owner, Task
from raylite._core.task_events import TaskEventTable, error_info
from raylite._core.trace import trace_events
from raylite._protocol import messages as m
from raylite._protocol import validate, validate_events
from raylite.exceptions import (ActorDiedError, RayTaskError, TaskCancelledError,
                                WorkerCrashedError)

JOB = b"jjjj"
WHO = ("ab" * 16, "cd" * 16, 42, "w:1")   # who ran a task: node, worker, pid, address


def tid(n: int) -> bytes:
    return bytes([n]) * 16


def made(n: int, at: float, name: str = "f", job: bytes = JOB, actor=None, parent=None) -> tuple:
    return (tid(n), 0, te.PENDING_NODE, at, (job, name, actor, parent))


def ran(table: TaskEventTable, n: int, at: float, failed=None, job: bytes = JOB) -> None:
    """Task n: made by its owner, run by a worker, then finished (or failed)."""
    table.add([made(n, at, job=job)] + ([(tid(n), 0, te.FAILED, at + 3, failed)] if failed else []),
              "o:1")
    table.add([(tid(n), 0, te.RAN if failed else te.FINISHED, at + 2, (job, "f", at + 1))],
              "w:1", "node1", "worker1", 42)


def test_owner_and_worker_events_in_any_order_make_one_record():
    t = TaskEventTable()
    # the worker's batches arrive first: the owner's creation event fills in the rest
    t.add([(tid(1), 0, te.RUNNING, 11.0, (JOB, "f"))], "w:1", "node1", "worker1", 42)
    [r], _ = t.query()
    assert (r.state, r.start_time_ms, r.end_time_ms, r.creation_time_ms) == \
        ("RUNNING", 11000, None, None)
    t.add([(tid(1), 0, te.FINISHED, 12.5, (JOB, "f", 11.0))], "w:1", "node1", "worker1", 42)
    t.add([made(1, 10.0)], "o:1")
    [r], total = t.query()
    assert total == 1
    assert (r.task_id, r.attempt_number, r.name, r.state, r.job_id, r.type) == \
        (tid(1).hex(), 0, "f", "FINISHED", JOB.hex(), "NORMAL_TASK")
    assert (r.node_id, r.worker_id, r.worker_pid, r.owner_address, r.worker_address) == \
        ("node1", "worker1", 42, "o:1", "w:1")
    # the worker's times are the run's; the state never goes back to RUNNING
    assert (r.creation_time_ms, r.start_time_ms, r.end_time_ms) == (10000, 11000, 12500)
    assert (r.start_time_us, r.end_time_us) == (11_000_000, 12_500_000)
    assert r.events == ((te.PENDING_NODE, 10000), (te.RUNNING, 11000), (te.FINISHED, 12500))


def test_a_record_names_the_task_that_submitted_it():
    t = TaskEventTable()
    t.add([made(1, 1.0), made(2, 2.0, parent=tid(1))], "o:1")  # 2 was made inside task 1
    t.add([(tid(3), 0, te.FINISHED, 4.0, (JOB, "f", 3.5))], "w:1", "n", "w", 7)
    t.add([made(3, 3.0, parent=tid(2))], "o:2")                 # its owner's event comes last
    rows = {r.task_id: r.parent_task_id for r in t.query()[0]}
    assert rows == {tid(1).hex(): None, tid(2).hex(): tid(1).hex(), tid(3).hex(): tid(2).hex()}
    [r], total = t.query((("parent_task_id", "=", tid(1).hex()),))
    assert total == 1 and r.task_id == tid(2).hex()


def test_failures_keep_their_error_and_actor_calls_their_actor():
    t = TaskEventTable()
    ran(t, 1, 1.0, failed=("TASK_EXECUTION_EXCEPTION", "ValueError: boom"))
    t.add([made(2, 2.0, "A.m", actor=tid(9))], "o:1")
    a, b = t.query()[0]
    assert (a.state, a.error_type, a.error_message) == \
        ("FAILED", "TASK_EXECUTION_EXCEPTION", "ValueError: boom")
    assert (b.type, b.actor_id, b.state, b.start_time_ms) == \
        ("ACTOR_TASK", tid(9).hex(), te.PENDING_NODE, None)


def test_the_store_is_bounded_per_job_oldest_finished_out_first_and_counts_drops():
    t = TaskEventTable(max_per_job=3)
    t.add([made(1, 1.0)], "o:1")              # still pending: outlives later finished ones
    for n in range(2, 7):
        ran(t, n, float(n))
    ran(t, 7, 7.0, job=b"kkkk")               # another job has a bound of its own
    ids = [r.task_id for r in t.query()[0]]
    assert ids == [tid(1).hex(), tid(5).hex(), tid(6).hex(), tid(7).hex()]
    assert t.dropped() == 3 and t.statistics()["records"] == 4
    for n in range(8, 11):                    # none finished: the oldest goes
        t.add([made(n, float(n))], "o:1")
    assert [r.task_id for r in t.query([("job_id", "=", JOB.hex())])[0]] == \
        [tid(n).hex() for n in (8, 9, 10)]
    assert t.dropped() == 6
    # a late event of a record pushed out is ignored, not made into a half record
    t.add([(tid(2), 0, te.FAILED, 20.0, ("WORKER_DIED", "x"))], "o:1")
    assert t.ignored == 1 and t.statistics()["records"] == 4


def test_filters_apply_before_the_limit_and_offset_pages():
    t = TaskEventTable()
    for n in range(1, 11):
        ran(t, n, float(n), failed=("WORKER_DIED", "x") if n in (3, 9) else None)
    rows, total = t.query([("state", "=", "failed")], limit=1)  # case-insensitive
    assert total == 2 and [r.task_id for r in rows] == [tid(3).hex()]
    rows, total = t.query([("state", "!=", "FAILED")], limit=3, offset=6)
    assert total == 8 and [r.task_id for r in rows] == [tid(n).hex() for n in (8, 10)]
    assert t.query([("worker_pid", "=", "42")], limit=0) == ((), 10)  # by its text
    assert t.query([("task_id", "=", tid(3).hex())])[0][0].attempt_number == 0  # looked up
    assert t.query([("task_id", "=", tid(3).hex().upper())])[1] == 1
    assert t.query([("task_id", "=", "not hex")]) == ((), 0)
    assert t.query([("name", "~", "F"), ("error_type", "~", "died")])[1] == 2  # the dashboard's
    assert t.query(limit=2, offset=9)[1] == 10 and len(t.query(limit=2, offset=9)[0]) == 1
    assert sorted(t.summary()) == [("f", "NORMAL_TASK", "FAILED", 2),
                                   ("f", "NORMAL_TASK", "FINISHED", 8)]
    assert t.answer([("state", "=", "FAILED")], -1, 0, True)[:2] == \
        ((("f", "NORMAL_TASK", "FAILED", 2),), 2)


def test_error_types_are_rays():
    assert error_info(TaskCancelledError("t"))[0] == "TASK_CANCELLED"
    assert error_info(WorkerCrashedError("died"))[0] == "WORKER_DIED"
    assert error_info(ActorDiedError("gone", "a"))[0] == "ACTOR_DIED"
    assert error_info(ValueError("boom\nmore")) == ("TASK_EXECUTION_EXCEPTION", "ValueError: boom")
    wrapped = RayTaskError("f", "tb", ValueError("inner"))
    assert error_info(wrapped) == ("TASK_EXECUTION_EXCEPTION", "ValueError: inner")


# -- the owner core's events ---------------------------------------------------
class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        self.t += 1.0
        return self.t


def owner() -> Owner:
    o = Owner("me:1", sys_path=lambda: (), clock=Clock(),
              encode_error=pickle.dumps, decode_error=pickle.loads)
    o.tasks.add_function(b"f", b"pickled f")
    o.events.job_id = JOB
    return o


def task(n: int, retries: int = 0, events: bool = True) -> Task:
    msg = m.PushTask(tid(n), b"f", None, b"a", {}, (tid(n)[:15] + b"r",), "f", JOB, "ns", None,
                     (), {"CPU": 1}, "me:1", 0, (), attempt=0, task_events=events)
    return Task(tid(n), msg, msg.return_ids, "f", retries, True, [], None, (("CPU", 1),),
                events=events)


def push(o: Owner, out: list, worker: str = "w:1"):
    req = next(x.req for target, x in out if target is DAEMON and type(x) is LeaseRequest)
    [(conn, msg)] = o.tasks.lease_granted(req, b"L" * 16, (), worker, worker, closing=False)
    return msg


def test_the_owner_core_records_a_new_attempt_with_the_clock_it_was_given():
    o = owner()
    t = task(1)
    msg = push(o, o.tasks.submit(t))
    assert msg.task_events and msg.attempt == 0
    o.task_done("w:1", t.task_id, (b"r",), None, False, now=0.0)  # no run times: no end told
    events, lost, whole = o.events.take()
    assert lost == 0 and whole == () and o.events.take() == ([], 0, ())
    assert events == [(t.task_id, 0, te.PENDING_NODE, 101.0, (JOB, "f", None, None))]


def test_a_retry_fails_one_attempt_and_starts_the_next_and_off_means_nothing():
    o = owner()
    t = task(1, retries=1)
    push(o, o.tasks.submit(t))
    err = pickle.dumps(RayTaskError("f", "tb", ValueError("flaky")))
    out = o.task_done("w:1", t.task_id, (), err, True, now=0.0)
    assert [x.attempt for target, x in out if type(x) is m.PushTask] == [1]  # the idle lease
    o.task_done("w:1", t.task_id, (b"r",), None, False, now=1.0)
    states = [(e[1], e[2]) for e in o.events.take()[0]]
    # no times (so no whole task): the batch's openings, then attempt 0's end
    assert states == [(0, te.PENDING_NODE), (1, te.PENDING_NODE), (0, te.FAILED)]
    quiet = task(2, events=False)
    [(_, msg)] = o.tasks.submit(quiet)  # the idle lease takes it
    assert not msg.task_events
    o.task_done("w:1", quiet.task_id, (b"r",), None, False, now=2.0, ran=(1.0, 2.0, WHO))
    assert o.events.take() == ([], 0, ())


def test_a_cancelled_queued_task_fails_with_its_error_type():
    o = owner()
    t = task(1)
    o.tasks.submit(t)
    o.cancel(t.return_ids[0], False)
    *_, (task_id, attempt, state, at, info) = o.events.take()[0]
    assert (state, info[0]) == (te.FAILED, "TASK_CANCELLED")


def test_the_buffer_is_bounded_and_counts_what_it_dropped():
    o = owner()
    o.events.limit = 2
    for n in range(1, 4):
        o.tasks.submit(task(n))
    events, lost, _ = o.events.take()
    assert len(events) == 2 and lost == 1


# -- the trace and the wire checks ---------------------------------------------
def test_trace_has_a_row_per_worker_and_a_span_per_run():
    t = TaskEventTable()
    ran(t, 1, 1.0)
    t.add([made(2, 2.0)], "o:1")                          # never ran: no span
    t.add([made(3, 3.0)], "o:1")
    t.add([(tid(3), 0, te.RUNNING, 4.0, (JOB, "g"))], "w:2", "node1", "worker2", 43)
    events = trace_events(t.query()[0], now_us=9_000_000)
    meta = [e for e in events if e["ph"] == "M"]
    spans = [e for e in events if e["ph"] == "X"]
    assert {e["args"]["name"] for e in meta if e["name"] == "thread_name"} == \
        {"worker worker1 (pid 42)", "worker worker2 (pid 43)"}
    assert [(s["name"], s["ts"], s["dur"], s["tid"]) for s in spans] == \
        [("f", 2_000_000, 1_000_000, 42), ("g", 4_000_000, 5_000_000, 43)]  # still running
    assert spans[0]["args"]["state"] == "FINISHED" and spans[0]["pid"] == spans[1]["pid"]


def test_the_daemon_checks_every_event_of_a_batch():
    good = m.TaskEvents((made(1, 1.0), (tid(1), 0, te.RAN, 2.0, (JOB, "f", 1.0))), 0)
    assert validate.problem(good) is None
    for bad in [(tid(1), 0, "BOGUS", 1.0, None), (tid(1), -1, te.FINISHED, 1.0, None),
                (tid(1), 0, te.FINISHED, float("nan"), None), (b"x", 0, te.FINISHED, 1.0, None),
                (tid(1), 0, te.RAN, 1.0, None), (tid(1), 0, te.RAN, 1.0, (JOB, "f", "x")),
                (tid(1), 0, te.FAILED, 1.0, ("a", 3)), (tid(1), 0, te.RUNNING, 1.0, JOB)]:
        assert "TaskEvents.events[0]" in validate.problem(m.TaskEvents((bad,), 0)), bad
    assert validate.problem(m.GetTaskEvents(1, (("state", "=", "FAILED"),), 10)) is None
    assert "filters" in validate.problem(m.GetTaskEvents(1, (("state", "<", "x"),)))
    assert "filters" in validate.problem(m.GetTaskEvents(1, (("state", "=", [1]),)))


BAD_EVENTS = [(tid(1), 0, "BOGUS", 1.0, None), (tid(1), -1, te.FINISHED, 1.0, (JOB, "f", 1.0)),
              (tid(1), 2**63, te.FINISHED, 1.0, (JOB, "f", 1.0)), (tid(1), True, te.RAN, 1.0, None),
              (tid(1), 0, te.FINISHED, float("inf"), (JOB, "f", 1.0)), (b"x" * 15, 0, te.RAN, 1.0, None),
              (tid(1), 0, te.FINISHED, 1.0, (JOB, "f", float("nan"))), (tid(1), 0, te.RAN, 1.0, (JOB, "f")),
              (tid(1), 0, te.FINISHED, 1.0, (JOB * 5, "f", 1.0)), (tid(1), 0, te.FINISHED, 1.0, (JOB, b"f", 1.0)),
              (tid(1), 0, te.PENDING_NODE, 1.0, (JOB, "f", b"short", None)), (tid(1), 0, te.PENDING_ARGS, 1.0, ("j", "f", None, None)),
              (tid(1), 0, te.PENDING_ACTOR, 1.0, (JOB, "f", tid(2), b"short")), (tid(1), 0, te.PENDING_NODE, 1.0, (JOB, "f", None)),
              (tid(1), 0, te.FAILED, 1.0, ("a",)), (tid(1), 0, te.RUNNING, 1.0, (JOB, "f", 1.0)),
              (tid(1), 0, [te.FINISHED], 1.0, None), [tid(1), 0, te.RAN, 1.0, None], (tid(1), 0, te.RAN, 1.0)]


@pytest.mark.parametrize("kind", ["owner", "worker", "mixed"])
def test_a_batch_is_checked_a_column_at_a_time_and_a_bad_event_anywhere_is_named(kind):
    """The column checks (validate_events._batch_ok) pass every good batch of the shapes processes
    send, and any one bad event makes the event-at-a-time check name it."""
    owner = [made(n, float(n), name=f"f{n % 3}", parent=tid(9) if n % 2 else None) for n in range(200)]
    worker = [(tid(n), 0, te.FINISHED if n % 5 else te.RAN, n + 2.0, (JOB, "f", n + 1.0))
              for n in range(200)]
    batch = {"owner": owner, "worker": worker,
             "mixed": owner[:100] + worker[:100] + [(tid(7), 0, te.RUNNING, 3.0, (JOB, "f")),
                                                    (tid(8), 0, te.FAILED, 4.0, ("E", "boom"))]}[kind]
    assert validate_events._batch_ok(tuple(batch)) and validate_events.task_events(tuple(batch)) is None
    for bad in BAD_EVENTS:
        events = tuple(batch[:150] + [bad] + batch[150:])
        assert not validate_events._batch_ok(events), bad
        assert validate_events.task_events(events).startswith("[150] must be a task event"), bad
    assert validate_events.task_events(()) is None


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="max_per_job"):
        TaskEventTable(0)
