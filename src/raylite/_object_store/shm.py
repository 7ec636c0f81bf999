"""Objects in shared memory: one file per object under /dev/shm, read zero-copy.

    serialize: pickle protocol 5 ─► (pickle bytes, out-of-band buffers) ─► layout()
    small (≤ INLINE_LIMIT) ─► bytes that travel in messages ("framed" when buffers exist)
    large ─► /dev/shm/raylite_<node>_<object id>, written once (write_segment)
              ┌────────┬───────────┬──────────────┬─────────┬─────────┬──────────┐
              │ "RLO2" │ object id │ n, pickle len│ offsets │ pickle  │ buffers… │ (64-byte aligned)
              └────────┴───────────┴──────────────┴─────────┴─────────┴──────────┘
             the first 32 bytes (magic, id, n, length) are written LAST: a file whose
             header names its object is complete ("sealed"); until then it is not, and
             the spiller leaves it alone (spill.py).
    read: map_object ─► mmap(PROT_READ) ─► decode: pickle.loads(..., buffers=views into the map)
          numpy arrays come back read-only and share the segment's memory.

Names under /dev/shm are visible to every user of the machine, and a name is
free again once its object spills or is freed, so a file at an object's name
may be another user's. Bytes we did not write are never unpickled:
map_object opens with O_NOFOLLOW|O_NONBLOCK (no symlink, no FIFO that would
block), then one fstat requires a regular file of our uid with no access for
group or others (we create 0600) whose size is the object's size, then the
header must name the object. Anything else is BadObjectFile naming the path
and the reason. The writer creates with O_EXCL, so it never writes into a
file someone planted, and a recycled segment it writes into passes the same
fstat check (open_recycled). A freed segment is recycled only when nobody can
read it any more: its owner says so, or (unused) it was renamed off its
object's name and no process has it open or mapped.

A spilled object has the same layout in a file in the session's spill
directory (spill_dir(), 0700) and is mapped the same way. Unlinking a
segment never disturbs a reader that mapped it.
"""
from __future__ import annotations

import errno
import mmap
import os
import pickle
import stat
import struct
from typing import Any, NamedTuple

from ..exceptions import ObjectStoreFullError, OutOfDiskError, RaySystemError

INLINE_LIMIT = 100 * 1024
MAGIC = b"RLO2"
_HEAD = struct.Struct("<4s16sIQ")   # magic, object id, buffer count, pickle length
HEAD_SIZE = _HEAD.size
_ENTRY = struct.Struct("<QQ")       # buffer offset, buffer length
_ALIGN = 64
_NO_ID = bytes(16)                  # framed values that travel inline belong to no file
_IOV_MAX = 1024
SHM_DIR = "/dev/shm"
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK


class ShmObject(NamedTuple):
    """Where a large object lives: in the shared memory of node `node` (its tag), whose
    daemon other nodes pull it from at `at` ("" when unknown); size: bytes of its file."""
    object_id: bytes
    size: int
    node: str
    at: str = ""


class BadObjectFile(Exception):
    """A file at an object's name that must not be read (not ours, not a regular file,
    not that object, or the wrong size): the message names the path and the reason."""


class Layout(NamedTuple):
    data: bytes       # the pickle
    raws: list        # the out-of-band buffers, as flat byte views
    offsets: list     # where each buffer starts in the file
    size: int         # bytes of the whole file


def segment_path(node: str, object_id: bytes) -> str:
    return os.path.join(SHM_DIR, f"raylite_{node}_{object_id.hex()}")


def spill_dir(session_dir: str) -> str:
    """The node's spill directory: the daemon makes it (0700) and names the session."""
    return os.path.join(session_dir, "spill")


def spill_path(spill_dir: str, object_id: bytes) -> str:
    return os.path.join(spill_dir, object_id.hex())


def layout(data: bytes, buffers: list) -> Layout:
    raws = [b.raw() for b in buffers]
    offset = _HEAD.size + len(raws) * _ENTRY.size + len(data)
    offsets = []
    for r in raws:
        offset = (offset + _ALIGN - 1) // _ALIGN * _ALIGN
        offsets.append(offset)
        offset += r.nbytes
    return Layout(data, raws, offsets, offset)


def _head(lay: Layout, object_id: bytes) -> bytes:
    return _HEAD.pack(MAGIC, object_id, len(lay.raws), len(lay.data))


def _entries(lay: Layout) -> bytes:
    return b"".join(_ENTRY.pack(o, r.nbytes) for o, r in zip(lay.offsets, lay.raws))


def frame(lay: Layout) -> bytes:
    """The framed layout as bytes (for small values that still had buffers)."""
    out = bytearray(lay.size)
    head = _head(lay, _NO_ID) + _entries(lay)
    pos = len(head) + len(lay.data)
    out[:pos] = head + lay.data
    for o, r in zip(lay.offsets, lay.raws):
        out[o:o + r.nbytes] = r
    return bytes(out)


