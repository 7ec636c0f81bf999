"""A task pushed with its opening (PushTask.opened) is told whole by its worker when its run
returns: its owner sends nothing for it unless it has not ended by the owner's next batch,
failed or is retried. Pure: the owner core, whole_runs.by_owner, the daemon's checks and the
store; and the worker: its replies and runs kept (run_task), its loop's send once idle."""
import os
import pickle
import threading
import time

from raylite._core import task_events as te
from raylite._core.task_events import TaskEventTable
from raylite._core.whole_runs import by_owner
from raylite._protocol import messages as m
from raylite._protocol import validate
from raylite._protocol.rpc import Endpoint
from raylite._worker.task_executor import Executor

from test_task_event_store import JOB, WHO, owner, push, task, tid
from test_whole_task_events import cols


def opened(n: int, at: float, retries: int = 0, parent=None):
    t = task(n, retries)
    t.msg = t.msg._replace(opened=(at, parent))
    t.parent = parent
    return t


def run(n: int, start: float, owner: str = "me:1", name: str = "f", parent=None,
        attempt: int = 0) -> tuple:
    """A run as the worker keeps it (task_executor.py: run_task)."""
    return (tid(n), attempt, start - 1, parent, start, start + 0.5, JOB, name, owner)


def test_a_task_that_returned_is_its_workers_to_tell_and_its_owner_sends_nothing():
    o = owner()
    t = opened(1, 50.0)
    msg = push(o, o.tasks.submit(t))
    assert msg.opened == (50.0, None) and msg.task_events
    o.task_done("w:1", t.task_id, (b"r",), None, False, now=0.0)  # no run times in the reply
    assert o.events.take() == ([], 0, ())


def test_its_opening_goes_while_it_has_not_ended_and_with_its_failure():
    o = owner()
    waiting, failing = opened(1, 50.0), opened(2, 51.0)
    push(o, o.tasks.submit(waiting))
    o.tasks.submit(failing)
    o.task_done("w:1", waiting.task_id, (b"r",), None, False, now=0.0)  # the lease: free
    o.tasks.submit(waiting2 := opened(3, 52.0))
    events, _, whole = o.events.take()
    assert whole == ()
    # 1 returned (its worker tells it); 2 and 3 have not ended: their openings, their times
    info = (JOB, "f", None, None)
    assert events == [(tid(2), 0, te.PENDING_NODE, 51.0, info),
                      (tid(3), 0, te.PENDING_NODE, 52.0, info)]
    o.task_done("w:1", failing.task_id, (), b"boom", False, now=1.0, ran=(60.0, 61.0, WHO))
    o.tasks.submit(opened(4, 53.0))
    o.task_done("w:1", tid(4), (), b"x", False, now=2.0, ran=(62.0, 63.0))
    events, _, _ = o.events.take()
    # 4 failed in this batch: its opening first, then how it ran and failed (2's opening went)
    assert [(e[0], e[2]) for e in events] == [
        (tid(4), te.PENDING_NODE), (tid(2), te.RUN), (tid(2), te.FAILED), (tid(4), te.RUN),
        (tid(4), te.FAILED)]
    assert waiting2.task_id in o.tasks.tasks  # 3 still waits for a lease: nothing more of it


def test_a_retry_is_its_owners_to_tell():
    o = owner()
    t = opened(1, 50.0, retries=1)
    push(o, o.tasks.submit(t))
    out, _ = o.peer_lost("w:1")   # its worker died: retried, attempt 1
    msg = push(o, out, "w:2")
    assert msg.attempt == 1 and msg.opened is None
    events, _, _ = o.events.take()
    assert [(e[0], e[1], e[2]) for e in events] == [  # the owner's openings first
        (tid(1), 1, te.PENDING_NODE), (tid(1), 0, te.PENDING_NODE), (tid(1), 0, te.FAILED)]


def test_runs_are_packed_by_owner_and_a_bad_one_is_counted_not_sent():
    runs = [run(1, 10.0), run(2, 11.0, "them:2", parent=tid(9)), run(3, 12.0, name="g"),
            (tid(4), 0, "soon", None, 13.0, 14.0, JOB, "f", "me:1"),   # an opening's time
            (tid(5), 0, 15.0, b"short", 15.0, 16.0, JOB, "f", "me:1")]  # a parent's id
    batches, lost = by_owner(runs, WHO)
    assert lost == 2 and [owner for owner, _ in batches] == ["me:1", "them:2"]
    assert validate.problem(m.TaskEvents((), lost, runs=batches)) is None
    ids, attempts, states, created, kinds, ends, starts, who = cols(batches[0][1])
    assert ids == (tid(1), tid(3)) and created == (9.0, 11.0) and starts == (10.0, 12.0)
    assert ends == (10.5, 12.5) and who == (WHO, WHO) and states == (te.PENDING_NODE,) * 2
    assert kinds == ((JOB, "f", None, "", None), (JOB, "g", None, "", None))
    assert cols(batches[1][1])[4] == ((JOB, "f", None, "", tid(9)),)
    assert by_owner([], WHO) == ((), 0)


