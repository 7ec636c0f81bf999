"""A task whose run returned travels whole: the worker's reply carries its run's times (and,
once per connection, who ran it), its owner sends one row, the GCS's store makes it
FINISHED at once. Pure: the owner core, the store and the daemon's checks."""
import pickle

from raylite._core import task_events as te
from raylite.exceptions import RayTaskError
from raylite._core.task_events import TaskEventTable
from raylite._protocol import messages as m
from raylite._protocol import validate

from test_task_event_store import JOB, WHO, owner, push, task, tid


def run(o, n: int, ran, conn: str = "w:1", first: bool = False):
    """Task n submitted, pushed (on a new lease the first time) and answered with `ran`."""
    t = task(n)
    out = o.tasks.submit(t)
    if first:
        push(o, out, conn)
    o.task_done(conn, t.task_id, (b"r",), None, False, now=float(n), ran=ran)
    return t


def test_a_task_that_finished_before_its_opening_was_sent_is_one_whole_row():
    o = owner()
    run(o, 1, (500.0, 600.0, WHO), first=True)  # the owner's clock reads 101, 102, ...
    run(o, 2, (700.0, 800.0))                   # the same connection: who is remembered
    events, lost, whole = o.events.take()
    assert events == [] and lost == 0
    ids, attempts, ends, infos, states, created, starts, who = whole
    assert ids == (tid(1), tid(2)) and attempts == (0, 0) and ends == (600.0, 800.0)
    assert starts == (500.0, 700.0) and states == (te.PENDING_NODE,) * 2
    assert infos[0] is infos[1] == (JOB, "f", None, None) and who[0] is who[1] == WHO
    assert validate.problem(m.TaskEvents((), 0, whole=whole)) is None

    table = TaskEventTable()
    table.add_whole(whole, "me:1")
    rows, total = table.query()
    assert total == 2 and [r.state for r in rows] == ["FINISHED"] * 2
    r = rows[0]
    assert (r.node_id, r.worker_id, r.worker_pid, r.worker_address) == WHO
    assert (r.start_time_ms, r.end_time_ms, r.owner_address) == (500000, 600000, "me:1")
    assert [s for s, _ in r.events] == [te.PENDING_NODE, te.RUNNING, te.FINISHED]
    assert table.statistics()["records"] == 2


def test_a_task_sent_as_pending_ends_with_a_done_event():
    o = owner()
    t = task(1)
    push(o, o.tasks.submit(t))
    opened, _, whole = o.events.take()         # the batch left while it ran
    assert [e[2] for e in opened] == [te.PENDING_NODE] and whole == ()
    o.task_done("w:1", t.task_id, (b"r",), None, False, now=1.0, ran=(5.0, 6.0, WHO))
    [done], _, whole = o.events.take()
    assert done == (t.task_id, 0, te.DONE, 6.0, (5.0, WHO)) and whole == ()
    table = TaskEventTable()
    table.add(opened, "me:1")
    table.add([done], "me:1")
    [r], _ = table.query()
    assert (r.state, r.worker_pid, r.start_time_ms, r.end_time_ms) == ("FINISHED", 42, 5000, 6000)
    table.add([(tid(9), 0, te.DONE, 6.0, (5.0, WHO))], "me:1")  # no such attempt: ignored
    assert table.statistics()["ignored"] == 1 and table.query()[1] == 1


def test_a_workers_running_event_first_then_the_whole_row_make_one_record():
    table = TaskEventTable()
    table.add([(tid(1), 0, te.RUNNING, 5.0, (JOB, "f"))], "w:1", "n" * 32, "w" * 32, 42)
    whole = ((tid(1),), (0,), (6.0,), ((JOB, "f", None, None),), (te.PENDING_NODE,), (4.0,),
             (5.0,), (WHO,))
    table.add_whole(whole, "me:1")
    [r], total = table.query()
    assert total == 1 and r.state == "FINISHED" and r.creation_time_ms == 4000
    assert (r.owner_address, r.end_time_ms, r.worker_pid) == ("me:1", 6000, 42)


