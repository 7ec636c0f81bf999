"""The owner core's kept lineage (_core/owner/lineage_book.py) and the newer rules of
lineage.py: tasks whose large arguments went by value to shared memory are rebuilt too,
lineage is bounded and let go with its outputs, actor calls' outputs are rebuilt only with
max_task_retries, a task that could not read a lost argument is retried (a system
failure), and an actor call that could not goes again (spending no retry). Events in,
instructions out: no processes."""
import pickle

from raylite._core.owner import ActorLookup, LeaseRequest, Owner, Task
from raylite._core.owner.lineage_book import SPEC_BYTES
from raylite._object_store.shm import ShmObject
from raylite._protocol import messages as m
from raylite.exceptions import ObjectLostError, ObjectReconstructionFailedError, RayTaskError

ME, A = "me:1", b"actor-1"
BLOB = ShmObject(b"blob" * 4, 5_000_000, "H", "H:1")  # a large argument, in our node's memory


def owner(max_bytes: int = 1 << 30) -> Owner:
    o = Owner(ME, sys_path=lambda: (), encode_error=pickle.dumps, decode_error=pickle.loads,
              max_lineage_bytes=max_bytes)
    o.tasks.add_function(b"f", b"pickled f")
    return o


def task(n: int, retries: int, args=b"args", inlined=None) -> Task:
    tid = bytes([n]) * 4
    msg = m.PushTask(tid, b"f", None, args, inlined or {}, (tid + b"r",), "f", b"j", "ns",
                     None, (), {"CPU": 1}, ME, 0)
    return Task(tid, msg, msg.return_ids, "f", retries, False, [], None, (("CPU", 1),))


def at(rid: bytes, node: str) -> ShmObject:
    return ShmObject(rid, 200_000, node, f"{node}:1")


def push(o: Owner, t: Task, worker: str = "w") -> m.PushTask:
    req = next(r for r, (k, _) in o.tasks.lease_reqs.items() if t in k.queue)
    [(conn, msg)] = o.tasks.lease_granted(req, b"L" + t.task_id, (), worker, worker, False)
    assert msg.task_id == t.task_id
    return msg


def run(o: Owner, t: Task, node: str, worker: str = "w") -> list:
    if t.conn is None:
        push(o, t, worker)
    out = o.task_done(t.conn, t.task_id, (at(t.return_ids[0], node),), None, False, 1.0)
    o.tasks.return_idle(now=100.0, older_than=0.0)
    return out


def entry(o: Owner, t: Task):
    return o.objects.entries[t.return_ids[0]]


def freed(o: Owner) -> list:
    return [f[0] for f in o.objects.take_frees()[0]]


def error(o: Owner, t: Task):
    return pickle.loads(entry(o, t).error)


def made(o: Owner, t: Task, node: str = "B") -> Task:
    o.tasks.submit(t)
    o.objects.ref_created(t.return_ids[0], ME)  # the caller's ref
    run(o, t, node)
    return t


# -- large arguments passed by value ------------------------------------------------
def test_a_task_with_a_by_value_blob_keeps_it_and_is_rebuilt_with_it():
    o = owner()
    t = made(o, task(1, retries=2, args=BLOB))
    assert entry(o, t).lineage is t and BLOB.object_id not in freed(o)  # kept, not freed
    assert o.lineage.book.statistics() == (1, BLOB.size + SPEC_BYTES, 0)
    out, changed = o.lineage.lost(frozenset({"B"}))
    assert changed and [type(x) for _, x in out] == [LeaseRequest]
    assert push(o, t, "w2").args == BLOB                  # the same blob, read again
    run(o, t, "A", "w2")
    assert entry(o, t).data.node == "A" and BLOB.object_id not in freed(o)
    o.objects.ref_deleted(t.return_ids[0])                # the output's last ref goes
    assert BLOB.object_id in freed(o) and o.lineage.book.statistics()[:2] == (0, 0)


def test_lineage_is_let_go_when_its_outputs_are_freed():
    o = owner()
    t = made(o, task(1, retries=3, args=BLOB))
    t.hold = ["arg refs"]
    o.objects.ref_deleted(t.return_ids[0])
    assert set(freed(o)) == {t.return_ids[0], BLOB.object_id} and t.hold is None
    assert o.lineage.book.kept == {} and o.lineage.book.bytes == 0