def test_the_daemon_names_a_bad_runs_field():
    [(owner, whole)] = by_owner([run(1, 10.0)], WHO)[0]
    for bad in ((("me:1",),), (("no port", whole),), (("me:1", ()),), (("me:1", whole[:7]),),
                [(owner, whole)]):
        why = validate.problem(m.TaskEvents((), 0, runs=bad))
        assert why is not None and why.startswith("TaskEvents.runs"), why


def test_the_store_keeps_a_workers_runs_under_their_owner_with_the_owners_word_in_any_order():
    [(owner, whole)] = by_owner([run(1, 10.0), run(2, 20.0)], WHO)[0]
    table = TaskEventTable()
    table.add([(tid(2), 0, te.PENDING_NODE, 19.0, (JOB, "f", None, None))], "me:1")  # pending
    table.add_whole(whole, owner)
    table.add([(tid(1), 0, te.PENDING_NODE, 9.0, (JOB, "f", None, None))], "me:1")   # late
    rows, total = table.query()
    assert total == 2 and [r.state for r in rows] == ["FINISHED"] * 2
    for r, start in zip(sorted(rows, key=lambda r: r.task_id), (10.0, 20.0)):
        assert (r.owner_address, r.worker_pid, r.creation_time_ms) == ("me:1", 42, (start - 1) * 1000)
        assert (r.start_time_ms, r.end_time_ms) == (start * 1000, (start + 0.5) * 1000)


class _Runtime:
    """What the worker loop touches when it goes idle with runs to send."""

    def __init__(self, ex_box):
        self.endpoint = Endpoint()
        self.box = ex_box
        self.sent = []

    def send_task_events(self):
        self.sent.append(self.box[0].take_runs())


def test_the_worker_loop_sends_its_runs_once_idle_and_not_before():
    box = []
    rt = _Runtime(box)
    ex = Executor(rt)
    box.append(ex)
    ex.ident = WHO
    loop = threading.Thread(target=ex.run_forever)
    loop.start()
    try:
        ex.runs.append(run(1, 10.0))
        os.write(ex._wake_w, b"x")  # the loop looks again: idle, with a run to send
        deadline = time.monotonic() + 5
        while not rt.sent and time.monotonic() < deadline:
            time.sleep(0.001)
        [(batches, lost)] = rt.sent
        assert lost == 0 and [o for o, _ in batches] == ["me:1"] and not ex.runs
        time.sleep(0.05)
        assert len(rt.sent) == 1  # nothing more to send: the loop sleeps
    finally:
        ex.stop()
        loop.join(10)


class _Conn:
    told = True
    answered = 0.0

    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


class _TaskRuntime(_Runtime):
    """What run_task touches: the job, arguments, results and the reply."""

    def set_job(self, job_id, namespace):
        pass

    def add_inlined(self, inlined):
        pass

    def decode_blob(self, blob):
        return pickle.loads(blob)

    def encode(self, value, rid, owner):
        return pickle.dumps(value), []

    def pin(self, refs):
        pass

    def task_ended(self):
        pass


def test_a_run_pushed_with_its_opening_replies_without_times_and_is_kept_whole():
    import cloudpickle

    box = []
    ex = Executor(_TaskRuntime(box))
    box.append(ex)
    ex.ident = WHO

    def push(n, fn, opened):
        return m.PushTask(tid(n), b"f" * 16 if fn is ok else b"g" * 16, cloudpickle.dumps(fn),
                          pickle.dumps(((), {})), {}, (tid(n)[:15] + b"r",), fn.__name__, JOB,
                          "ns", None, (), {}, "me:1", task_events=True, opened=opened)

    def ok():
        return 1

    def boom():
        raise ValueError("boom")

    conn = _Conn()
    ex.run_task(conn, push(1, ok, (5.0, tid(9))))
    ex.run_task(conn, push(2, boom, (6.0, None)))   # raised: its owner tells it
    ex.run_task(conn, push(3, ok, None))             # no opening: its owner tells it
    done, failed, plain = conn.sent
    assert done.error is None and done.ran is None
    assert failed.error is not None and len(failed.ran) == 2 and plain.ran is not None
    [(owner, whole)], lost = ex.take_runs()
    ids, attempts, states, created, kinds, ends, starts, who = cols(whole)
    assert (owner, lost, ids, created, kinds, who) == \
        ("me:1", 0, (tid(1),), (5.0,), ((JOB, "ok", None, "", tid(9)),), (WHO,))
    assert starts[0] <= ends[0] and ex.take_runs() == ((), 0)
