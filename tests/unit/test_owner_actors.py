"""The owner core's actor calls: order across a restart, lost calls, deaths, handle lifetimes."""
import pytest

from raylite._core.owner import DAEMON, ActorLookup, Owner, Task
from raylite._protocol import messages as m
from raylite.exceptions import ActorDiedError, PendingCallsLimitExceeded, RayTaskError

ME, D, A = "me:1", DAEMON, b"actor-1"


def owner() -> Owner:
    return Owner(ME)


def call(n: int, actor: bytes = A) -> Task:
    tid = bytes([n]) * 4  # ids grow in submission order
    msg = m.PushActorTask(tid, actor, f"m{n}", b"args", {}, (tid + b"r",), ME, None)
    return Task(tid, msg, msg.return_ids, f"m{n}", None, False, [], actor)


def resolve(o: Owner, out: list, state: str, conn=None, death=None, retries=0) -> list:
    [(target, ask)] = [(t, x) for t, x in out if type(x) is ActorLookup]
    assert target == D and ask.actor_id == A
    return o.actors.resolved(ask.req, state, conn, death, retries, conn)


def sent(o: Owner, actor: bytes = A) -> list:
    box = o.actors.actors[actor].outbox
    out = [(conn, msg.method) for conn, msg in box]
    box.clear()
    return out


def error_of(o: Owner, t: Task):
    return o.objects.entries[t.return_ids[0]].error


def test_calls_wait_for_the_address_then_leave_in_order():
    o = owner()
    o.actors.created(A, 0, -1, True, "Counter")
    out = o.actors.submit(call(1), None)
    assert o.actors.submit(call(2), None) == []  # asked once
    assert resolve(o, out, "ALIVE", "w1") == []
    assert sent(o) == [("w1", "m1"), ("w1", "m2")]
    assert o.actors.submit(call(3), None) == []  # connected: straight to the outbox
    assert sent(o) == [("w1", "m3")]


def test_call_order_survives_a_restart():
    """Calls 1-3 are in flight when the actor's process dies; it restarts. Calls with retries
    left are replayed before call 4, made while the daemon was being asked, in submission
    order; the one without retries fails with the death that cost it."""
    o = owner()
    o.actors.created(A, 1, -1, True)
    out = o.actors.submit(call(1), None)
    resolve(o, out, "ALIVE", "w1")
    c2, c3 = call(2), call(3)
    o.actors.submit(c2, 0)  # max_task_retries=0 for this call
    o.actors.submit(c3, None)
    sent(o)
    c1 = o.tasks.tasks[bytes([1]) * 4]
    out, crashed = o.peer_lost("w1")
    assert crashed == []
    c4 = call(4)
    assert o.actors.submit(c4, None) == []  # the daemon is being asked already
    death = ActorDiedError("The actor Counter is dead: its worker process exited unexpectedly.")
    assert resolve(o, out, "ALIVE", "w2", death=death) == []
    assert sent(o) == [("w2", "m1"), ("w2", "m3"), ("w2", "m4")]
    assert c1.retries == 0 and c3.retries == 0 and c4.retries == 1
    err = error_of(o, c2)
    assert isinstance(err, ActorDiedError) and "worker process exited" in str(err) \
        and "(m2) was running then and is not retried" in str(err)


def test_retried_calls_merge_back_in_submission_order():
    o = owner()
    st = o.actors.created(A, -1, -1, True)
    st.queue.extend([call(2), call(4)])
    out: list = []
    o.actors.requeue(st, [call(1), call(3)], out)
    assert [t.name for t in st.queue] == ["m1", "m2", "m3", "m4"]