def test_an_output_on_our_own_node_keeps_no_lineage():
    """That node's death is ours too: nothing to rebuild it for (one node keeps none)."""
    o = owner()
    o.tasks.node = "H"
    t = made(o, task(1, retries=3, args=BLOB), node="H")
    assert entry(o, t).lineage is None and BLOB.object_id in freed(o)
    elsewhere = made(o, task(2, retries=3, args=BLOB._replace(object_id=b"blob2" * 4)), node="B")
    assert entry(o, elsewhere).lineage is elsewhere and freed(o) == []


def test_without_retries_the_blob_is_freed_when_the_task_ends():
    o = owner()
    t = made(o, task(1, retries=0, args=BLOB))
    assert entry(o, t).lineage is None and BLOB.object_id in freed(o)


def test_lineage_over_max_lineage_bytes_evicts_the_oldest():
    big = ShmObject(b"big1" * 4, 600, "H", "H:1")
    o = owner(max_bytes=2 * (600 + SPEC_BYTES))
    old = made(o, task(1, retries=1, args=big))
    mid = made(o, task(2, retries=1, args=big._replace(object_id=b"big2" * 4)))
    assert freed(o) == []
    new = made(o, task(3, retries=1, args=big._replace(object_id=b"big3" * 4)))  # one too many
    assert freed(o) == [b"big1" * 4] and o.lineage.book.statistics() == (2, 1600, 1)
    out, _ = o.lineage.lost(frozenset({"B"}))
    err = error(o, old)
    assert type(err) is ObjectReconstructionFailedError and "evicted" in str(err)
    assert "RAYLITE_MAX_LINEAGE_BYTES" in str(err)
    assert not entry(o, mid).ready and not entry(o, new).ready   # these run again
    assert len([x for _, x in out if type(x) is LeaseRequest]) == 2


def test_a_rebuild_that_spends_the_last_retry_lets_the_lineage_go():
    o = owner()
    t = made(o, task(1, retries=1, args=BLOB))
    o.lineage.lost(frozenset({"B"}))
    run(o, t, "A", "w2")                                   # retries now 0
    assert BLOB.object_id in freed(o) and o.lineage.book.kept == {}
    o.lineage.lost(frozenset({"B", "A"}))
    err = error(o, t)
    assert type(err) is ObjectReconstructionFailedError and "retries are spent" in str(err)


# -- actor calls ------------------------------------------------------------------------
def call(n: int) -> Task:
    tid = bytes([n]) * 4
    msg = m.PushActorTask(tid, A, f"m{n}", b"args", {}, (tid + b"r",), ME, None)
    return Task(tid, msg, msg.return_ids, f"m{n}", None, False, [], A)


def actor_made(o: Owner, retries: int) -> Task:
    """An actor call whose output lives on B, where the actor ran."""
    o.actors.created(A, retries, -1, False, "Counter")
    c = call(1)
    out = o.actors.submit(c, None)
    [ask] = [x for _, x in out if type(x) is ActorLookup]
    o.actors.resolved(ask.req, "ALIVE", "w1", None, retries, "w1")
    o.actors.actors[A].outbox.clear()
    o.task_done("w1", c.task_id, (at(c.return_ids[0], "B"),), None, False, 1.0)
    return c


def test_an_actor_calls_output_is_rebuilt_when_the_method_has_task_retries():
    o = owner()
    c = actor_made(o, retries=1)
    assert entry(o, c).lineage is c
    out, changed = o.lineage.lost(frozenset({"B"}))
    assert changed and not entry(o, c).ready and c.retries == 0 and c.attempt == 1
    o.peer_lost("w1", "B died")                             # the actor's worker went with B
    [ask] = [x for _, x in out if type(x) is ActorLookup]
    o.actors.resolved(ask.req, "ALIVE", "w2", None, 1, "w2")  # restarted elsewhere
    assert [(conn, msg.method) for conn, msg in o.actors.actors[A].outbox] == [("w2", "m1")]
    o.task_done("w2", c.task_id, (at(c.return_ids[0], "C"),), None, False, 2.0)
    assert entry(o, c).ready and entry(o, c).data.node == "C"


def test_an_actor_call_rebuilt_for_a_dead_actor_fails_precisely():
    o = owner()
    c = actor_made(o, retries=1)
    out, _ = o.lineage.lost(frozenset({"B"}))
    [ask] = [x for _, x in out if type(x) is ActorLookup]
    death = pickle.dumps(ObjectLostError("x", "stand-in"))  # any death the daemon reports
    o.actors.resolved(ask.req, "DEAD", None, death, 1, None)
    err = error(o, c)
    assert type(err) is ObjectReconstructionFailedError and "cannot restart" in str(err)
    assert "m1" in str(err)


