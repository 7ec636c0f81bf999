"""The owner core's objects: reference counts, borrowers, waiters, frees (events in, instructions out)."""
import pathlib
import re
from typing import NamedTuple

import pytest

from raylite._core.owner import WAKE, Owner
from raylite._core.owner.objects import LOG_SIZE
from raylite.exceptions import ObjectLostError, OwnerDiedError

ME, OTHER = "me:1", "other:2"


class Loc(NamedTuple):  # where a large object lives (as shm.ShmObject)
    object_id: bytes
    size: int
    node: str


def owner() -> Owner:
    return Owner(ME)


def test_an_owned_object_is_freed_with_its_last_ref():
    o = owner()
    o.objects.put(b"x", Loc(b"x", 10, "n"), None)
    assert o.objects.ref_created(b"x", ME) is None  # our own: nobody to tell
    o.objects.ref_created(b"x", ME)
    o.objects.ref_deleted(b"x")
    assert b"x" in o.objects.entries
    o.objects.ref_deleted(b"x")
    assert b"x" not in o.objects.entries
    assert o.objects.take_frees() == ([(b"x", False, None, (("n", ""),))], [])  # never shared: recyclable
    assert o.objects.take_frees() == ([], [])


def test_inline_objects_leave_nothing_to_hand_back():
    o = owner()
    o.objects.put(b"x", b"small", None)
    o.objects.ref_created(b"x", ME)
    o.objects.ref_deleted(b"x")
    assert b"x" not in o.objects.entries and o.objects.take_frees() == ([], [])


def test_borrowers_keep_an_object_until_the_last_one_goes():
    o = owner()
    o.objects.put(b"x", Loc(b"x", 10, "n"), None)
    o.objects.ref_created(b"x", ME)
    o.objects.borrower(b"x", +1)          # AddBorrower from a worker
    o.objects.borrower(b"x", +1)          # and another
    o.objects.ref_deleted(b"x")           # our own last ref goes
    assert b"x" in o.objects.entries
    o.objects.borrower(b"x", -1)
    assert b"x" in o.objects.entries
    o.objects.borrower(b"x", -1)          # the last RemoveBorrower
    assert b"x" not in o.objects.entries
    frees, _ = o.objects.take_frees()
    assert frees == [(b"x", True, None, (("n", ""),))]  # another process saw it: not recycled


def test_pinned_objects_survive_their_refs():
    o = owner()
    o.objects.put(b"x", b"v", None)
    o.objects.ref_created(b"x", ME)
    o.objects.pin([b"x", b"unknown"])
    o.objects.ref_deleted(b"x")
    assert b"x" in o.objects.entries


def test_a_borrowers_first_ref_tells_the_owner_and_its_last_queues_a_notice():
    o = owner()
    assert o.objects.ref_created(b"y", OTHER) == OTHER  # AddBorrower to send
    assert o.objects.ref_created(b"y", OTHER) is None
    assert o.objects.owner_of(b"y") == OTHER
    o.objects.ref_deleted(b"y")
    assert o.objects.take_frees() == ([], [])
    o.objects.ref_deleted(b"y")
    assert o.objects.take_frees() == ([], [(OTHER, b"y")])  # RemoveBorrower, sent later
    assert o.objects.owner_of(b"y") is None


def test_a_late_value_is_freed_only_by_its_owner():
    o = owner()
    assert o.complete(b"gone", Loc(b"gone", 5, "n"), None, owned=False) == []
    assert o.objects.take_frees() == ([], [])             # a borrower's late fetch reply
    o.complete(b"r", Loc(b"r", 5, "n"), None, owned=True)  # a result nobody holds any more
    assert o.objects.take_frees() == ([(b"r", False, None, (("n", ""),))], [])


def test_out_of_band_refs_with_no_known_owner_fail_and_keep_nothing():
    o = owner()
    with pytest.raises(ObjectLostError, match="out of band"):
        o.objects.entry(b"z", None)
    assert b"z" not in o.objects.entries
    e, fetch_from = o.objects.entry(b"z", OTHER)
    assert fetch_from == OTHER and not e.ready
    e, fetch_from = o.objects.entry(b"q", ME)  # ours, but unknown: freed already
    assert fetch_from is None and isinstance(e.error, ObjectLostError)


def test_a_fetch_from_a_gone_owner_fails_its_waiters():
    o = owner()
    e, _ = o.objects.entry(b"z", OTHER)
    w = o.objects.wait([e], 1, "wake-z")
    out = o.fetch_failed(7, b"z", OTHER)
    assert out == [(WAKE, "wake-z")] and w.n == 0
    assert isinstance(e.error, OwnerDiedError)


def test_lost_decrement_race_one_wake_when_the_count_reaches_zero():
    """The lost-decrement race, as fixed: a thread waits for x and y; the reader threads of two
    connections complete them at once. The count used to live in a _Countdown that the reader
    threads decremented outside the lock (n -= 1 in both, one decrement lost: the waiter slept
    forever). Here the core counts, each completion an event under the shell's lock: exactly
    one wake, on the second completion. A core handing each completion back as a hit for the
    shell to count (the old shape) returns a wake-up on the first completion and fails this."""
    o = owner()
    for id in (b"x", b"y", b"z"):
        o.objects.expect(id)
    entries = o.objects.entries
    w = o.objects.wait([entries[b"x"], entries[b"y"]], 2, "wake")
    assert w is not None
    assert o.complete(b"x", b"1", None) == []               # reader thread 1
    assert o.complete(b"y", b"2", None) == [(WAKE, "wake")]  # reader thread 2
    assert o.complete(b"y", b"2", None) == []               # a duplicate reply counts nothing
    # wait(num_returns=1) on three: the first completion wakes, the later ones do not.
    o.objects.expect(b"a")
    o.objects.expect(b"b")
    w1 = o.objects.wait([entries[b"a"], entries[b"b"], entries[b"z"]], 1, "one")
    assert o.complete(b"b", b"", None) == [(WAKE, "one")]
    assert o.complete(b"a", b"", None) == [] and o.complete(b"z", b"", None) == []
    assert w1.n < 0
    assert o.objects.wait([entries[b"a"]], 1, "never") is None  # ready: no waiter at all


