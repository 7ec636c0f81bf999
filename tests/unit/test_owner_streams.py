"""The owner core's streams: items as they come, the consumer's turns, the end, the error item,
holds and frees, backpressure counts, drops (dask worker-state-machine style: events in, state
and instructions out)."""
import pickle

from raylite._core.owner import END, ITEM, WAIT, WAKE, Owner, Task
from raylite._ids import stream_item_id
from raylite._protocol import messages as m
from raylite.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

ME = "me:1"
TID = b"\x01" * 16
DONE = b"\x02" * 16


def submitted(backpressure: int = -1, retries: int = 0, **owner_args) -> Owner:
    o = Owner(ME, sys_path=lambda: (), **owner_args)
    o.tasks.add_function(b"f", b"pickled f")
    o.streams.end_data = b"END"
    msg = m.PushTask(TID, b"f", None, b"a", {}, (DONE,), "gen", b"j", "ns", None, (), {"CPU": 1},
                     ME, 0)
    t = Task(TID, msg, (DONE,), "gen", retries, False, [], None, (("CPU", 1),))
    out = o.tasks.submit(t)
    req = out[0][1].req
    o.tasks.lease_granted(req, b"L", (), "w1", "w1", closing=False)
    assert o.streams.open(TID, DONE, backpressure) == []
    return o


def item(i: int) -> bytes:
    return stream_item_id(TID, i)


def take(o: Owner) -> bytes:
    kind, id = o.streams.next(TID)
    assert kind == ITEM
    o.objects.ref_created(id, ME)  # the consumer's ObjectRef
    o.streams.taken(TID)
    return id


def test_items_come_in_order_and_are_handed_out_then_the_end():
    o = submitted()
    o.streams.item(TID, 0, b"v0")
    o.streams.item(TID, 1, b"v1")
    assert take(o) == item(0) and o.objects.entries[item(0)].data == b"v0"
    assert take(o) == item(1)
    kind, probe = o.streams.next(TID)
    assert kind == WAIT and probe == item(2)
    w = o.objects.wait([o.objects.entries[probe]], 1, "wake")
    out = o.task_done("w1", TID, (b"None",), None, False, now=1.0)
    assert (WAKE, "wake") in out                      # the waiter on the next item woke
    assert o.streams.next(TID)[0] == END              # ... and finds the end
    assert o.objects.entries[DONE].data == b"None"    # completed() resolves
    assert w.n == 0 and o.streams.finished(TID)


def test_a_waiter_for_the_next_item_wakes_when_it_arrives():
    o = submitted()
    kind, id = o.streams.next(TID)
    assert kind == WAIT
    o.objects.wait([o.objects.entries[id]], 1, "wake")
    assert o.streams.item(TID, 0, b"v0") == [(WAKE, "wake")]
    assert o.streams.next(TID) == (ITEM, id)


def test_an_error_mid_stream_is_one_more_item_after_the_values():
    o = submitted()
    o.streams.item(TID, 0, b"v0")
    o.task_done("w1", TID, (), b"boom", True, now=1.0)
    assert take(o) == item(0)
    err = take(o)
    assert err == item(1) and o.objects.entries[err].error == b"boom"
    assert o.streams.next(TID)[0] == END
    assert o.objects.entries[DONE].error == b"boom" and o.streams.finished(TID)


def test_what_the_body_raised_is_the_last_item_and_completed_resolves_to_none():
    """Ray's rule: the completion object holds an error only when the task failed outside its
    body (the failures above and below); the body's own exception is the last item's."""
    o = submitted(encode_error=pickle.dumps, decode_error=pickle.loads)
    o.streams.item(TID, 0, b"v0")
    boom = pickle.dumps(RayTaskError("gen", "traceback", ValueError("boom")))
    o.task_done("w1", TID, (), boom, True, now=1.0)
    assert take(o) == item(0)
    err = take(o)
    assert err == item(1) and o.objects.entries[err].error == boom
    assert o.streams.next(TID)[0] == END and o.streams.finished(TID)
    done = o.objects.entries[DONE]
    assert done.ready and done.error is None and done.data == b"END"


def test_the_error_reaches_a_consumer_already_waiting():
    o = submitted()
    kind, id = o.streams.next(TID)
    o.objects.wait([o.objects.entries[id]], 1, "wake")
    out = o.task_done("w1", TID, (), b"boom", True, now=1.0)
    assert (WAKE, "wake") in out and o.objects.entries[id].error == b"boom"
    assert o.streams.next(TID) == (ITEM, id)


def test_a_crashed_worker_ends_the_stream_with_the_crash_and_earlier_items_stay():
    o = submitted()
    o.streams.item(TID, 0, b"v0")
    out, crashed = o.peer_lost("w1")
    o.fail_crashed(crashed, "killed by SIGKILL")
    first = take(o)
    assert o.objects.entries[first].data == b"v0"
    err = o.objects.entries[take(o)].error
    assert isinstance(err, WorkerCrashedError) and "SIGKILL" in str(err)
    assert o.streams.next(TID)[0] == END


