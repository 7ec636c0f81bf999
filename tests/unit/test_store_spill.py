"""Spilling: the copy (complete, checked, synced, atomic) and the node daemon's handling of it.

The daemon tests run a NodeServer in this process (no listener, no workers) and feed its
reader loop one AllocObject at a time, so the lock and the files are the real ones.
"""
import errno
import os
import threading

import numpy as np
import pytest

from raylite import _private_files as private
from raylite._node.server import NodeServer, _Client
from raylite._object_store import shm, spill
from raylite._protocol import messages as m
from raylite._serialization import serialize_with_refs
from tiny_disk import tiny_disk

MiB = 2**20
OID = b"\x0a" * 16


def _lay(nbytes, fill=7):
    data, buffers, _ = serialize_with_refs(np.full(nbytes, fill, dtype=np.uint8))
    return shm.layout(data, buffers)


def _write(path, oid, nbytes, fill=7):
    lay = _lay(nbytes, fill)
    shm.write_segment(str(path), lay, oid)
    return lay.size


def _read(path, oid, size):
    return shm.decode(shm.map_object(str(path), oid, size))


@pytest.fixture
def files(tmp_path):
    out = tmp_path / "spill"
    private.make_dir(str(out))
    src = tmp_path / "segment"
    size = _write(src, OID, 3 * MiB)
    return src, out / OID.hex(), size


def _left(dst):
    return sorted(os.listdir(os.path.dirname(dst)))


def test_copy_goes_on_until_every_byte_is_there(files, monkeypatch):
    """sendfile(2) moves at most ~2 GiB per call: a 2.2 GiB object once spilled as 2 GiB."""
    src, dst, size = files
    real = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda o, i, off, n: real(o, i, off, min(n, 64 * 1024)))
    assert spill.spill(str(src), str(dst), OID, size)
    assert not src.exists() and os.path.getsize(dst) == size
    arr = _read(dst, OID, size)
    assert arr.nbytes == 3 * MiB and arr[0] == 7 and arr[-1] == 7
    assert os.stat(dst).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("failure", ["full disk", "source ends early", "lying count"])
