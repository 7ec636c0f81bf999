"""Spilling: moving a sealed object file from shared memory to the spill directory.

    spill(src, dst, object_id, size)      (the node daemon calls it without its lock held)
      open src (O_NOFOLLOW) ─► fstat: ours, `size` bytes ─► header names object_id?
         │ no: not there, not ours, or still being written ──► False (it stays where it is)
         ▼ yes
      copy_file: dst.tmp (O_EXCL, 0600) ◄── sendfile in a loop ── size check ── fsync
         ─► rename to dst (a reader finds the whole file or none) ─► unlink src ─► True
      an OSError (ENOSPC, EIO, a short copy) is raised with dst.tmp removed, src untouched

A reader that mapped the segment before the unlink keeps its map; one that
comes after finds the spill file complete. The spill directory is made 0700
and checked to be ours (the node daemon uses _private_files.make_dir); spill files are 0600.
"""
from __future__ import annotations

import errno
import os

from .shm import HEAD_SIZE, BadObjectFile, check_head, not_ours, open_object, unlink

_CHUNK = 1 << 30   # sendfile(2) moves at most ~2 GiB per call: ask for 1 GiB at a time


def spill(src: str, dst: str, object_id: bytes, size: int) -> bool:
    """Moves a sealed object file from `src` to `dst`; False when there is nothing of ours
    to move (gone, another user's file, or still being written)."""
    try:
        fd = open_object(src)
    except (FileNotFoundError, BadObjectFile):
        return False
    try:
        st = os.fstat(fd)
        if not_ours(st) or st.st_size != size or check_head(os.pread(fd, HEAD_SIZE, 0), object_id):
            return False
        copy_file(fd, size, dst)
    finally:
        os.close(fd)
    unlink(src)
    return True


def copy_file(src_fd: int, size: int, dst: str) -> None:
    """Copies `size` bytes of src_fd to `dst`: all of them or an OSError, synced to disk,
    and `dst` appears only once complete."""
    tmp = dst + ".tmp"
    unlink(tmp)   # left by a copy that died half way
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        done = 0
        while done < size:
            n = os.sendfile(out, src_fd, done, min(size - done, _CHUNK))
            if n == 0:
                raise OSError(errno.EIO, f"the object file ended after {done} of {size} bytes "
                                         f"while copying it to {dst}")
            done += n
        written = os.fstat(out).st_size
        if written != size:
            raise OSError(errno.EIO, f"copying an object to {dst} wrote {written} of {size} bytes")
        os.fsync(out)
    except BaseException:
        os.close(out)
        unlink(tmp)
        raise
    os.close(out)
    os.replace(tmp, dst)
