"""A task whose run returned travels whole: the worker's reply carries its run's times (and,
once per connection, who ran it), its owner sends one row, the GCS's store makes it
FINISHED at once. Pure: the owner core, the store and the daemon's checks."""
import pickle

from raylite._core import task_events as te
from raylite.exceptions import RayTaskError
from raylite._core.task_events import TaskEventTable
from raylite._protocol import messages as m
from raylite._core.whole_tasks import WholeBatch, pack
from raylite._protocol import validate

from raylite._core.owner import DAEMON, LeaseRequest
from test_task_event_store import JOB, WHO, owner, push, task, tid


def cols(whole):
    """A packed batch of whole tasks as its columns, a value per task each (what pack took)."""
    b = WholeBatch(whole, None)
    keys, tasks = b.key_list(), [b.task(i) for i in range(b.n)]
    kind, state, created, start, end, who = zip(*tasks)
    return tuple(k[0] for k in keys), tuple(k[1] for k in keys), state, created, kind, end, \
        start, who


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
    ids, attempts, states, created, kinds, ends, starts, who = cols(whole)
    assert ids == (tid(1), tid(2)) and attempts == (0, 0) and ends == (600.0, 800.0)
    assert starts == (500.0, 700.0) and states == (te.PENDING_NODE,) * 2
    assert kinds[0] is kinds[1] == (JOB, "f", None, "", None) and who[0] is who[1] == WHO
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
    whole = pack((tid(1),), (0,), (te.PENDING_NODE,), (4.0,), ((JOB, "f", None, "", None),),
                 (6.0,), (5.0,), (WHO,))
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
    assert cols(whole)[0] == (tid(1),) and cols(whole)[7] == (WHO,) and o.events._who == {}
    run(o, 4, (700.0, 800.0))    # a connection whose who is not known: None
    _, _, whole = o.events.take()
    assert cols(whole)[0] == (tid(4),) and cols(whole)[7] == (None,)
    table = TaskEventTable()
    table.add_whole(whole, "me:1")
    assert [(r.worker_pid, r.state) for r in table.query()[0]] == [(None, "FINISHED")]