def test_a_copy_that_falls_short_keeps_the_original(files, monkeypatch, failure):
    src, dst, size = files
    real = os.sendfile
    calls = []

    def broken(out, fd, offset, count):
        calls.append(offset)
        if failure == "lying count":   # says it copied everything, wrote nothing
            return count
        if len(calls) == 1:
            return real(out, fd, offset, count // 2)
        if failure == "full disk":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return 0

    monkeypatch.setattr(os, "sendfile", broken)
    with pytest.raises(OSError) as info:
        spill.spill(str(src), str(dst), OID, size)
    assert info.value.errno == (errno.ENOSPC if failure == "full disk" else errno.EIO)
    assert _left(dst) == [], "a partial spill file was left behind"
    monkeypatch.undo()
    arr = _read(src, OID, size)
    assert arr.nbytes == 3 * MiB and arr[-1] == 7


def test_only_sealed_files_of_ours_are_spilled(tmp_path, files):
    src, dst, size = files
    assert not spill.spill(str(tmp_path / "missing"), str(dst), OID, size)
    assert not spill.spill(str(src), str(dst), OID, size + 1)          # not the object's size
    assert not spill.spill(str(src), str(dst), b"\x0b" * 16, size)     # another object
    with open(src, "r+b") as f:                                        # header not written yet
        f.write(bytes(shm.HEAD_SIZE))
    assert not spill.spill(str(src), str(dst), OID, size)
    assert src.exists() and _left(dst) == []


def test_the_spill_dir_is_made_0700_and_checked(tmp_path):
    """The daemon makes its spill dir with the temp dir's own check (_private_files)."""
    path = tmp_path / "spill"
    private.make_dir(str(path))
    assert os.stat(path).st_mode & 0o777 == 0o700
    private.make_dir(str(path))   # ours already: fine
    os.chmod(path, 0o755)
    with pytest.raises(private.NotPrivateError, match="has mode 0755"):
        private.make_dir(str(path))
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(private.NotPrivateError, match="symbolic link"):
        private.make_dir(str(link))


@pytest.fixture
def small_disk(tmp_path):
    with tiny_disk(tmp_path / "tiny", 4) as mnt:
        yield mnt


def test_a_really_full_disk_fails_the_copy_and_keeps_the_original(tmp_path, small_disk):
    src = tmp_path / "segment"
    size = _write(src, OID, 6 * MiB, fill=3)
    dst = small_disk / OID.hex()
    with pytest.raises(OSError) as info:
        spill.spill(str(src), str(dst), OID, size)
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(small_disk) == []
    assert _read(src, OID, size)[-1] == 3


# -- the daemon ----------------------------------------------------------------------------
class _Listener:
    address = "127.0.0.1:1"

    def close(self):
        pass


class _Zygote:
    def stop(self):
        pass


class _Conn:
    peer = "test"

    def __init__(self, msg):
        self.msgs, self.sent = [msg], []

    def recv(self):
        if self.msgs:
            return self.msgs.pop()
        raise EOFError

    def send(self, msg):
        self.sent.append(msg)

    def close(self):
        pass


@pytest.fixture
def daemon(tmp_path):
    session = tmp_path / "session"
    session.mkdir(mode=0o700)
    node_id = bytes.fromhex(os.environ["RAYLITE_NODE_ID_PREFIX"]) + os.urandom(14)
    server = NodeServer(_Listener(), _Zygote(), {"CPU": 1.0, "object_store_memory": 10 * MiB},
                        str(session), 0, node_id=node_id)
    yield server
    server.stop()


def _alloc(server, oid, size):
    """One AllocObject through the daemon's reader loop, as a connection would send it."""
    conn = _Conn(m.AllocObject(1, oid, size, "127.0.0.1:5"))
    server._read_loop(_Client(conn))
    return conn.sent[-1]


def _put(server, oid, nbytes, fill=1, write=True):
    lay = _lay(nbytes, fill)
    reply = _alloc(server, oid, lay.size)
    assert reply.error is None
    if write:
        shm.write_segment(shm.segment_path(server.node_tag, oid), lay, oid, reply.reuse)
    return lay.size


A, B, C = b"A" * 16, b"B" * 16, b"C" * 16


def test_disk_full_while_spilling_fails_that_put_and_keeps_the_victim(daemon, monkeypatch):
    size_a = _put(daemon, A, 6 * MiB, fill=5)
    real = os.sendfile

    def fills_up(out, fd, offset, count):
        if offset == 0:
            return real(out, fd, offset, count // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "sendfile", fills_up)
    reply = _alloc(daemon, B, _lay(6 * MiB).size)
    monkeypatch.undo()
    assert reply.error and reply.out_of_disk
    assert "Out of disk space" in reply.error and daemon.spill_dir in reply.error
    assert os.listdir(daemon.spill_dir) == []
    assert _read(shm.segment_path(daemon.node_tag, A), A, size_a)[-1] == 5
    st = daemon.store.statistics()
    assert st["used"] == size_a and st["objects"] == 1 and st["spill_count"] == 0


def test_not_enough_disk_for_the_spill_is_out_of_disk_before_any_copy(daemon, monkeypatch):
    _put(daemon, A, 6 * MiB)

    class Small:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(os, "statvfs", lambda path: Small)
    monkeypatch.setattr(os, "sendfile", lambda *a: pytest.fail("copied with no room for it"))
    reply = _alloc(daemon, B, _lay(6 * MiB).size)
    monkeypatch.undo()
    assert reply.out_of_disk and "0.0 MiB free" in reply.error and "6.0 MiB" in reply.error
    assert daemon.store.statistics()["objects"] == 1


def test_spill_copy_runs_without_the_daemon_lock(daemon, monkeypatch):
    _put(daemon, A, 6 * MiB)
    real = os.sendfile
    free_while_copying = []

    def copy(out, fd, offset, count):
        t = threading.Thread(target=lambda: free_while_copying.append(
            daemon._lock.acquire(timeout=2) and (daemon._lock.release() or True)))
        t.start()
        t.join()
        return real(out, fd, offset, count)

    monkeypatch.setattr(os, "sendfile", copy)
    _put(daemon, B, 6 * MiB)
    assert free_while_copying and all(free_while_copying), "the copy ran under the daemon's lock"
    assert os.listdir(daemon.spill_dir) == [A.hex()]


def test_object_freed_during_its_spill_leaves_no_file(daemon, monkeypatch):
    _put(daemon, A, 6 * MiB)
    real = os.sendfile

    def copy_and_free(out, fd, offset, count):
        with daemon._lock:
            daemon._handle(_Client(_Conn(None)), m.FreeObjects((A,)))
        return real(out, fd, offset, count)

    monkeypatch.setattr(os, "sendfile", copy_and_free)
    _put(daemon, B, 6 * MiB)
    assert os.listdir(daemon.spill_dir) == []
    assert A not in daemon.store.objects


def test_victim_still_being_written_stays_in_shared_memory(daemon):
    """The writer seals the file (header last); the spiller copies only sealed files."""
    lay = _lay(6 * MiB, 9)
    assert _alloc(daemon, A, lay.size).error is None
    path = shm.segment_path(daemon.node_tag, A)
    shm.write_segment(path, lay, A)
    with open(path, "r+b") as f:   # as the file is until the writer's last write
        f.write(bytes(shm.HEAD_SIZE))
    _put(daemon, B, 6 * MiB)
    assert daemon.store.objects[A].in_shm and not daemon.store.objects[A].spilled
    assert os.path.getsize(path) == lay.size and os.listdir(daemon.spill_dir) == []
    assert daemon.store.statistics()["spill_count"] == 0


def test_a_pooled_segment_that_is_not_ours_is_not_reused(daemon):
    _put(daemon, A, 3 * MiB)
    with daemon._lock:
        daemon._handle(_Client(_Conn(None)), m.FreeObjects((A,), (A,)))
    (pool_id,) = daemon.store.pool
    pooled = daemon._pool_path(pool_id)
    os.chmod(pooled, 0o666)   # someone else could have written into it
    reply = _alloc(daemon, C, _lay(3 * MiB).size)
    assert reply.error is None and not reply.reuse
    assert not os.path.exists(pooled)