def test_who_is_forgotten_with_its_connection_and_a_bad_reply_tells_nothing():
    o = owner()
    run(o, 1, (500.0, 600.0, WHO), first=True)
    o.peer_lost("w:1")           # forgotten after the next take: task 1's run keeps its worker
    run(o, 2, "not a tuple")     # a malformed reply: no end told, no error
    run(o, 3, (1.0,))
    events, _, whole = o.events.take()
    assert [e[0] for e in events] == [tid(2), tid(3)]  # their openings
    assert whole[0] == (tid(1),) and whole[7] == (WHO,) and o.events._who == {}
    run(o, 4, (700.0, 800.0))    # a connection whose who is not known: None
    _, _, whole = o.events.take()
    assert whole[0] == (tid(4),) and whole[7] == (None,)
    table = TaskEventTable()
    table.add_whole(whole, "me:1")
    assert [(r.worker_pid, r.state) for r in table.query()[0]] == [(None, "FINISHED")]


def test_the_daemon_checks_whole_columns_and_names_a_bad_one():
    good = ((tid(1),), (0,), (6.0,), ((JOB, "f", None, None),), (te.PENDING_NODE,), (4.0,),
            (5.0,), (WHO,))
    assert validate.problem(m.TaskEvents((), 0, whole=good)) is None
    assert validate.problem(m.TaskEvents((), 0, whole=good[:7] + ((None,),))) is None  # unknown
    bad = [good[:7], good[:2] + ((float("nan"),),) + good[3:], good[:4] + (("RUNNING",),) + good[5:],
           good[:7] + (("ab", "cd", 1, "x"),), good[:3] + ((None,),) + good[4:],
           (good[0] + (tid(2),),) + good[1:], good[:1] + ((-1,),) + good[2:],
           good[:7] + ((WHO[:2] + (0, "x"),),), "columns"]
    for whole in bad:
        why = validate.problem(m.TaskEvents((), 0, whole=whole))
        assert why and "whole" in why, whole
    assert pickle.loads(pickle.dumps(m.TaskEvents((), 0, whole=good))).whole == good


def test_a_run_that_raised_is_placed_and_timed_by_its_owner_then_failed_or_retried():
    o = owner()
    t = task(1, retries=1)
    push(o, o.tasks.submit(t))
    err = pickle.dumps(RayTaskError("f", "tb", ValueError("flaky")))
    o.task_done("w:1", t.task_id, (), err, True, now=0.0, ran=(500.0, 600.0, WHO))
    o.task_done("w:1", t.task_id, (b"r",), None, False, now=1.0, ran=(700.0, 800.0))
    events, _, whole = o.events.take()
    # the RUN goes last (its run, noted on the reply's path, is made an event in take())
    assert [(e[1], e[2]) for e in events] == [(0, te.PENDING_NODE), (0, te.FAILED), (0, te.RUN)]
    assert whole[:3] == ((t.task_id,), (1,), (800.0,))  # the retry ran whole
    table = TaskEventTable()
    table.add_whole(whole, "me:1")
    table.add(events, "me:1")
    rows = {r.attempt_number: r for r in table.query()[0]}
    assert (rows[0].state, rows[0].error_type, rows[0].worker_pid) == ("FAILED",
                                                                       "TASK_EXECUTION_EXCEPTION", 42)
    assert (rows[0].start_time_ms, rows[0].end_time_ms) == (500000, 600000)
    assert (rows[1].state, rows[1].worker_pid) == ("FINISHED", 42)
    assert validate.problem(m.TaskEvents(tuple(events), 0, whole=whole)) is None


def test_a_reply_whose_times_or_worker_are_not_a_workers_cannot_spoil_the_batch():
    o = owner()
    run(o, 1, (500.0, 600.0, ("not", "who")), first=True)  # who of the wrong shape: unknown
    run(o, 2, ("500", 600.0))                              # a start that is not a time: no end
    events, _, whole = o.events.take()
    assert whole[0] == (tid(1),) and whole[7] == (None,)
    assert [e[0] for e in events] == [tid(2)]
    assert validate.problem(m.TaskEvents(tuple(events), 0, whole=whole)) is None