def test_an_actor_calls_output_without_task_retries_is_not_rebuilt():
    o = owner()
    c = actor_made(o, retries=0)
    out, changed = o.lineage.lost(frozenset({"B"}))
    assert changed and out == []
    err = error(o, c)
    assert type(err) is ObjectReconstructionFailedError and "max_task_retries" in str(err)


# -- a task that could not read a lost argument ---------------------------------------
def read_failed(o: Owner, t: Task, x: bytes) -> list:
    """The worker running t says: reading argument x failed (its node is gone)."""
    lost = ObjectLostError(x.hex(), f"Object {x.hex()} lives on node B and could not be copied")
    err = pickle.dumps(RayTaskError("f", "traceback", lost))
    return o.task_done(t.conn, t.task_id, (), err, True, 5.0)


def consumer(o: Owner, x: Task, retries: int) -> Task:
    """g(x) with x (on B) sent along, pushed to a worker."""
    xid = x.return_ids[0]
    g = task(2, retries, inlined={xid: (entry(o, x).data, None)})
    o.tasks.submit(g)
    push(o, g, "w3")
    return g


def test_a_task_that_lost_its_argument_after_node_died_waits_for_the_rebuild():
    o = owner()
    x = made(o, task(1, retries=1))
    g = consumer(o, x, retries=1)
    o.lineage.lost(frozenset({"B"}))                       # NodeDied first: x rebuilds
    out = read_failed(o, g, x.return_ids[0])               # no retry_exceptions needed
    assert [msg.task_id for _, msg in out] == [x.task_id]  # g's worker runs x now
    assert g.deps == 1 and g.retries == 0 and g.attempt == 1 and not entry(o, g).ready
    run(o, x, "A", "w4")                                    # x is back: g goes, with it
    assert g.msg.inlined[x.return_ids[0]][0].node == "A" and g.deps == 0


def test_the_retry_that_waits_for_the_rebuild_opens_its_attempt_in_the_events():
    o = owner()
    x = made(o, task(1, retries=1))
    g = consumer(o, x, retries=1)
    g.events = True
    o.events.swap()
    o.lineage.lost(frozenset({"B"}))
    read_failed(o, g, x.return_ids[0])
    assert g.deps == 1
    opened = [e[:3] for e in o.events.take()[0] if e[0] == g.task_id]
    # a batch's openings go first: attempt 1's, then attempt 0's end
    assert opened == [(g.task_id, 1, "PENDING_ARGS_AVAIL"), (g.task_id, 0, "FAILED")]


def test_a_task_that_lost_its_argument_before_node_died_is_parked_until_then():
    o = owner()
    x = made(o, task(1, retries=1))
    g = consumer(o, x, retries=2)
    assert read_failed(o, g, x.return_ids[0]) == []
    assert g.task_id in o.lineage.parked and g.retries == 1
    out, changed = o.lineage.lost(frozenset({"B"}))        # now we hear: x rebuilds, g waits
    assert changed and g.task_id not in o.lineage.parked and g.deps == 1
    assert [msg.task_id for _, msg in out] == [x.task_id]  # only x runs (on g's idle lease)
    run(o, x, "A", "w4")
    assert g.deps == 0 and g.msg.inlined[x.return_ids[0]][0].node == "A"


def test_a_task_that_lost_a_borrowed_argument_asks_its_owner_after_node_died():
    """x is another owner's, on B: once B is dead g runs again without x's old place, so
    its worker asks x's owner (who rebuilds it)."""
    o = owner()
    xid = b"x-of-another-own"
    assert o.objects.ref_created(xid, "owner:2") == "owner:2"
    o.complete(xid, at(xid, "B"), None, owned=False)          # its owner said: on B
    g = task(2, retries=1, inlined={xid: (at(xid, "B"), None)})
    o.tasks.submit(g)
    push(o, g, "w3")
    assert read_failed(o, g, xid) == [] and g.task_id in o.lineage.parked
    out, changed = o.lineage.lost(frozenset({"B"}))
    assert changed and not o.lineage.parked and xid not in g.msg.inlined
    assert [msg.task_id for _, msg in out] == [g.task_id]    # on its idle lease, x left out


def test_a_parked_task_fails_with_its_read_error_when_no_node_death_comes():
    o = owner()
    x = made(o, task(1, retries=1))
    g = consumer(o, x, retries=2)
    read_failed(o, g, x.return_ids[0])
    assert o.lineage.expire(now=6.0, after=10.0) == [] and g.task_id in o.lineage.parked
    o.lineage.expire(now=16.0, after=10.0)
    err = error(o, g)
    assert isinstance(err, RayTaskError) and isinstance(err.cause, ObjectLostError)
    assert g.task_id not in o.tasks.tasks and not o.lineage.parked