def test_a_dead_actor_fails_queued_lost_and_later_calls_with_its_death():
    o = owner()
    o.actors.created(A, 0, -1, True)
    out = o.actors.submit(call(1), None)
    init_failed = RayTaskError("Counter.__init__", "Traceback ...", ZeroDivisionError("boom"))
    resolve(o, out, "DEAD", death=init_failed)
    first = o.objects.entries[bytes([1]) * 4 + b"r"].error
    assert isinstance(first, ActorDiedError) and "__init__ raised" in str(first)
    later = call(2)
    assert o.actors.submit(later, None) == []
    assert error_of(o, later) is first and later.task_id not in o.tasks.tasks
    recs = o.state().actors
    assert recs[0].state == "DEAD" and "__init__ raised" in recs[0].death


def test_a_handle_made_elsewhere_takes_the_actors_own_retries():
    o = owner()
    out = o.actors.submit(call(1), None)  # no created(): a handle that came in a value
    assert o.tasks.tasks[bytes([1]) * 4].retries == -2
    resolve(o, out, "ALIVE", "w1", retries=3)
    assert o.tasks.tasks[bytes([1]) * 4].retries == 3 and o.actors.actors[A].retries == 3


def test_an_unreachable_alive_actor_is_asked_again():
    o = owner()
    out = o.actors.submit(call(1), None)
    out = resolve(o, out, "ALIVE", None)  # could not connect: it is going down
    assert [type(x) for _, x in out] == [ActorLookup]


def test_max_pending_calls():
    o = owner()
    o.actors.created(A, 0, 2, True)
    o.actors.submit(call(1), None)
    o.actors.submit(call(2), None)
    with pytest.raises(PendingCallsLimitExceeded, match="max_pending_calls=2"):
        o.actors.submit(call(3), None)


def test_the_last_handle_ends_an_unnamed_actor():
    o = owner()
    o.actors.created(A, 0, -1, collect=True)
    o.actors.handle_created(A)
    o.actors.handle_created(A)
    assert o.actors.handle_deleted(A) is False
    assert o.actors.handle_deleted(A) is True
    assert o.actors.take_terminates() == [A] and o.actors.take_terminates() == []
    o.actors.handle_created(A)  # once ended, never twice
    assert o.actors.handle_deleted(A) is False


@pytest.mark.parametrize("how", ["named_or_detached", "escaped", "dead", "not_ours"])
def test_actors_that_outlive_their_handles(how):
    o = owner()
    if how != "not_ours":
        o.actors.created(A, 0, -1, collect=how != "named_or_detached")
    o.actors.handle_created(A)
    if how == "escaped":
        o.actors.handle_escaped(A)  # pickled to another process: it may call it still
    if how == "dead":
        o.actors.died(A, ActorDiedError("killed"))
    assert o.actors.handle_deleted(A) is False and o.actors.terminates == []


def test_kill_makes_the_next_call_ask_where_the_actor_is():
    o = owner()
    out = o.actors.submit(call(1), None)
    resolve(o, out, "ALIVE", "w1")
    o.actors.killed(A)
    out = o.actors.submit(call(2), None)
    assert [type(x) for _, x in out] == [ActorLookup]


def test_a_call_in_flight_when_the_actors_node_died_may_or_may_not_have_run():
    """The actor's node stopped answering: a call in flight without retries fails at once with
    ActorUnavailableError; one with retries waits for the restart; the actor is asked after."""
    from raylite.exceptions import ActorUnavailableError

    o = owner()
    o.actors.created(A, 1, -1, True, "Counter")
    out = o.actors.submit(call(1), 0)
    resolve(o, out, "ALIVE", "w1")
    c2 = call(2)
    o.actors.submit(c2, 1)
    sent(o)
    out, crashed = o.peer_lost("w1", "n1 at B:1 died: nothing heard from it for 1.0s")
    assert crashed == []
    err = error_of(o, call(1))  # the same return ids as the call made above
    assert isinstance(err, ActorUnavailableError) and "may or may not have run" in str(err) \
        and "n1 at B:1 died" in str(err) and "Counter" in str(err)
    assert resolve(o, out, "ALIVE", "w2") == []  # restarted elsewhere: the retried call goes
    assert sent(o) == [("w2", "m2")]
