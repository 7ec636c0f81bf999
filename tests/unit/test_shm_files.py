"""Object files: the layout, the writer, and the checks a reader makes before it unpickles."""
import os
import pickle
import threading

import numpy as np
import pytest

from raylite._object_store import shm
from raylite._serialization import serialize_with_refs

OID = bytes(range(16))
NOBODY = 65534


def _layout(value):
    data, buffers, _ = serialize_with_refs(value)
    return shm.layout(data, buffers)


def _write(path, value, oid=OID):
    lay = _layout(value)
    shm.write_segment(str(path), lay, oid)
    return lay.size


def test_write_map_decode_round_trip(tmp_path):
    value = {"a": np.arange(1000, dtype=np.int64), "b": [np.ones(5), b"x" * 200_000], "c": "text"}
    path = tmp_path / "obj"
    size = _write(path, value)
    assert os.path.getsize(path) == size
    assert os.stat(path).st_mode & 0o777 == 0o600
    out = shm.decode(shm.map_object(str(path), OID, size))
    assert np.array_equal(out["a"], value["a"]) and not out["a"].flags.writeable
    assert out["b"][1] == value["b"][1] and out["c"] == "text"


def test_framed_inline_values_still_decode():
    value = [np.arange(10), np.zeros(3)]
    framed = shm.frame(_layout(value))
    out = shm.decode(framed)
    assert np.array_equal(out[0], value[0]) and np.array_equal(out[1], value[1])


def test_writes_come_back_short_and_the_object_is_still_whole(tmp_path, monkeypatch):
    real = os.pwritev

    def short(fd, views, offset):  # the kernel may write less than asked (>2 GiB, signals)
        return real(fd, [memoryview(views[0]).cast("B")[:1000]], offset)

    monkeypatch.setattr(os, "pwritev", short)
    value = np.arange(50_000, dtype=np.int32)
    path = tmp_path / "obj"
    size = _write(path, value)
    monkeypatch.undo()
    assert np.array_equal(shm.decode(shm.map_object(str(path), OID, size)), value)


def _reject(path, size=None, oid=OID, match=None):
    with pytest.raises(shm.BadObjectFile, match=match) as info:
        shm.map_object(str(path), oid, size if size is not None else os.path.getsize(path))
    assert str(path) in str(info.value)


def test_a_symlink_is_never_followed(tmp_path):
    good = tmp_path / "good"
    size = _write(good, "ours, and still refused through a link")
    link = tmp_path / "link"
    link.symlink_to(good)
    _reject(link, size, match="symbolic link")


def test_group_or_world_access_is_refused(tmp_path):
    path = tmp_path / "obj"
    _write(path, b"x" * 1000)
    os.chmod(path, 0o644)
    _reject(path, match="mode is 0o644")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_another_users_file_is_refused(tmp_path):
    path = tmp_path / "obj"
    _write(path, b"x" * 1000)
    os.chown(path, NOBODY, NOBODY)
    _reject(path, match=f"belongs to uid {NOBODY}")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path, 0o600)
    result = []
    t = threading.Thread(target=lambda: result.append(pytest.raises(
        shm.BadObjectFile, shm.map_object, str(path), OID, 100)), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # release the blocked reader so no thread is left behind
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail("opening a FIFO at an object's name blocked the reader")
    assert "not a regular file" in str(result[0].value)


def test_plain_pickle_without_header_is_refused(tmp_path):
    path = tmp_path / "planted"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, pickle.dumps(("evil", "payload")) + bytes(100))
    os.close(fd)
    _reject(path, match="raylite's object header")


def test_header_naming_another_object_is_refused(tmp_path):
    path = tmp_path / "obj"
    other = b"\x01" * 16
    _write(path, b"x" * 1000, oid=other)
    _reject(path, match=f"names object {other.hex()}")


def test_size_must_match_the_objects(tmp_path):
    path = tmp_path / "obj"
    size = _write(path, b"x" * 1000)
    _reject(path, size + 4096, match=f"holds {size} bytes where the object has {size + 4096}")
    with open(path, "r+b") as f:  # cut short, and the size claimed matches: the header catches it
        f.truncate(size - 10)
    with pytest.raises(ValueError, match="header describes"):
        shm.decode(shm.map_object(str(path), OID, size - 10))


def test_writer_never_writes_into_a_planted_file(tmp_path):
    path = tmp_path / "obj"
    path.write_bytes(b"planted")
    with pytest.raises(shm.BadObjectFile, match="exists already") as info:
        _write(path, b"x" * 1000)
    assert str(path) in str(info.value)
    assert path.read_bytes() == b"planted"


def test_reuse_refuses_a_file_that_is_not_ours(tmp_path):
    path = tmp_path / "pooled"
    _write(path, b"y" * 5000)
    os.chmod(path, 0o666)
    with pytest.raises(shm.BadObjectFile, match="cannot be reused"):
        shm.write_segment(str(path), _layout(b"z" * 4000), OID, reuse=True)


def test_reuse_writes_the_header_last(tmp_path, monkeypatch):
    """Until the writer is done the file does not name its object (the spiller waits for that)."""
    path = tmp_path / "pooled"
    _write(path, b"old" * 5000, oid=b"\x02" * 16)
    lay = _layout(np.ones(4000, dtype=np.uint8))
    seen = []

    class Spy:
        def __init__(self, mm):
            self.mm = mm

        def __setitem__(self, key, value):
            if key != slice(None, shm.HEAD_SIZE):
                seen.append(shm.check_head(self.mm, OID))
            self.mm[key] = value

    real = shm._writable_map
    monkeypatch.setattr(shm, "_writable_map", lambda p, total: Spy(real(p, total)))
    monkeypatch.setattr(shm, "_kept", None)
    shm.write_segment(str(path), lay, OID, reuse=True)
    assert seen and all(why is not None for why in seen)
    assert shm.check_head(shm.map_object(str(path), OID, lay.size), OID) is None