def test_a_lost_argument_without_retries_fails_the_task_as_before():
    o = owner()
    x = made(o, task(1, retries=1))
    g = consumer(o, x, retries=0)
    o.lineage.lost(frozenset({"B"}))
    read_failed(o, g, x.return_ids[0])
    assert isinstance(error(o, g).cause, ObjectLostError) and not o.lineage.parked


def test_other_errors_and_other_objects_are_not_argument_losses():
    o = owner()
    x = made(o, task(1, retries=1))
    g = consumer(o, x, retries=2)
    read_failed(o, g, b"other-object-id!")                  # not one of g's arguments
    assert isinstance(error(o, g).cause, ObjectLostError) and g.retries == 2


def test_an_inline_argument_cannot_be_lost_with_a_node():
    o = owner()
    x = task(1, retries=1)
    o.tasks.submit(x)
    push(o, x)
    o.task_done(x.conn, x.task_id, (b"small value",), None, False, 1.0)  # inline, no node
    g = task(2, retries=2, inlined={x.return_ids[0]: (b"small value", None)})
    o.tasks.submit(g)                                      # on x's idle lease
    assert g.conn == "w"
    read_failed(o, g, x.return_ids[0])
    assert isinstance(error(o, g).cause, ObjectLostError) and not o.lineage.parked


# -- an actor call that could not read a lost argument ---------------------------------
def reader_call(o: Owner, x: Task) -> Task:
    """r.read(x) on an actor without max_task_retries, x (on B) sent along, pushed to w1."""
    o.actors.created(A, 0, -1, False, "Reader")
    xid = x.return_ids[0]
    tid = b"\x09" * 4
    msg = m.PushActorTask(tid, A, "read", b"args", {xid: (entry(o, x).data, None)},
                          (tid + b"r",), ME, None)
    c = Task(tid, msg, msg.return_ids, "read", None, False, [], A)
    [ask] = [i for _, i in o.actors.submit(c, None) if type(i) is ActorLookup]
    o.actors.resolved(ask.req, "ALIVE", "w1", None, 0, "w1")
    [(conn, sent)] = o.actors.actors[A].outbox
    o.actors.actors[A].outbox.clear()
    assert (conn, sent.task_id, c.conn) == ("w1", tid, "w1")
    return c


def call_read_failed(o: Owner, c: Task, x: bytes, unread: bool) -> list:
    """The actor's worker says: the call failed with ObjectLostError naming x, raised while
    it read its arguments (`unread`: marked so by resolve_args) or by the method itself."""
    lost = ObjectLostError(x.hex(), f"Object {x.hex()} lives on node B and could not be copied")
    if unread:
        lost.unread_argument = True
    err = pickle.dumps(RayTaskError("read", "traceback", lost))
    return o.task_done("w1", c.task_id, (), err, True, 5.0)


def test_an_actor_call_that_could_not_read_its_argument_goes_again_once_it_is_back():
    """No retry is spent, and max_task_retries=0 does not stop it: the method never ran."""
    o = owner()
    x = made(o, task(1, retries=1))
    c = reader_call(o, x)
    assert call_read_failed(o, c, x.return_ids[0], unread=True) == []
    assert c.task_id in o.lineage.parked                    # until we hear that B died
    out, changed = o.lineage.lost(frozenset({"B"}))
    assert changed and not o.lineage.parked and c.retries == 0 and c.attempt == 1
    assert sorted(type(i).__name__ for _, i in out) == ["ActorLookup", "LeaseRequest"]
    assert not entry(o, x).ready and x.task_id in o.tasks.tasks  # x runs again (a lease)
    [ask] = [i for _, i in out if type(i) is ActorLookup]   # and the call goes back in the
    o.actors.resolved(ask.req, "ALIVE", "w1", None, 0, "w1")  # actor's queue
    assert [(conn, msg.task_id) for conn, msg in o.actors.actors[A].outbox] == [("w1", c.task_id)]
    [(_, again)] = o.actors.actors[A].outbox
    assert x.return_ids[0] not in again.inlined             # the worker asks us: we answer
    assert not entry(o, c).ready                            # once x is back


def test_an_actor_call_whose_method_raised_object_lost_is_not_run_again():
    o = owner()
    x = made(o, task(1, retries=1))
    c = reader_call(o, x)
    call_read_failed(o, c, x.return_ids[0], unread=False)
    assert isinstance(error(o, c).cause, ObjectLostError) and not o.lineage.parked
    assert not o.actors.actors[A].outbox
