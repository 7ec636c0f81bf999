"""The store accounting's answers when spilling needs disk, and when a spill does not happen."""
import pytest

from raylite._object_store.store import StoreAccounting
from raylite.exceptions import OutOfDiskError


def _full_store():
    st = StoreAccounting(100)
    st.allocate(b"a", 40, "o")
    st.allocate(b"b", 30, "o")
    st.allocate(b"p", 20, "o")
    st.free([b"p"], recyclable={b"p"})   # a 20-byte segment waits in the pool
    return st


def test_spilling_needs_room_on_disk():
    st = _full_store()
    before = st.statistics()
    with pytest.raises(OutOfDiskError) as info:
        st.allocate(b"c", 60, "o", disk_free=39)
    assert "spilled to disk" in str(info.value) and "spill disk has" in str(info.value)
    assert st.statistics() == before and len(st.pool) == 1, "a failed allocate changed the books"
    alloc = st.allocate(b"c", 60, "o", disk_free=40)
    assert alloc.spill == [b"a"] and len(alloc.drop) == 1 and st.pool_bytes == 0


def test_unknown_disk_space_is_not_checked():
    st = _full_store()
    assert st.allocate(b"c", 60, "o").spill == [b"a"]


def test_a_victim_that_was_not_moved_counts_as_in_memory_again():
    st = _full_store()
    st.allocate(b"c", 60, "o", disk_free=1000)
    st.unspill([b"a", b"gone"])
    s = st.statistics()
    assert s["used"] == 130 and s["spilled_bytes"] == 0 and s["spill_count"] == 0
    assert st.objects[b"a"].in_shm and not st.objects[b"a"].spilled
    st.free([b"a", b"b", b"c"])
    assert st.statistics()["used"] == 0


def test_a_segment_found_unused_joins_the_pool_while_there_is_room():
    st = StoreAccounting(100)            # pool: at most 50 bytes
    st.allocate(b"a", 40, "o")
    deleted, recycled = st.free([b"a"])  # its owner did not vouch for it
    assert deleted == [(b"a", True, False)] and not recycled and st.used == 0
    pid = st.pool_add(40)                # the shell found no process mapping it
    assert pid is not None and st.pool_bytes == 40
    assert st.pool_add(20) is None       # 60 > 50: unlinked instead
    alloc = st.allocate(b"b", 30, "o")   # a later object (a pull, a put) takes it over
    assert alloc.reuse == pid and st.pool_bytes == 0 and st.used == 30
    other = st.pool_add(10)
    st.pool_drop(other)                  # the shell could not keep it after all
    assert st.pool_bytes == 0 and not st.pool
