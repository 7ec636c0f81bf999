"""Objects between nodes: a head (a) and a joined node (b) on loopback in one machine.

The driver joins node b, so its tasks and puts are b's; its actor runs on the head, a
(the GCS places every actor on the head while it is alive: _gcs/placement.py). Large
values put on b are pulled by a's daemon when the actor reads them, results the actor
makes on a are pulled to b when the driver reads them, and freeing deletes every copy.
"""
import glob
import threading
import time

import pytest

import raylite
from raylite._protocol import messages as m
from raylite._protocol.transport import Listener, connect
from raylite.cli.status import format_memory
from two_nodes import TwoNodes, two_nodes  # noqa: F401 (a fixture)

np = pytest.importorskip("numpy")
MiB = 2**20


@raylite.remote(num_cpus=0, max_concurrency=4)
class OnA:
    def node(self):
        return raylite.get_runtime_context().get_node_id()

    def check(self, arr):
        return arr.nbytes, int(arr[::4096].sum()), arr.flags.writeable

    def check_ref(self, refs):
        return self.check(raylite.get(refs[0]))

    def make(self, n):
        return np.full(n, 7, dtype=np.uint8)

    def keep(self, refs):
        self.kept = raylite.get(refs[0])   # the value outlives its ref: its map stays
        return int(self.kept[::4096].sum())

    def kept_sum(self):
        return int(self.kept[::4096].sum())


def _tag(node_id_hex: str) -> str:
    return node_id_hex[:12]


def _segments(tag: str, ref) -> list:
    """The object's segment on the node with that tag (ref: an ObjectRef or its hex id)."""
    return glob.glob(f"/dev/shm/raylite_{tag}_{ref if isinstance(ref, str) else ref.hex()}")