def test_the_daemon_checks_whole_columns_and_names_a_bad_one():
    columns = ((tid(1),), (0,), (te.PENDING_NODE,), (4.0,), ((JOB, "f", None, "", None),),
               (6.0,), (5.0,), (WHO,))
    good = pack(*columns)
    assert validate.problem(m.TaskEvents((), 0, whole=good)) is None
    assert validate.problem(m.TaskEvents((), 0, whole=good[:7] + ((None,),))) is None  # unknown
    bad = [good[:7], pack(*columns[:5], (float("nan"),), *columns[6:]),
           good[:2] + (("RUNNING",),) + good[3:],
           good[:7] + ((("ab", "cd", 1, "x"),),), good[:4] + ((None,),) + good[5:],
           (good[0][:15],) + good[1:],                          # an id of 15 bytes
           good[:3] + (good[3] + b"\0",) + good[4:],              # a time of 9 bytes
           good[:7] + ((WHO, WHO),),                             # two who for one task
           good[:4] + (((JOB, "f", None, None),),) + good[5:],      # a kind of four fields
           good[:4] + (((JOB, "f", b"short", "", None),),) + good[5:],  # an actor id too short
           good[:4] + (((JOB, "f", None, 3, None),),) + good[5:],   # a class name not a str
           (good[0] + tid(2),) + good[1:], good[:1] + ((-1,),) + good[2:],
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
    # the opening goes first, then the RUN (the reply's), then FAILED (the owner's word)
    assert [(e[1], e[2]) for e in events] == [(0, te.PENDING_NODE), (0, te.RUN), (0, te.FAILED)]
    assert cols(whole)[:2] + cols(whole)[5:6] == ((t.task_id,), (1,), (800.0,))  # ran whole
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
    assert cols(whole)[0] == (tid(1),) and cols(whole)[7] == (None,)
    assert [e[0] for e in events] == [tid(2)]
    assert validate.problem(m.TaskEvents(tuple(events), 0, whole=whole)) is None


# -- the owner's records packed as columns, and the store that keeps them ----------------
from raylite._core.owner.events import TaskEvents  # noqa: E402
from test_task_event_store import made  # noqa: E402


class _Task:
    __slots__ = ("task_id", "attempt", "name", "actor_id", "parent", "opened")

    def __init__(self, n: int, name: str = "f", actor=None, attempt: int = 0):
        self.task_id, self.attempt, self.name, self.actor_id = tid(n), attempt, name, actor
        self.parent, self.opened = False, None


def _noted(order, kinds=lambda n: ("f", None, ""), first_who=False):
    """A TaskEvents that opened the tasks numbered in `order` (smallest first) and heard
    their runs in that order."""
    clock = iter(float(i) for i in range(1, 1000))
    ev = TaskEvents(clock=lambda: next(clock), parent_of=lambda: None)
    ev.job_id = JOB
    tasks = {}
    for n in sorted(order):
        name, actor, cls = kinds(n)
        tasks[n] = _Task(n, name, actor)
        ev.new(tasks[n], te.PENDING_ACTOR if actor else te.PENDING_NODE, cls)
    for k, n in enumerate(order):
        r = (100.0 + n, 200.0 + n) + ((WHO,) if first_who and k == 0 else ())
        ev.finished(tasks[n], r, "w:1")
    return ev


def test_whole_records_are_packed_as_columns_whatever_order_their_runs_came_in():
    def kinds(n):  # a function and an actor's method, mixed
        return ("f", None, "") if n % 3 else ("m", tid(9), "A")
    for order, kind in [([1, 2, 3, 4], lambda n: ("f", None, "")), ([3, 1, 4, 2], kinds),
                        ([1, 2, 3, 4, 5, 6], kinds)]:
        ev = _noted(order, kind)
        ev._who["w:1"] = WHO  # who is on it: known
        events, lost, whole = ev.take()
        assert events == [] and lost == 0 and len(cols(whole)[0]) == len(order)
        ids, attempts, states, created, kinds_, ends, starts, whos = cols(whole)
        assert ids == tuple(tid(n) for n in order) and set(whos) == {WHO}
        assert ends == tuple(200.0 + n for n in order) and starts == tuple(100.0 + n for n in order)
        assert created == tuple(float(sorted(order).index(n) + 1) for n in order)
        assert [k[1:4] for k in kinds_] == [kind(n) for n in order]
        assert states == tuple(te.PENDING_ACTOR if kind(n)[1] else te.PENDING_NODE for n in order)
        assert len({id(k) for k in kinds_}) == len(set(kinds_))  # one tuple per kind
        assert validate.problem(m.TaskEvents((), 0, whole=whole)) is None
        assert ev.take() == ([], 0, ()) and not ev.waiting()


def test_runs_of_tasks_opened_earlier_and_openings_of_tasks_still_running_go_as_events():
    ev = _noted([1])
    ev._who["w:1"] = WHO
    t2 = _Task(2)
    ev.new(t2, te.PENDING_NODE)
    first = ev.take()  # task 2's opening goes as one: its run, below, as a DONE
    assert [e[0] for e in first[0]] == [tid(2)] and cols(first[2])[0] == (tid(1),)
    assert first[0][0][4] == (JOB, "f", None, None)
    t3, t4 = _Task(3), _Task(4)
    ev.new(t3, te.PENDING_NODE)
    ev.new(t4, te.PENDING_NODE)  # still running when the batch leaves
    for t in (t2, t3):
        ev.finished(t, (100.0 + int(t.task_id[0]), 200.0 + int(t.task_id[0])), "w:1")
    events, _, whole = ev.take()
    assert [(e[0], e[2]) for e in events] == [(tid(4), te.PENDING_NODE), (tid(2), te.DONE)]
    assert events[1] == (tid(2), 0, te.DONE, 202.0, (102.0, WHO))
    assert cols(whole)[0] == (tid(3),) and cols(whole)[5:] == ((203.0,), (103.0,), (WHO,))
    assert validate.problem(m.TaskEvents(tuple(events), 0, whole=whole)) is None


def test_an_event_of_a_task_whose_opening_is_unsent_goes_after_it():
    ev = _noted([1, 2], first_who=True)  # a first reply carries who ran it
    t3 = _Task(3)
    ev.new(t3, te.PENDING_ARGS)
    ev.add(tid(3), 0, te.PENDING_NODE)  # its arguments are ready
    ev.add(tid(1), 0, te.FAILED, ("X", "y"))  # an event of a whole task's: after it
    events, _, whole = ev.take()
    assert [(e[0], e[2]) for e in events] == [(tid(3), te.PENDING_ARGS), (tid(3), te.PENDING_NODE),
                                              (tid(1), te.FAILED)]
    assert cols(whole)[0] == (tid(1), tid(2)) and cols(whole)[7] == (WHO, WHO)
    ev.new(t3, te.PENDING_NODE)      # a retry: attempt 1, its opening unsent
    t3.attempt = 1
    ev.new(t3, te.PENDING_NODE)      # a second new attempt sends the first one's opening first
    ev.finished(t3, (5.0, 6.0), "w:1")
    ev.finished(t3, (7.0, 8.0), "w:1")  # the same run twice: a DONE the second time
    events, _, whole = ev.take()
    assert [(e[1], e[2]) for e in events] == [(0, te.PENDING_NODE), (1, te.DONE)]
    assert cols(whole)[:2] == ((tid(3),), (1,)) and cols(whole)[5] == (6.0,)


def test_the_buffers_are_bounded_and_what_did_not_fit_is_counted():
    ev = TaskEvents(clock=lambda: 1.0, limit=2)
    tasks = [_Task(n) for n in range(1, 5)]
    for t in tasks:
        ev.new(t, te.PENDING_NODE)
        ev.finished(t, (2.0, 3.0), "w:1")
    events, lost, whole = ev.take()
    assert lost == 2 and cols(whole)[0] == (tid(1), tid(2)) and events == []


def _stepped(parts_at, kinds=lambda n: ("f", None, ""), who=lambda n: "w:1"):
    """Tasks 1..6 opened and answered one at a time (task 6 still running at the end), the
    whole records packed early (take_part, part) after the tasks numbered in `parts_at`."""
    clock = iter(float(i) for i in range(1, 1000))
    ev = TaskEvents(clock=lambda: next(clock), parent_of=lambda: None)
    ev.job_id = JOB
    ev._who.update({"w:1": WHO, "w:2": WHO[:3] + ("w:2",)})
    for n in range(1, 7):
        name, actor, cls = kinds(n)
        t = _Task(n, name, actor)
        ev.new(t, te.PENDING_ACTOR if actor else te.PENDING_NODE, cls)
        if n < 6:
            ev.finished(t, (100.0 + n, 200.0 + n), who(n))
        if n in parts_at:
            ev.part(ev.take_part())
    return ev.take()


def test_whole_records_packed_early_go_with_the_batch_as_if_packed_at_once():
    mixed = (lambda n: ("f", None, "") if n % 2 else ("m", tid(9), "A"))
    for kinds, who in [(lambda n: ("f", None, ""), lambda n: "w:1"),
                       (mixed, lambda n: "w:1" if n < 3 else "w:2")]:
        want = _stepped((), kinds, who)
        for parts_at in [(2,), (1, 3, 4), (5,), (1, 2, 3, 4, 5)]:
            got = _stepped(parts_at, kinds, who)
            assert cols(got[2]) == cols(want[2]) and got[:2] == want[:2], parts_at
            assert len(got[2][4]) == len(want[2][4]) and len(got[2][7]) == len(want[2][7])
        events, _, whole = want
        assert [(e[0], e[2]) for e in events] == [(tid(6), te.PENDING_NODE if kinds(6)[1] is None
                                                   else te.PENDING_ACTOR)]  # still running
        assert cols(whole)[0] == tuple(map(tid, range(1, 6)))
        assert validate.problem(m.TaskEvents(tuple(events), 0, whole=whole)) is None


def test_records_out_of_order_are_packed_early_too():
    ev = _noted([3, 1])
    t2, t4 = _Task(2), _Task(4)
    for t in (t2, t4):
        ev.new(t, te.PENDING_NODE)  # opened after 1 and 3, before they were answered
    ev.part(ev.take_part())          # 3, 1: out of order
    assert ev.take_part() is None    # nothing new since
    ev.finished(t4, (1.0, 2.0), "w:1")
    ev.part(ev.take_part())
    ev.finished(_Task(5), (1.0, 2.0), "w:1")  # never opened: a DONE, no record
    events, _, whole = ev.take()
    assert cols(whole)[0] == (tid(3), tid(1), tid(4))
    assert [(e[0], e[2]) for e in events] == [(tid(2), te.PENDING_NODE), (tid(5), te.DONE)]
    assert ev.take_part() is None and ev.take() == ([], 0, ()) and not ev.waiting()


def test_whole_tasks_are_kept_as_columns_until_read():
    table = TaskEventTable()
    ev = _noted([1, 2, 3])
    ev._who["w:1"] = WHO
    _, _, whole = ev.take()
    table.add_whole(whole, "me:1")
    assert table.tasks == {} and table.jobs[JOB.hex()].count == 3  # kept as it came, counted
    [r] = table.query((("task_id", "=", tid(2).hex()),))[0]  # a lookup makes one row
    assert (r.state, r.worker_pid, r.end_time_ms, r.creation_time_ms) == ("FINISHED", 42,
                                                                          202000, 2000)
    assert [type(v) for v in table.tasks.values()] == [WholeBatch, list, WholeBatch]  # indexed
    rows, total = table.query()  # a walk over every record makes them all rows
    assert total == 3 and [r.task_id for r in rows] == [tid(n).hex() for n in (1, 2, 3)]
    assert {type(v) for v in table.tasks.values()} == {list}
    assert table.summary() == (("f", "NORMAL_TASK", "FINISHED", 3),)


def test_a_later_event_of_a_whole_task_lands_on_its_row():
    table = TaskEventTable()
    ev = _noted([1, 2], kinds=lambda n: ("m", tid(9), "A"))
    ev._who["w:1"] = WHO
    table.add_whole(ev.take()[2], "me:1")
    table.add([(tid(1), 0, te.RUNNING, 101.0, (JOB, "A.m"))], "w:1", "n" * 32, "w" * 32, 42)
    rows, total = table.query()
    assert total == 2 and {r.state for r in rows} == {"FINISHED"}
    assert {(r.type, r.actor_id, r.name) for r in rows} == {("ACTOR_TASK", tid(9).hex(), "A.m")}


def test_whole_tasks_are_pushed_out_oldest_first_and_counted():
    table = TaskEventTable(max_per_job=3)
    table.add([made(10, 0.5)], "o:1")  # pending: outlives every finished one
    for order in ([1, 2], [3, 4]):
        table.add_whole(_noted(order).take()[2], "me:1")
    rows, total = table.query()
    assert total == 3 and table.dropped() == 2
    assert [r.task_id for r in rows] == [tid(n).hex() for n in (10, 3, 4)]


def test_the_same_attempt_twice_in_one_batch_is_one_record():
    table = TaskEventTable()
    columns = ((tid(1), tid(1)), (0, 0), (te.PENDING_NODE,) * 2, (1.0, 1.0),
               ((JOB, "f", None, "", None),) * 2, (3.0, 3.0), (2.0, 2.0), (WHO, WHO))
    whole = pack(*columns)
    assert validate.problem(m.TaskEvents((), 0, whole=whole)) is None
    table.add_whole(whole, "me:1")
    rows, total = table.query()
    assert total == 1 and rows[0].state == "FINISHED" and table.statistics()["records"] == 1
    table.add_whole(pack(columns[0], (1, 1), *columns[2:]), "me:1")  # attempt 1, twice too
    assert table.query()[1] == 2 and table.max_attempt == 1


def test_a_batch_of_two_jobs_and_a_batch_pushed_out_before_it_was_read_are_counted_right():
    other = b"kkkk"
    kinds = ((JOB, "f", None, "", None), (other, "g", None, "", None))
    table = TaskEventTable(max_per_job=2)
    table.add_whole(pack((tid(1), tid(2)), (0,), (te.PENDING_NODE,), (1.0, 1.0), kinds,
                         (3.0, 3.0), (2.0, 2.0), (None,)), "me:1")  # indexed at once
    assert {r.job_id: r.name for r in table.query()[0]} == {JOB.hex(): "f", other.hex(): "g"}
    # a worker's RUNNING first, then its whole task in a batch that the bound pushes out
    table.add([(tid(5), 0, te.RUNNING, 1.5, (JOB, "f"))], "w:1", "n" * 32, "w" * 32, 42)
    for n in (5, 6, 7):
        table.add_whole(pack((tid(n),), (0,), (te.PENDING_NODE,), (1.0,), kinds[:1], (3.0,),
                             (2.0,), (None,)), "me:1")
    rows, total = table.query()
    assert sorted(r.task_id for r in rows) == sorted([tid(2).hex(), tid(6).hex(), tid(7).hex()])
    assert table.jobs[JOB.hex()].count == 2 and table.dropped() == 2
    assert table.statistics()["records"] == total == 3


def test_an_opening_noted_after_the_send_keeps_its_time_and_goes_before_the_tasks_events():
    """The shell notes a submitted task's opening once it has sent the task (later(), then
    settle()); whatever the core hears first, about that task or another, notes it first,
    with the time of the submission and the attempt it had then."""
    o = owner()
    t1 = task(1)
    out = o.tasks.submit(t1)                  # the clock reads 101: the opening waits
    assert o.events.late is not None and o.events.waiting()
    push(o, out)
    o.task_done("w:1", t1.task_id, (b"r",), None, False, now=1.0, ran=(500.0, 600.0, WHO))
    assert o.events.late is None              # the reply came before the shell noted it
    t2, t3 = task(2), task(3)
    o.tasks.submit(t2)                        # 102
    o.tasks.submit(t3)                        # 103: t2's opening is noted first
    o.events.settle()                         # the shell, having sent t3
    o.events.settle()                         # nothing left: nothing happens
    events, lost, whole = o.events.take()
    assert [(e[0], e[2], e[3]) for e in events] == [(tid(2), te.PENDING_NODE, 102.0),
                                                    (tid(3), te.PENDING_NODE, 103.0)]
    ids, attempts, _, created, _, ends, starts, _ = cols(whole)
    assert (ids, attempts, created, starts, ends) == ((tid(1),), (0,), (101.0,), (500.0,), (600.0,))

    o = owner()
    out = o.tasks.submit(task(4))
    req = next(x.req for target, x in out if target is DAEMON and type(x) is LeaseRequest)
    o.lease_refused(req, "no node has what it needs")   # before the shell noted it
    events, _, _ = o.events.take()
    assert [(e[0], e[1], e[2]) for e in events] == [(tid(4), 0, te.PENDING_NODE),
                                                    (tid(4), 0, te.FAILED)]

    o = owner()
    t5 = task(5, retries=1)
    push(o, o.tasks.submit(t5))
    o.peer_lost("w:1")                        # its worker died before the shell noted it
    events, _, _ = o.events.take()
    assert [(e[1], e[2]) for e in events] == [(0, te.PENDING_NODE), (1, te.PENDING_NODE),
                                              (0, te.FAILED)]   # the openings go first