def write_segment(path: str, lay: Layout, object_id: bytes, reuse: bool = False,
                  sync: bool = False) -> None:
    """Writes the object at `path` (each buffer copied once), its header last.

    reuse: the file is a recycled segment at least this large whose pages
    exist already: map it and copy in (memory speed), then cut it to size.
    sync: fsync before returning (a file on disk: a full disk shows here).
    """
    if reuse:
        mm = _writable_map(path, lay.size)
        for o, r in zip(lay.offsets, lay.raws):
            mm[o:o + r.nbytes] = r.cast("B") if r.ndim != 1 or r.format != "B" else r
        entries = _entries(lay)
        pos = _HEAD.size + len(entries)
        mm[_HEAD.size:pos] = entries
        mm[pos:pos + len(lay.data)] = lay.data
        mm[:_HEAD.size] = _head(lay, object_id)
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise BadObjectFile(f"{path} exists already ({_describe(path)}), so the object was "
                            "not written there. Another user of this machine may have created "
                            "it to take over raylite's names: remove it, and check who did."
                            ) from None
    try:
        parts: list = [_entries(lay), lay.data]
        pos = _HEAD.size + len(parts[0]) + len(lay.data)
        for o, r in zip(lay.offsets, lay.raws):
            if o > pos:
                parts.append(bytes(o - pos))
            parts.append(r)
            pos = o + r.nbytes
        _pwrite_all(fd, parts, _HEAD.size)
        _pwrite_all(fd, [_head(lay, object_id)], 0)
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def _pwrite_all(fd: int, parts: list, offset: int) -> None:
    """Writes the parts back to back from `offset`, however short each write comes back."""
    views = [v for v in (memoryview(p).cast("B") for p in parts) if v.nbytes]
    while views:
        n = os.pwritev(fd, views[:_IOV_MAX], offset)
        if n == 0:
            raise OSError(errno.EIO, "write(2) wrote nothing")
        offset += n
        while views and n >= len(views[0]):
            n -= len(views.pop(0))
        if n:
            views[0] = views[0][n:]


# The last recycled segment this process wrote stays mapped: a put loop that gets the
# same segment back writes at memory speed, without mapping and faulting it in again.
# One entry, at most _KEEP_MAPPED bytes, so a file unlinked meanwhile pins little.
_KEEP_MAPPED = 512 * 2**20
_kept: tuple | None = None   # ((device, inode), mapped length, mmap)