def _gone(tag: str, ref, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while _segments(tag, ref):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _objects():
    rt = raylite._runtime.current()
    return rt._call(m.GetState(0, ("nodes", "objects"), True)).snapshot


def _record(ref, nodes: tuple, seconds: float = 10.0) -> list:
    """The owner's record of ref, once it lists `nodes` (ObjectCopied is one-way: it may
    still be on its way when the reader's task has answered), or as it is after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        rec = [o for o in _objects().objects if o.object_id == ref.hex()]
        if (rec and rec[0].nodes == nodes) or time.monotonic() > deadline:
            return rec
        time.sleep(0.05)


def _join(two_nodes):  # noqa: F811
    """The driver on node b; (its runtime, an actor on node a, a's node tag)."""
    raylite.init(address=two_nodes.b.address)
    rt = raylite._runtime.current()
    actor = OnA.remote()
    tag_a = _tag(raylite.get(actor.node.remote()))
    assert tag_a != rt.node_tag, "the actor should run on the head, the driver on node b"
    return rt, actor, tag_a


def test_an_array_put_on_the_drivers_node_is_read_by_a_task_on_the_other(two_nodes):  # noqa: F811
    rt, actor, other = _join(two_nodes)
    arr = np.arange(64 * MiB, dtype=np.uint8)
    expect = (arr.nbytes, int(arr[::4096].sum()), False)
    ref = raylite.put(arr)
    assert _segments(rt.node_tag, ref) and not _segments(other, ref)
    assert raylite.get(actor.check_ref.remote([ref])) == expect   # pulled to a, read zero-copy there
    assert _segments(other, ref)
    rec = _record(ref, (rt.node_tag, other))
    assert rec and rec[0].nodes == (rt.node_tag, other)        # the owner's directory
    assert f"nodes={rt.node_tag},{other}" in format_memory(_objects(), ())
    assert raylite.get(actor.check.remote(ref)) == expect          # a ref argument: the copy is there
    # A large argument passed by value travels as the task's argument blob, pulled once.
    assert raylite.get(actor.check.remote(arr)) == expect
    del ref
    assert _gone(rt.node_tag, rec[0].object_id)
    assert _gone(other, rec[0].object_id), \
        "freeing must delete the copy on the other node too"


def test_a_result_made_on_the_other_node_is_read_by_the_driver(two_nodes):  # noqa: F811
    rt, actor, other = _join(two_nodes)
    ref = actor.make.remote(32 * MiB)
    out = raylite.get(ref)
    assert out.nbytes == 32 * MiB and int(out[::4096].sum()) == 7 * (32 * MiB // 4096)
    assert not out.flags.writeable                              # zero-copy from our node's copy
    assert _segments(other, ref) and _segments(rt.node_tag, ref)
    rec = _record(ref, (other, rt.node_tag))
    assert rec[0].nodes == (other, rt.node_tag)
    del out, ref
    assert _gone(rt.node_tag, rec[0].object_id)
    assert _gone(other, rec[0].object_id)


def test_copies_on_other_nodes_go_when_their_owner_leaves(two_nodes):  # noqa: F811
    rt, actor, other = _join(two_nodes)
    ref = raylite.put(np.ones(8 * MiB, dtype=np.uint8))
    assert raylite.get(actor.check_ref.remote([ref]))[0] == 8 * MiB
    mine, hex_id = rt.node_tag, ref.hex()
    assert _segments(other, hex_id)
    raylite.shutdown()   # the ref is still held: nothing was freed by the owner
    # bound: the watcher may still be dialing the owner (3 tries) when it goes
    assert _gone(mine, hex_id) and _gone(other, hex_id, seconds=40), \
        "the other node's daemon watches the owner and frees its copies when it goes"


def test_two_concurrent_reads_on_one_node_share_one_pull(two_nodes):  # noqa: F811
    rt, actor, other = _join(two_nodes)
    arr = np.ones(48 * MiB, dtype=np.uint8)
    ref = raylite.put(arr)
    first, second = actor.check_ref.remote([ref]), actor.check_ref.remote([ref])  # two threads of the actor
    assert raylite.get([first, second]) == [(arr.nbytes, arr.nbytes // 4096, False)] * 2
    assert len(_segments(other, ref)) == 1
    stats = _daemon_state(two_nodes.a.address)
    assert stats["pulled"] == 1, stats   # one transfer (PullQueue: the second waited on it)


def _pooled(tag: str) -> list:
    return glob.glob(f"/dev/shm/raylite_{tag}_{b'pool'.hex()}*")


def _leases_work() -> bool:
    """Whether /dev/shm grants file leases (shm.unused proves a segment unused by one);
    where it does not, freed copies are unlinked as before and nothing is recycled."""
    import fcntl
    import os

    path = f"/dev/shm/raylite-test-lease-{os.getpid()}"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o600)
    os.unlink(path)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def test_a_freed_copy_nobody_maps_is_recycled_for_the_next_pull(two_nodes):  # noqa: F811
    if not _leases_work():
        pytest.skip("this kernel grants no file leases: freed copies are never recycled")
    rt, actor, other = _join(two_nodes)
    ref = raylite.put(np.full(24 * MiB, 1, dtype=np.uint8))
    assert raylite.get(actor.check_ref.remote([ref]))[1] == 24 * MiB // 4096
    hex_id = ref.hex()
    del ref   # the actor's value is gone too: no process maps the copy on a any more
    assert _gone(other, hex_id) and _gone(rt.node_tag, hex_id)
    assert _pooled(other), "the freed copy should wait in a's pool, its pages kept"
    assert not _pooled(rt.node_tag), \
        "b sent the object with sendfile (its pages may be in flight): never recycled there"
    ref = raylite.put(np.full(24 * MiB, 2, dtype=np.uint8))
    assert raylite.get(actor.check_ref.remote([ref]))[1] == 2 * (24 * MiB // 4096)
    stats = _daemon_state(two_nodes.a.address)
    assert stats["pulled"] == 2 and stats["pulled_recycled"] == 1, stats


def test_a_freed_copy_still_mapped_is_never_recycled(two_nodes):  # noqa: F811
    """A value from get() outlives its ref (Ray keeps it readable): the copy its actor
    still maps is not handed to the next pull, whose bytes would change the value."""
    rt, actor, other = _join(two_nodes)
    ref = raylite.put(np.full(24 * MiB, 1, dtype=np.uint8))
    assert raylite.get(actor.keep.remote([ref])) == 24 * MiB // 4096
    hex_id = ref.hex()
    del ref
    assert _gone(other, hex_id)
    assert not _pooled(other), "a segment another process maps must not be pooled"
    ref = raylite.put(np.full(24 * MiB, 3, dtype=np.uint8))
    assert raylite.get(actor.check_ref.remote([ref]))[1] == 3 * (24 * MiB // 4096)
    assert raylite.get(actor.kept_sum.remote()) == 24 * MiB // 4096   # the old bytes
    assert _daemon_state(two_nodes.a.address)["pulled_recycled"] == 0


def test_an_object_spilled_on_its_node_is_pulled_from_the_spill_file(tmp_path, monkeypatch):
    nodes = TwoNodes(tmp_path, "--object-store-memory", str(100 * MiB))
    monkeypatch.setenv("RAYLITE_CLUSTER_TOKEN", nodes.token)
    try:
        rt, actor, other = _join(nodes)
        refs = [raylite.put(np.full(40 * MiB, i, dtype=np.uint8)) for i in range(1, 4)]
        assert not _segments(rt.node_tag, refs[0]), "the oldest should have been spilled"
        nbytes, total, _ = raylite.get(actor.check_ref.remote([refs[0]]))
        assert (nbytes, total) == (40 * MiB, 40 * MiB // 4096)
        assert _segments(other, refs[0])                   # a shared-memory copy on a
    finally:
        nodes.stop()


def _daemon_state(address: str) -> dict:
    """A node daemon's transfer counters (GetTransferStats)."""
    rt = raylite._runtime.current()
    conn = connect(address, rt._token)
    try:
        conn.send(m.GetTransferStats(1))
        return dict(conn.recv().stats)
    finally:
        conn.close()


def test_bad_transfer_messages_do_not_hurt_the_daemon(two_nodes):  # noqa: F811
    rt, actor, other = _join(two_nodes)
    token = rt._token
    ref = raylite.put(np.zeros(2 * MiB, dtype=np.uint8))
    size = rt._objects.entries[ref._id].data.size
    conn = connect(two_nodes.a.address, token)
    try:
        for bad in (m.PullObject(1, b"short", 5, "", "127.0.0.1:1"),   # refused by validate
                    m.PullObject(2, ref._id, -1, "", "127.0.0.1:1"),
                    m.ReadObject(3, ref._id, "big"),
                    m.DropCopies("nowhere", (ref._id,)),
                    (1, 2, 3)):
            conn.send(bad)
        conn.send(m.ReadObject(4, ref._id, size))               # a does not hold it
        reply = conn.recv()
        assert type(reply) is m.ObjectChunk and reply.length == 0 and "does not hold" in reply.error
        conn.send(m.PullObject(5, ref._id, size, "", "127.0.0.1:1"))   # nobody there
        reply = conn.recv()
        assert type(reply) is m.ObjectPulled and "127.0.0.1:1" in reply.error
        liar = Listener("127.0.0.1", 0, token)                 # a source that sends garbage
        t = threading.Thread(target=_lie, args=(liar,))
        t.start()
        try:
            conn.send(m.PullObject(6, ref._id, size, "", liar.address))
            reply = conn.recv()
        finally:
            t.join(10)
            liar.close()
        assert type(reply) is m.ObjectPulled and "expected offset 0" in reply.error
        assert not _segments(other, ref)                        # nothing half-written is left
    finally:
        conn.close()
    assert raylite.get(actor.check_ref.remote([ref])) == (2 * MiB, 0, False)  # a still pulls
    assert two_nodes.a.proc.poll() is None


def _lie(listener) -> None:
    conn = listener.accept()
    try:
        req = conn.recv()
        conn.send_raw(m.ObjectChunk(req.req, 4096, 16), b"x" * 16)  # not the next offset
        conn.sock.settimeout(10)
        conn.recv()  # until the puller hangs up
    except (EOFError, OSError, ValueError):
        pass
    finally:
        conn.close()
