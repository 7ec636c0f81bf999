"""Another user plants files at raylite's shared-memory names: nothing of theirs is unpickled.

Names under /dev/shm are public and a name is free again once its object spills, so the
attacker (nobody) waits for a spill and puts a pickle, a symlink or a FIFO there; or it
guesses the next object id from a segment name (random per-process prefix + a counter).
"""
import importlib.util
import os
import pathlib
import shutil
import threading

import numpy as np
import pytest

import raylite
from raylite import _ids
from raylite._object_store import shm
from raylite.exceptions import ObjectLostError, RaySystemError

MiB = 2**20


@pytest.fixture
def evil_pickle():
    """conftest.py's evil_pickle (every test folder's conftest is a module named `conftest`,
    so it is loaded by path)."""
    spec = importlib.util.spec_from_file_location(
        "security_conftest", pathlib.Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.evil_pickle


@pytest.fixture
def small_store():
    raylite.init(num_cpus=1, object_store_memory=100 * MiB)
    yield raylite
    raylite.shutdown()


@pytest.fixture
def planted():
    """Paths the attacker created; removed at the end (we are root)."""
    paths = []
    yield paths
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def _spilled(r):
    """A ref whose segment was spilled to disk to make room: its shm name is free."""
    a = r.put(np.full(60 * MiB, 1, dtype=np.uint8))
    b = r.put(np.full(60 * MiB, 2, dtype=np.uint8))
    rt = raylite._runtime.current()
    path = shm.segment_path(rt.node_tag, a._id)
    assert not os.path.exists(path), "the object did not spill"
    return a, b, path, rt._core.objects.entries[a._id].data.size


def _payload(kind, evil, oid):
    if kind == "header":  # passes every check but the owner's (the size too: see _plant)
        return shm._HEAD.pack(shm.MAGIC, oid, 0, len(evil)) + evil
    return evil


def _plant(attacker, kind, path, data, size=0):
    """The attacker creates `kind` at path; files get `data`, zero-filled up to `size`."""
    bait = os.path.join(shm.SHM_DIR, f"evil_{os.urandom(6).hex()}")
    attacker(f"""
import os
kind, path, bait, data = {kind!r}, {path!r}, {bait!r}, bytes.fromhex({data.hex()!r})
def write(p):
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, data)
    os.ftruncate(fd, max({size}, len(data)))
    os.close(fd)
if kind == "symlink":
    write(bait)
    os.symlink(bait, path)
elif kind == "fifo":
    os.mkfifo(path, 0o666)
else:
    write(path)
""")
    return bait


def _in_thread(fn, planted_path):
    """Runs fn with a bound: a reader blocked on a FIFO is released and the test fails."""
    out = []

    def run():
        try:
            out.append(("ok", fn()))
        except Exception as e:
            out.append(("error", e))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():
        os.close(os.open(planted_path, os.O_WRONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail(f"reading the object blocked on {planted_path}")
    return out[0]


@pytest.mark.parametrize("kind", ["pickle", "header", "symlink", "fifo"])
def test_file_planted_after_a_spill_is_never_read(small_store, attacker, evil_pickle, tmp_path,
                                                  planted, kind):
    r = small_store
    canary = tmp_path / "canary"
    a, _, path, size = _spilled(r)
    planted.append(path)
    planted.append(_plant(attacker, kind, path, _payload(kind, evil_pickle(canary), a._id), size))

    status, arr = _in_thread(lambda: r.get(a), path)
    assert status == "ok", arr
    assert arr.nbytes == 60 * MiB and arr[0] == 1 and arr[-1] == 1   # read from the spill file

    @r.remote
    def ends(x):
        return int(x[0]), int(x[-1])

    status, got = _in_thread(lambda: r.get(ends.remote(a), timeout=60), path)
    assert (status, got) == ("ok", (1, 1))
    assert not canary.exists(), "bytes planted by another user were unpickled"


def test_planted_file_with_no_spill_file_is_a_clear_error(small_store, attacker, evil_pickle,
                                                          tmp_path, planted):
    r = small_store
    canary = tmp_path / "canary"
    a, _, path, size = _spilled(r)
    planted.append(path)
    _plant(attacker, "header", path, _payload("header", evil_pickle(canary), a._id), size)
    os.unlink(shm.spill_path(shm.spill_dir(raylite._runtime.current().session_dir), a._id))
    with pytest.raises(ObjectLostError) as info:
        r.get(a)
    text = str(info.value)
    assert path in text and "belongs to uid 65534" in text and "unpickled" in text

    @r.remote
    def ends(x):
        return int(x[0]), int(x[-1])

    with pytest.raises(ObjectLostError) as info:
        r.get(ends.remote(a), timeout=60)
    assert path in str(info.value)
    assert not canary.exists()


def test_name_squatted_before_the_write_fails_that_put_clearly(small_store, attacker, evil_pickle,
                                                               tmp_path, planted):
    r = small_store
    canary = tmp_path / "canary"
    tag = raylite._runtime.current().node_tag
    _, prefix, counter = _ids._state  # (fork generation, prefix, counter)
    nxt = int(repr(counter)[len("count("):-1])   # the ids this process hands out next
    for n in range(nxt, nxt + 5):
        path = shm.segment_path(tag, prefix + n.to_bytes(8, "big"))
        planted.append(path)
        _plant(attacker, "pickle", path, evil_pickle(canary))
    with pytest.raises(RaySystemError) as info:
        r.put(np.ones(2 * MiB, dtype=np.uint8))
    text = str(info.value)
    assert "exists already" in text and "owner uid 65534" in text and planted[0] in text
    if os.path.exists(planted[0]):  # (a root daemon unlinks it when it frees the failed put)
        with open(planted[0], "rb") as f:
            assert f.read() == evil_pickle(canary), "the planted file was written into"
    for p in planted:
        if os.path.exists(p):
            os.unlink(p)
    assert int(r.get(r.put(np.ones(2 * MiB, dtype=np.uint8))).sum()) == 2 * MiB
    assert not canary.exists()


def test_file_at_the_spill_path_that_is_not_ours_is_never_read(small_store, attacker, evil_pickle,
                                                               tmp_path, planted):
    """The spill dir is 0700, so no other user can get a file in; were one there anyway
    (a copy by an admin, a restored backup), the owner check still holds."""
    r = small_store
    canary = tmp_path / "canary"
    a, _, path, size = _spilled(r)
    bait = _plant(attacker, "symlink", path, _payload("header", evil_pickle(canary), a._id), size)
    planted += [path, bait]
    spilled = shm.spill_path(shm.spill_dir(raylite._runtime.current().session_dir), a._id)
    os.unlink(spilled)
    shutil.copy(bait, spilled)
    os.chown(spilled, 65534, 65534)
    with pytest.raises(ObjectLostError) as info:
        r.get(a)
    assert spilled in str(info.value) and "belongs to uid 65534" in str(info.value)
    assert not canary.exists()