def test_serving_a_pending_object_answers_once_it_is_ready():
    o = owner()
    o.objects.expect(b"x")
    assert o.objects.serve(b"x", "answer-later") is None
    assert o.complete(b"x", b"v", None) == [(WAKE, "answer-later")]
    assert o.objects.serve(b"x", None) == (b"v", None)
    assert o.objects.entries[b"x"].shared
    data, error = o.objects.serve(b"freed", None)
    assert data is None and isinstance(error, ObjectLostError)


def test_inline_args_split_ready_values_from_pending_owned_ones():
    o = owner()
    o.objects.put(b"ready", b"v", None)
    o.objects.expect(b"pending")
    o.objects.entry(b"borrowed", OTHER)  # pending, but not ours to wait for
    inlined, deps = o.objects.inline_args([b"ready", b"pending", b"borrowed", b"unknown"])
    assert inlined == {b"ready": (b"v", None)} and deps == [b"pending"]
    assert o.objects.entries[b"ready"].shared


def test_the_log_is_bounded_and_state_lists_objects():
    o = owner()
    for i in range(LOG_SIZE + 50):
        o.objects.put(bytes([i % 256, i // 256]), Loc(b"", 9, "n"), None)
        o.objects.ref_created(bytes([i % 256, i // 256]), ME)
        o.objects.ref_deleted(bytes([i % 256, i // 256]))
    assert len(o.log) == LOG_SIZE
    o.objects.put(b"i", b"abc", None)
    o.objects.ref_created(b"i", ME)
    o.objects.expect(b"p")
    o.objects.entry(b"b", OTHER)
    o.complete(b"b", b"zz", None, owned=False)
    o.objects.ref_created(b"b", OTHER)
    recs = {r.object_id: r for r in o.state().objects}
    assert recs[b"i".hex()].state == "INLINE" and recs[b"i".hex()].size == 3
    assert recs[b"i".hex()].local_refs == 1 and recs[b"i".hex()].owner == ME
    assert recs[b"p".hex()].state == "PENDING"
    assert recs[b"b".hex()].state == "BORROWED" and recs[b"b".hex()].owner == OTHER


def test_the_owner_core_is_pure():
    """No sockets, threads, selectors, clock or OS: time and connections come with the events."""
    import raylite._core.owner as pkg

    banned = {"socket", "threading", "_thread", "select", "selectors", "time", "os"}
    for f in pathlib.Path(pkg.__file__).parent.glob("*.py"):
        text = f.read_text()
        names = {n.split(".")[0] for n in re.findall(r"^\s*(?:import|from)\s+([\w.]+)", text, re.M)}
        assert not names & banned, f"{f.name} imports {names & banned}"
        assert len(text.splitlines()) < 500, f.name


class Here(NamedTuple):  # a location that names its node daemon's address (shm.ShmObject)
    object_id: bytes
    size: int
    node: str
    at: str


def test_the_directory_lists_every_copy_and_frees_hand_them_all_back():
    o = owner()
    o.objects.put(b"x", Here(b"x", 10, "nodeA", "a:1"), None)
    o.objects.ref_created(b"x", ME)
    assert o.objects.copy_added(b"x", "nodeB", "b:2")
    assert o.objects.copy_added(b"x", "nodeA", "a:1")     # its first copy: nothing new
    assert o.objects.copy_added(b"x", "nodeB", "b:2")     # twice: listed once
    assert [r.nodes for r in o.state().objects] == [("nodeA", "nodeB")]
    o.objects.ref_deleted(b"x")
    frees, _ = o.objects.take_frees()
    # shared: another node read it, so never recycled; both copies to delete
    assert frees == [(b"x", True, None, (("nodeA", "a:1"), ("nodeB", "b:2")))]


def test_a_copy_of_an_object_that_is_gone_or_inline_is_to_be_dropped():
    o = owner()
    assert not o.objects.copy_added(b"gone", "nodeB", "b:2")    # freed (or never ours)
    o.objects.put(b"small", b"inline", None)
    assert not o.objects.copy_added(b"small", "nodeB", "b:2")
    o.objects.add_inlined(b"theirs")                            # another owner's
    o.complete(b"theirs", Here(b"theirs", 10, "nodeA", "a:1"), None, owned=False)
    assert not o.objects.copy_added(b"theirs", "nodeB", "b:2")
    assert o.objects.take_frees() == ([], [])


def test_a_result_nobody_holds_is_freed_where_it_was_made():
    o = owner()
    o.complete(b"r", Here(b"r", 5, "nodeB", "b:2"), None, owned=True)
    assert o.objects.take_frees() == ([(b"r", False, None, (("nodeB", "b:2"),))], [])
