"""Reference counting with out-of-band refs (item 11 of issue 11).

Ray's rule: a ref rebuilt from an id alone (`ray.ObjectRef(bytes.fromhex(h))`)
is out of band. It is not counted, so it neither keeps its object alive nor
lets go of a hold it never had: the object lives as long as its owner (and
the owner's in-band borrowers) hold it. These tests hold in-band refs next to
out-of-band ones and check that the object stays exactly as long as they do.
"""
import gc
import time

import numpy as np
import pytest

import raylite
from raylite._runtime import current
from raylite.exceptions import ObjectLostError

MiB = 2**20


def _settle_frees():
    """Lets destructors run and the maintenance threads send what they queued."""
    gc.collect()
    time.sleep(0.5)


@pytest.fixture
def holder(cluster):
    @cluster.remote
    class Holder:
        def __init__(self):
            self.kept = {}

        def keep(self, name, refs):
            self.kept[name] = refs

        def drop(self, name):
            self.kept.pop(name)
            gc.collect()

        def total(self, name):
            return int(raylite.get(self.kept[name][0]).sum())

        def rebuild_and_get(self, h):
            try:
                return int(raylite.get(raylite.ObjectRef(bytes.fromhex(h))).sum())
            except ObjectLostError as e:
                return str(e)

        def get(self, refs):
            return int(raylite.get(refs[0]).sum())

    return Holder.remote()


@pytest.mark.parametrize("n", [10, MiB])
def test_an_out_of_band_ref_does_not_hide_an_in_band_borrow(cluster, holder, n):
    x = cluster.put(np.ones(n, dtype=np.uint8))
    # First a ref rebuilt from the id alone reaches the holder, then the real one.
    cluster.get(holder.keep.remote("oob", [raylite.ObjectRef(x.binary())]))
    cluster.get(holder.keep.remote("real", [x]))
    del x
    _settle_frees()
    assert cluster.get(holder.total.remote("real")) == n  # the holder still holds it


def test_a_worker_rebuilding_a_ref_and_dropping_it_frees_nothing(cluster):
    @cluster.remote
    def rebuild_and_drop(h, keep_alive):
        r = raylite.ObjectRef(bytes.fromhex(h))
        ready, _ = raylite.wait([r], timeout=10, fetch_local=False)
        value = int(raylite.get(r).sum())
        del r, keep_alive
        gc.collect()
        return len(ready), value

    x = cluster.put(np.ones(MiB, dtype=np.uint8))
    for _ in range(3):
        # The live ref travels alongside, so the worker learns the owner (Ray's pattern).
        assert cluster.get(rebuild_and_drop.remote(x.hex(), [x])) == (1, MiB)
    _settle_frees()
    rt = current()
    assert rt._core.objects.counts[x._id] == 1 and rt._core.objects.entries[x._id].borrowers == 0
    assert int(cluster.get(x).sum()) == MiB


def test_a_borrower_dropping_a_ref_before_its_value_arrives_frees_nothing(cluster):
    """The owner answers a fetch only once the object is ready; by then the borrower may
    have let go. The late value is the owner's, not the borrower's, to free."""
    @cluster.remote
    def slow():
        time.sleep(1.5)
        return np.full(MiB, 7, dtype=np.uint8)

    @cluster.remote
    def peek(refs):
        ready, _ = raylite.wait(refs, timeout=0)  # asks the owner for the value...
        return len(ready)                         # ... and lets go of the ref when it returns

    r = slow.remote()
    assert cluster.get(peek.remote([r])) == 0
    cluster.wait([r], timeout=10)     # the owner answers the fetch now: nobody there waits
    _settle_frees()
    assert int(cluster.get(r, timeout=10).sum()) == 7 * MiB


def test_an_out_of_band_ref_with_no_known_owner_fails_clearly_and_leaves_nothing(cluster, holder):
    x = cluster.put(np.ones(MiB, dtype=np.uint8))
    msg = cluster.get(holder.rebuild_and_get.remote(x.hex()))
    assert "out of band" in msg and "owner" in msg
    # The failure is not remembered: the same id, passed in band, reads fine there.
    assert cluster.get(holder.get.remote([x])) == MiB


def test_an_out_of_band_ref_does_not_keep_its_object_alive(cluster):
    x = cluster.put(np.ones(MiB, dtype=np.uint8))
    y = raylite.ObjectRef(x.binary())
    assert int(cluster.get(y).sum()) == MiB   # the owner holds it: readable by id
    del x
    _settle_frees()
    with pytest.raises(ObjectLostError):
        cluster.get(y, timeout=10)
    del y
    _settle_frees()
    assert not current()._core.objects.counts