def test_a_retried_task_sends_items_again_and_they_dedupe_by_index():
    o = submitted(retries=1)
    o.streams.item(TID, 0, b"v0")
    o.peer_lost("w1")                                  # retried: the task is queued again
    assert o.streams.next(TID)[0] == ITEM
    o.streams.item(TID, 0, b"again")                   # the retry's first item: a repeat
    o.streams.item(TID, 1, b"v1")
    assert o.objects.entries[item(0)].data == b"v0"
    assert take(o) == item(0) and take(o) == item(1)


def test_cancel_of_a_queued_stream_ends_it_with_task_cancelled():
    o = Owner(ME)
    o.streams.end_data = b"END"
    msg = m.PushTask(TID, b"f", None, b"a", {}, (DONE,), "gen", b"j", "ns", None, (), {}, ME, 0)
    o.tasks.submit(Task(TID, msg, (DONE,), "gen", 0, False, [], None, ()))
    o.streams.open(TID, DONE)
    o.cancel(DONE, False)
    err = o.objects.entries[take(o)].error
    assert isinstance(err, TaskCancelledError)


def test_holds_keep_unconsumed_items_and_the_consumer_owns_what_it_took():
    o = submitted()
    for i in range(3):
        o.streams.item(TID, i, b"v")
    took = take(o)
    assert o.objects.counts[took] == 1                 # the consumer's ref only
    assert o.objects.counts[item(1)] == 1              # the stream's hold
    o.objects.ref_deleted(took)                        # the consumer drops its ref: freed
    assert took not in o.objects.entries
    o.streams.drop(TID)                                # the generator goes: the rest freed
    assert item(1) not in o.objects.entries and item(2) not in o.objects.entries
    o.streams.item(TID, 3, b"late")                    # later items are not kept
    assert item(3) not in o.objects.entries


def test_a_late_item_in_shared_memory_is_freed_when_nobody_consumes():
    class Loc:  # a location record, as the shell's ShmObject
        object_id = stream_item_id(TID, 0)
    o = submitted()
    o.streams.drop(TID)
    o.streams.item(TID, 0, Loc())
    frees, _ = o.objects.take_frees()
    assert [f[0] for f in frees] == [item(0)]


def test_backpressure_counts_are_reported_while_the_task_runs():
    o = submitted(backpressure=2)
    o.streams.item(TID, 0, b"v")
    o.streams.item(TID, 1, b"v")
    kind, id = o.streams.next(TID)
    o.objects.ref_created(id, ME)
    assert o.streams.taken(TID) == 1
    assert o.streams.running_on(TID) == "w1"
    assert o.streams.drop(TID) is True                 # running: the worker must stop waiting
    nobp = submitted()
    nobp.streams.item(TID, 0, b"v")
    nobp.streams.next(TID)
    assert nobp.streams.taken(TID) is None and nobp.streams.drop(TID) is False


def test_a_stream_whose_task_failed_at_submission_ends_at_once():
    o = Owner(ME)
    o.streams.end_data = b"END"
    o.objects.expect(DONE)
    o.complete(DONE, None, b"actor dead")
    o.streams.open(TID, DONE)
    assert o.objects.entries[take(o)].error == b"actor dead"
    assert o.streams.next(TID)[0] == END


def test_partial_results_of_a_fixed_count_generator_stay_readable():
    o = Owner(ME)
    ids = (b"r0", b"r1", b"r2")
    msg = m.PushTask(TID, b"f", None, b"a", {}, ids, "gen", b"j", "ns", None, (), {}, ME, 0)
    o.tasks.add_function(b"f", b"pickled")
    out = o.tasks.submit(Task(TID, msg, ids, "gen", 0, False, [], None, ()))
    o.tasks.lease_granted(out[0][1].req, b"L", (), "w1", "w1", closing=False)
    o.task_done("w1", TID, (b"v0",), b"boom", True, now=1.0)
    e = o.objects.entries
    assert (e[b"r0"].data, e[b"r0"].error) == (b"v0", None)
    assert e[b"r1"].error == b"boom" and e[b"r2"].error == b"boom"


def test_an_item_before_the_stream_opens_is_not_kept_so_shells_open_before_pushing():
    o = Owner(ME)
    o.objects.expect(DONE)
    o.streams.item(TID, 0, b"v0")  # the stream is not open: nobody consumes it
    assert item(0) not in o.objects.entries


def test_a_retried_stream_with_backpressure_tells_its_new_worker_what_was_consumed():
    o = submitted(backpressure=1, retries=1)
    o.streams.item(TID, 0, b"v0")
    take(o)
    o.peer_lost("w1")
    o.streams.item(TID, 0, b"v0 again")  # the retry's first item
    assert o.streams.acks == [(TID, 1)]