def _writable_map(path: str, total: int) -> mmap.mmap:
    global _kept
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        why = not_ours(st)
        if why:
            raise BadObjectFile(f"{path} cannot be reused: {why}")
        key = (st.st_dev, st.st_ino)
        os.ftruncate(fd, total)
        if _kept is not None and _kept[0] == key and _kept[1] == total:
            return _kept[2]
        mm = mmap.mmap(fd, total, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
    finally:
        os.close(fd)
    old, _kept = _kept, ((key, total, mm) if total <= _KEEP_MAPPED else None)
    if old is not None:
        old[2].close()
    return mm


_uid: int | None = None


def not_ours(st: os.stat_result) -> str | None:
    """Why a file we are about to read or reuse is not one we wrote (None: it is ours)."""
    global _uid
    if _uid is None:
        _uid = os.geteuid()
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_uid != _uid:
        return f"it belongs to uid {st.st_uid}, not to us (uid {_uid})"
    if st.st_mode & 0o077:
        return f"its mode is {st.st_mode & 0o777:#o}: group or others have access (we make 0600)"
    return None


def unused(path: str) -> bool:
    """True when no process has the file at `path` open or mapped, so its pages may be
    written for another object: a write lease (fcntl F_SETLEASE) can be taken only on a
    file nobody else holds open, and a mapping holds its file open. The lease is given
    back at once. False when the lease is refused, the file is not ours, or it is gone.
    Only for a file no reader opens by this name any more (renamed into the pool first):
    an open racing the lease would block a moment and signal this process (SIGIO)."""
    import fcntl

    try:
        fd = os.open(path, _READ)
    except OSError:
        return False
    try:
        if not_ours(os.fstat(fd)):
            return False
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return True
    except OSError:   # EAGAIN: open or mapped elsewhere (or leases are off here)
        return False
    finally:
        os.close(fd)


def open_recycled(path: str, size: int) -> int:
    """A read-write descriptor of the pooled segment at `path`, cut to `size` bytes: its
    pages exist already. Raises BadObjectFile when it is not ours or too small (the caller
    removes it and writes a new file instead), FileNotFoundError when it is gone."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        why = not_ours(st) or (f"it holds {st.st_size} bytes, fewer than {size}"
                               if st.st_size < size else None)
        if why:
            raise BadObjectFile(f"{path} cannot be reused: {why}")
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_object(path: str) -> int:
    """A file descriptor for reading an object file: FileNotFoundError when it is not
    there, BadObjectFile when it is a symbolic link or cannot be opened."""
    try:
        return os.open(path, _READ)
    except FileNotFoundError:
        raise
    except OSError as e:
        why = "it is a symbolic link" if e.errno == errno.ELOOP else f"it cannot be opened ({e})"
        raise BadObjectFile(f"{path}: {why}") from None


def check_head(buf: Any, object_id: bytes) -> str | None:
    """Why the bytes at the start of an object file are not that object's header."""
    if len(buf) < _HEAD.size:
        return "it is too short to hold an object"
    magic, oid, n, plen = _HEAD.unpack_from(buf, 0)
    if magic != MAGIC:
        return "it does not start with raylite's object header"
    if oid != object_id:
        return f"its header names object {oid.hex()}"
    return None


def map_object(path: str, object_id: bytes, size: int) -> mmap.mmap:
    """Maps an object file read-only after checking it is ours and that object
    (one open, fstat, mmap); FileNotFoundError when it is not there."""
    fd = _open_ours(path, size)
    try:
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    why = check_head(mm, object_id)
    if why:
        mm.close()
        raise BadObjectFile(f"{path}: {why}")
    return mm


def open_checked(path: str, object_id: bytes, size: int) -> int:
    """A read-only descriptor of an object file, checked as map_object checks (its header
    read with pread), for a sender that hands the file to the kernel (sendfile)."""
    return _open_ours(path, size, object_id)


def _open_ours(path: str, size: int, object_id: bytes | None = None) -> int:
    """open_object, then fstat: ours, a regular file of `size` bytes; and, given
    `object_id`, a header naming it (else map_object checks the header on its map)."""
    fd = open_object(path)
    try:
        st = os.fstat(fd)
        why = not_ours(st)
        if why is None and st.st_size != size:
            why = f"it holds {st.st_size} bytes where the object has {size}"
        if why is None and object_id is not None:
            why = check_head(os.pread(fd, _HEAD.size, 0), object_id)
        if why:
            raise BadObjectFile(f"{path}: {why}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def decode(buf: Any) -> Any:
    """A value from bytes: plain pickle, or the framed layout (a map or bytes)."""
    mv = memoryview(buf)
    if bytes(mv[:4]) != MAGIC:
        return pickle.loads(mv)
    _, _, n, plen = _HEAD.unpack_from(mv, 0)
    start = _HEAD.size + n * _ENTRY.size
    end = start + plen
    if end > len(mv):
        raise ValueError(f"an object's header describes {end} bytes but it has {len(mv)}")
    buffers = []
    for i in range(n):
        o, size = _ENTRY.unpack_from(mv, _HEAD.size + i * _ENTRY.size)
        if o < end or o + size > len(mv):
            raise ValueError(f"an object's buffer {i} lies outside its {len(mv)} bytes")
        buffers.append(mv[o:o + size])
    return pickle.loads(mv[start:end], buffers=buffers)


def write_error(e: BaseException, path: str, size: int, to_disk: bool) -> BaseException:
    """The error a put raises when writing its object to `path` failed (e when none is clearer)."""
    mb = f"{size / 2**20:.1f} MiB"
    if isinstance(e, BadObjectFile):
        return RaySystemError(f"Cannot store an object of {mb}: {e}")
    if not isinstance(e, OSError) or e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return e
    try:
        st = os.statvfs(os.path.dirname(path))
        free = f"{st.f_bavail * st.f_frsize / 2**20:.1f} MiB"
    except OSError:
        free = "an unknown amount"
    if to_disk:
        return OutOfDiskError(f"Out of disk space: writing an object of {mb} to {path} failed "
                              f"({e.strerror}); {free} is free there. Free space on that disk, or "
                              "point the temp dir at a larger one (init(_temp_dir=...)).")
    return ObjectStoreFullError(f"Shared memory is full: writing an object of {mb} to {path} "
                                f"failed ({e.strerror}); {free} is free in {SHM_DIR}. Lower "
                                "object_store_memory in init() below the size of /dev/shm, or "
                                "enlarge /dev/shm.")


def _describe(path: str) -> str:
    try:
        st = os.lstat(path)
    except OSError as e:
        return str(e)
    return f"owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}"


def unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_node_segments(node: str) -> int:
    """Removes the segments a dead node daemon left (named raylite_<node>_*), only those that
    are our own regular files; returns how many. `node` is its node tag (12 hex digits)."""
    import glob

    me = os.geteuid()
    removed = 0
    for path in glob.glob(os.path.join(SHM_DIR, f"raylite_{glob.escape(node)}_*")):
        try:
            st = os.lstat(path)
            if st.st_uid == me and stat.S_ISREG(st.st_mode):
                os.unlink(path)
                removed += 1
        except FileNotFoundError:
            pass
    return removed
