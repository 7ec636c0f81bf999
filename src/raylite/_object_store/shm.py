"""Objects in shared memory: one file per object under /dev/shm, read zero-copy.

    serialize: pickle protocol 5 ─► (pickle bytes, out-of-band buffers)
    small (≤ INLINE_LIMIT) ─► bytes that travel in messages ("framed" when buffers exist)
    large ─► /dev/shm/raylite_<node>_<object id>, written once with write(2)
              ┌────────┬──────────────┬──────────┬─────────┬──────────┐
              │ "RLO1" │ n, pickle len│ offsets  │ pickle  │ buffers… │ (64-byte aligned)
              └────────┴──────────────┴──────────┴─────────┴──────────┘
    read: mmap(PROT_READ) ─► pickle.loads(..., buffers=views into the map)
          numpy arrays come back read-only and share the segment's memory.

A spilled object has the same layout in a file on disk and is mapped the
same way. Unlinking a segment never disturbs a reader that mapped it.
"""
from __future__ import annotations

import mmap
import os
import pickle
import struct
from typing import Any, NamedTuple

INLINE_LIMIT = 100 * 1024
MAGIC = b"RLO1"
_HEAD = struct.Struct("<4sIQ")
_ENTRY = struct.Struct("<QQ")
_ALIGN = 64
SHM_DIR = "/dev/shm"


class ShmObject(NamedTuple):
    """Where a large object lives: in the shared memory of node `node`."""
    object_id: bytes
    size: int
    node: str


def segment_path(node: str, object_id: bytes) -> str:
    return os.path.join(SHM_DIR, f"raylite_{node}_{object_id.hex()}")


def spill_path(spill_dir: str, object_id: bytes) -> str:
    return os.path.join(spill_dir, object_id.hex())


def _layout(data: bytes, raws: list) -> tuple[bytes, list[int], int]:
    n = len(raws)
    offset = _HEAD.size + n * _ENTRY.size + len(data)
    offsets = []
    for r in raws:
        offset = (offset + _ALIGN - 1) // _ALIGN * _ALIGN
        offsets.append(offset)
        offset += r.nbytes
    head = _HEAD.pack(MAGIC, n, len(data)) + b"".join(
        _ENTRY.pack(o, r.nbytes) for o, r in zip(offsets, raws))
    return head, offsets, offset


def frame(data: bytes, buffers: list) -> bytes:
    """The framed layout as bytes (for small values that still had buffers)."""
    raws = [b.raw() for b in buffers]
    head, offsets, total = _layout(data, raws)
    out = bytearray(total)
    pos = len(head) + len(data)
    out[:pos] = head + data
    for o, r in zip(offsets, raws):
        out[o:o + r.nbytes] = r
    return bytes(out)


def total_size(data: bytes, buffers: list) -> int:
    return len(data) + sum(b.raw().nbytes for b in buffers)


def write_segment(path: str, data: bytes, buffers: list, reuse: bool = False) -> int:
    """Writes the object at `path` (each buffer copied once); returns its size.

    reuse: the file is a recycled segment at least this large whose pages
    exist already: map it and copy in (memory speed), then cut it to size.
    """
    raws = [b.raw() for b in buffers]
    head, offsets, total = _layout(data, raws)
    if reuse:
        mm = _writable_map(path, total)
        pos = len(head) + len(data)
        mm[:pos] = head + data
        for o, r in zip(offsets, raws):
            mm[o:o + r.nbytes] = r.cast("B") if r.ndim != 1 or r.format != "B" else r
        return total
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        _write_all(fd, head + data)
        pos = len(head) + len(data)
        for o, r in zip(offsets, raws):
            if o > pos:
                _write_all(fd, bytes(o - pos))
            _write_all(fd, r)
            pos = o + r.nbytes
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return total


# The last recycled segment this process wrote stays mapped: a put loop that gets the
# same segment back writes at memory speed, without mapping and faulting it in again.
# One entry, at most _KEEP_MAPPED bytes, so a file unlinked meanwhile pins little.
_KEEP_MAPPED = 512 * 2**20
_kept: tuple | None = None   # ((device, inode), mapped length, mmap)


def _writable_map(path: str, total: int) -> mmap.mmap:
    global _kept
    fd = os.open(path, os.O_RDWR)
    try:
        st = os.fstat(fd)
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


def _write_all(fd: int, buf: Any) -> None:
    mv = memoryview(buf).cast("B")
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def map_file(path: str) -> mmap.mmap:
    """Maps an object file read-only; FileNotFoundError when it is not there."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def decode(buf: Any) -> Any:
    """A value from bytes: plain pickle, or the framed layout (a map or bytes)."""
    mv = memoryview(buf)
    if bytes(mv[:4]) != MAGIC:
        return pickle.loads(mv)
    _, n, plen = _HEAD.unpack_from(mv, 0)
    start = _HEAD.size + n * _ENTRY.size
    buffers = []
    for i in range(n):
        o, size = _ENTRY.unpack_from(mv, _HEAD.size + i * _ENTRY.size)
        buffers.append(mv[o:o + size])
    return pickle.loads(mv[start:start + plen], buffers=buffers)


def copy_file(src: str, dst: str) -> None:
    """Copies an object file (spilling and restoring); dst appears atomically."""
    tmp = dst + ".tmp"
    with open(src, "rb") as fi, open(tmp, "wb") as fo:
        os.sendfile(fo.fileno(), fi.fileno(), 0, os.fstat(fi.fileno()).st_size)
    os.replace(tmp, dst)


def unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
