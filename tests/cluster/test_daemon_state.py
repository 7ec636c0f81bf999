"""The node daemon's answer to GetState: its cores' records merged with its owners'
(drivers and workers), an owner that does not answer in time skipped and named."""
import time

import numpy as np

import raylite
from raylite._node.reports import OWNER_WAIT_S
from raylite._protocol import messages as m
from raylite._protocol.transport import connect

MiB = 2**20


def test_a_shared_memory_object_its_borrower_and_its_spilling(cluster):
    @cluster.remote
    class Keeper:
        def keep(self, refs):
            self.refs = refs

    rt = raylite._runtime.current()
    big = cluster.put(np.ones(2 * MiB, dtype=np.uint8))
    keeper = Keeper.remote()
    cluster.get(keeper.keep.remote([big]))   # inside a list: the actor borrows it
    objects = [o for o in rt.state().objects if o.object_id == big.hex()]
    owned = [o for o in objects if o.state != "BORROWED"]
    lent = [o for o in objects if o.state == "BORROWED"]
    assert [(o.state, o.owner, o.local_refs, o.borrowers) for o in owned] == \
        [("SHARED_MEMORY", rt.address, 1, 1)] and owned[0].size > 2 * MiB
    assert [(o.owner, o.local_refs) for o in lent] == [(rt.address, 1)]


def test_the_store_says_an_owned_object_was_spilled():
    raylite.init(num_cpus=1, object_store_memory=100 * MiB)
    try:
        rt = raylite._runtime.current()
        first = raylite.put(np.ones(60 * MiB, dtype=np.uint8))
        second = raylite.put(np.ones(60 * MiB, dtype=np.uint8))   # first is spilled for it
        states = {o.object_id: (o.state, o.local_refs) for o in rt.state().objects}
        assert states[first.hex()] == ("SPILLED", 1) and states[second.hex()] == ("SHARED_MEMORY", 1)
    finally:
        raylite.shutdown()


def test_an_owner_that_does_not_answer_is_skipped_and_named(cluster):
    rt = raylite._runtime.current()
    kept = cluster.put("kept")
    mute = connect(rt.daemon_address, rt._token)   # registers as a driver, then never answers
    try:
        mute.send(m.RegisterClient(1, "driver", 1, "127.0.0.1:9", None, None, None))
        assert type(mute.recv()) is m.ClientRegistered
        t = time.monotonic()
        reply = rt._call(m.GetState(0))
        took = time.monotonic() - t
    finally:
        mute.close()
    assert reply.missing == ("127.0.0.1:9",)
    assert OWNER_WAIT_S * 0.9 <= took < OWNER_WAIT_S + 3
    assert kept.hex() in [o.object_id for o in reply.snapshot.objects]   # the others answered
    assert len([j for j in reply.snapshot.jobs if j.alive]) == 2


def test_only_the_kinds_asked_for_come_back_and_no_owner_is_asked_without_need(cluster):
    rt = raylite._runtime.current()
    kept = cluster.put("kept")
    mute = connect(rt.daemon_address, rt._token)
    try:
        mute.send(m.RegisterClient(1, "driver", 1, "127.0.0.1:9", None, None, None))
        assert type(mute.recv()) is m.ClientRegistered
        t = time.monotonic()
        reply = rt._call(m.GetState(0, ("nodes", "jobs"), True))   # nothing owners know
        assert time.monotonic() - t < OWNER_WAIT_S and reply.missing == ()
        snap = reply.snapshot
        assert snap.nodes and snap.jobs and not (snap.workers or snap.actors or snap.objects)
        reply = rt._call(m.GetState(0, ("objects",), False))       # the store's word only
        assert reply.missing == () and kept.hex() not in [o.object_id for o in reply.snapshot.objects]
    finally:
        mute.close()
    assert cluster.cluster_resources()["CPU"] == 2 and cluster.nodes()[0]["IsHead"]
