"""PullQueue (_object_store/pulls.py): one transfer per object and node, at most `limit` at once."""
import pytest

from raylite._object_store.pulls import PullQueue


def test_several_readers_of_one_object_share_one_transfer():
    q = PullQueue(2)
    assert q.request(b"x", "reader1", "job-x") == ["job-x"]     # starts at once
    assert q.request(b"x", "reader2", "job-x again") == []      # waits on the first
    assert b"x" in q
    waiters, start = q.finished(b"x")
    assert waiters == ["reader1", "reader2"] and start == []
    assert b"x" not in q
    assert q.statistics() == {"running": 0, "queued": 0, "started": 1, "shared": 1}


def test_at_most_limit_transfers_run_and_the_rest_start_in_order():
    q = PullQueue(2)
    assert q.request(b"a", 1, "A") == ["A"]
    assert q.request(b"b", 2, "B") == ["B"]
    assert q.request(b"c", 3, "C") == []                      # over the limit: queued
    assert q.request(b"d", 4, "D") == []
    assert q.request(b"c", 5, None) == []                     # a second reader of a queued one
    assert q.statistics()["running"] == 2 and q.statistics()["queued"] == 2
    assert q.finished(b"b") == ([2], ["C"])                   # a slot frees: the oldest starts
    assert q.finished(b"c") == ([3, 5], ["D"])
    assert q.finished(b"a") == ([1], [])
    assert q.finished(b"d") == ([4], [])
    assert q.statistics() == {"running": 0, "queued": 0, "started": 4, "shared": 1}


def test_a_finish_for_an_unknown_pull_changes_nothing():
    q = PullQueue(1)
    assert q.finished(b"never") == ([], [])
    assert q.request(b"a", 1, "A") == ["A"]
    assert q.finished(b"never") == ([], [])
    assert q.statistics()["running"] == 1


def test_no_transfer_at_all_is_refused():
    with pytest.raises(ValueError, match="at least one transfer"):
        PullQueue(0)


def test_a_queued_pull_that_ends_before_it_starts_leaves_the_queue():
    """Its source died (transfer.py ends every pull from it): the next one starts in its place."""
    from raylite._object_store.pulls import PullQueue

    q = PullQueue(1)
    assert q.request(b"a", "r1", "job a") == ["job a"]
    assert q.request(b"b", "r2", "job b") == []
    assert q.request(b"c", "r3", "job c") == []
    assert q.finished(b"b") == (["r2"], [])          # queued, never started
    assert q.finished(b"a") == (["r1"], ["job c"])   # c starts, b is not looked for
    assert b"b" not in q and q.finished(b"c") == (["r3"], [])
