"""The object store on the cluster runtime: shared memory, zero-copy, counting, spilling."""
import glob
import os
import time

import numpy as np
import pytest

import raylite
from raylite.exceptions import OutOfDiskError
from tiny_disk import tiny_disk
from sessions import is_cleaned

MiB = 2**20


def _store_stats():
    """The node store's books, as its records say (no owner asked: the store's word alone)."""
    snap = raylite._runtime.current().state(("nodes", "objects"), False)
    sizes = {state: [o.size for o in snap.objects if o.state == state]
             for state in ("SHARED_MEMORY", "SPILLED")}
    return {"objects": len(snap.objects), "used": sum(sizes["SHARED_MEMORY"]),
            "spilled_bytes": sum(sizes["SPILLED"]), "spilled": len(sizes["SPILLED"]),
            "capacity": snap.nodes[0].resources_total["object_store_memory"]}


def _segments():
    tag = raylite._runtime.current().node_tag
    return [p for p in glob.glob(f"/dev/shm/raylite_{tag}_*")]


def _settle(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def small_store():
    raylite.init(num_cpus=2, object_store_memory=300 * MiB)
    yield raylite
    raylite.shutdown()


def test_small_put_stays_in_process(cluster):
    ref = cluster.put({"a": 1})
    assert cluster.get(ref) == {"a": 1}
    assert _store_stats()["objects"] == 0
    assert _segments() == []


def test_large_get_is_zero_copy_and_read_only(cluster):
    a = np.arange(4 * MiB, dtype=np.uint8)
    ref = cluster.put(a)
    b = cluster.get(ref)
    assert np.array_equal(a, b)
    assert not b.flags.writeable
    with pytest.raises(ValueError):
        b[0] = 1
    rt = raylite._runtime.current()
    mapped = rt._core.objects.entries[ref._id].mapped
    base = np.frombuffer(mapped, dtype=np.uint8)
    start = base.__array_interface__["data"][0]
    addr = b.__array_interface__["data"][0]
    assert start <= addr < start + len(mapped), "the array does not live in the shared segment"
    c = cluster.get(ref)
    assert c.__array_interface__["data"][0] == addr, "a second get copied the array"


def test_large_values_travel_through_tasks(cluster):
    @cluster.remote
    def total(x):
        return int(x.sum()), x.flags.writeable

    @cluster.remote
    def make(n):
        return np.ones(n, dtype=np.uint8)

    a = np.ones(3 * MiB, dtype=np.uint8)
    assert cluster.get(total.remote(cluster.put(a))) == (3 * MiB, False)
    assert cluster.get(total.remote(a)) == (3 * MiB, False)  # by value
    assert int(cluster.get(make.remote(5 * MiB)).sum()) == 5 * MiB


def test_put_and_drop_loop_keeps_store_flat(small_store):
    big = np.zeros(50 * MiB, dtype=np.uint8)
    for _ in range(40):
        ref = small_store.put(big)
        assert _store_stats()["spilled"] == 0, "dropped objects were spilled instead of freed"
        del ref
    assert _settle(lambda: _store_stats()["used"] == 0)
    st = _store_stats()
    shm_bytes = sum(os.path.getsize(p) for p in _segments())
    assert shm_bytes <= st["capacity"]


def test_task_results_dropped_by_driver_are_freed(small_store):
    @small_store.remote
    def make():
        return np.ones(10 * MiB, dtype=np.uint8)

    for _ in range(30):
        small_store.get(make.remote())
        assert _store_stats()["spilled"] == 0, "dropped results were spilled instead of freed"
    assert _settle(lambda: _store_stats()["used"] == 0)


def test_referenced_objects_survive_churn(small_store):
    r = small_store

    @r.remote
    class Keeper:
        def __init__(self):
            self.kept = None

        def keep(self, refs):
            self.kept = refs

        def total(self):
            return sum(int(r.get(x).sum()) for x in self.kept)

    @r.remote
    def hold(refs):
        return refs

    kept = r.put(np.ones(MiB, dtype=np.uint8))
    nested = {"inner": [r.put(np.full(MiB, 2, dtype=np.uint8))]}
    k = Keeper.remote()
    r.get(k.keep.remote([r.put(np.full(MiB, 3, dtype=np.uint8))]))
    passed = r.get(hold.remote([r.put(np.full(MiB, 4, dtype=np.uint8))]))
    for _ in range(20):
        junk = r.put(np.zeros(20 * MiB, dtype=np.uint8))
        del junk
    assert int(r.get(kept).sum()) == MiB
    assert int(r.get(nested["inner"][0]).sum()) == 2 * MiB
    assert r.get(k.total.remote()) == 3 * MiB
    assert int(r.get(passed[0]).sum()) == 4 * MiB


def test_spilling_and_transparent_restore(small_store):
    refs = [small_store.put(np.full(60 * MiB, i, dtype=np.uint8)) for i in range(8)]  # 480 MiB
    st = _store_stats()
    assert st["spilled"] > 0 and st["used"] <= st["capacity"]
    from raylite.cli.status import format_status
    snap = raylite._runtime.current().state(("nodes", "objects"), False)
    progress = snap.nodes[0].spill  # the daemon's spilling: every copy done, each counted
    assert progress.spilling_objects == progress.copied_objects == 0
    assert progress.spilled_objects == st["spilled"] and progress.failed == 0
    assert progress.spilled_bytes == st["spilled_bytes"] > 0
    assert (f"spilled since start: {st['spilled']} objects, {st['spilled_bytes'] / MiB:.1f} MiB"
            in format_status(snap, "here"))
    for i, ref in enumerate(refs):
        arr = small_store.get(ref)
        assert arr[0] == i and arr[-1] == i
    spill_dir = os.path.join(raylite._runtime.current().session_dir, "spill")
    assert os.listdir(spill_dir)
    assert os.stat(spill_dir).st_mode & 0o777 == 0o700
    for name in os.listdir(spill_dir):  # whole files, private, none left half-written
        st = os.stat(os.path.join(spill_dir, name))
        assert st.st_mode & 0o777 == 0o600 and st.st_size > 60 * MiB and len(name) == 32
    del refs, arr
    assert _settle(lambda: os.listdir(spill_dir) == [])
    assert _store_stats()["spilled_bytes"] == 0


def test_a_put_waiting_for_spills_says_so_on_stderr(small_store, capfd, monkeypatch):
    from raylite._runtime import spill_wait

    held = [small_store.put(np.full(60 * MiB, i, dtype=np.uint8)) for i in range(4)]  # 240 MiB
    capfd.readouterr()
    monkeypatch.setattr(spill_wait, "AFTER_S", 0.0)   # every late answer: a line at once
    monkeypatch.setattr(spill_wait, "TICK_S", 0.01)
    big = small_store.put(np.full(200 * MiB, 9, dtype=np.uint8))     # 140+ MiB copied first
    err = capfd.readouterr().err
    assert ("raylite: put() of 200.0 MiB is waiting for room in the object store (0 s)"
            in err), err
    assert small_store.get(big)[-1] == 9 and small_store.get(held[0])[0] == 0
    lines = [x for x in err.splitlines() if "spilling to disk now" in x]
    assert all(" of 4 objects" in x or " of 3 objects" in x for x in lines), lines


def test_object_larger_than_store_goes_to_disk(small_store):
    ref = small_store.put(np.full(400 * MiB, 7, dtype=np.uint8))
    st = _store_stats()
    assert st["used"] == 0 and st["spilled_bytes"] >= 400 * MiB
    arr = small_store.get(ref)
    assert arr[0] == 7 and arr[-1] == 7 and arr.nbytes == 400 * MiB
    del arr, ref
    assert _settle(lambda: _store_stats()["spilled_bytes"] == 0)


def test_too_big_for_memory_and_disk_names_sizes():
    from raylite._object_store.store import StoreAccounting

    store = StoreAccounting(100 * MiB)
    with pytest.raises(OutOfDiskError) as info:
        store.allocate(b"x" * 16, 200 * MiB, "driver-a", disk_free=50 * MiB)
    text = str(info.value)
    assert "200.0 MiB" in text and "50.0 MiB free" in text and "object_store_memory" in text
    assert store.statistics()["objects"] == 0


def test_future_and_await(cluster):
    import asyncio

    ref = cluster.remote(lambda: 41).remote()
    assert ref.future().result(timeout=10) == 41

    async def main():
        return await ref

    assert asyncio.run(main()) == 41


def test_shutdown_removes_segments_and_spill():
    raylite.init(num_cpus=1, object_store_memory=100 * MiB)
    tag = raylite._runtime.current().node_tag
    session = raylite._runtime.current().session_dir
    refs = [raylite.put(np.ones(40 * MiB, dtype=np.uint8)) for _ in range(4)]
    assert glob.glob(f"/dev/shm/raylite_{tag}_*")
    raylite.shutdown()
    del refs
    assert glob.glob(f"/dev/shm/raylite_{tag}_*") == []
    assert is_cleaned(session)


@pytest.fixture
def tiny_temp_dir(tmp_path):
    """raylite's temp dir on a 48 MiB tmpfs; the cluster is shut down before it is unmounted."""
    with tiny_disk(tmp_path / "tiny", 48) as mnt:
        yield mnt
        if raylite.is_initialized():
            raylite.shutdown()


def test_full_spill_disk_fails_the_put_and_loses_nothing(tiny_temp_dir):
    raylite.init(num_cpus=1, object_store_memory=100 * MiB, _temp_dir=str(tiny_temp_dir))
    refs = []
    with pytest.raises(OutOfDiskError) as info:
        for i in range(8):
            refs.append(raylite.put(np.full(30 * MiB, i, dtype=np.uint8)))
    text = str(info.value)
    assert "30.0 MiB" in text and "MiB free" in text and "_temp_dir" in text
    assert len(refs) == 4 and _store_stats()["spilled"] == 1
    for i, ref in enumerate(refs):
        arr = raylite.get(ref)
        assert arr.nbytes == 30 * MiB and arr[0] == i and arr[-1] == i
    del arr
    refs.pop(0)  # room again: the put goes through
    assert _settle(lambda: _store_stats()["spilled_bytes"] == 0)
    assert raylite.get(raylite.put(np.full(30 * MiB, 9, dtype=np.uint8)))[-1] == 9
