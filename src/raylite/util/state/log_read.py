"""Reading a log file of ours: its last lines, then (follow) new ones as they are written.

    read_lines(path, tail, follow) ─► open_log: O_NOFOLLOW, ours alone (_private_files)
        ─► the last `tail` lines ─► (sentinel: None) ─► with follow, each new whole line;
           a rotated file (another inode at the path) is reopened from its start

logs.py (a whole file) and task_logs.py (one task's lines of a worker's files) read with it.
"""
from __future__ import annotations

import os
import time
from typing import Iterator


def open_log(path: str):
    """The log file, opened without following a link and only if it is ours
    (_private_files: NotPrivateError names the path otherwise)."""
    from raylite import _private_files as private

    return os.fdopen(private.open_file(path), "rb")


def read_lines(path: str, tail: int, follow: bool, interval: float,
               sentinel: bool = False, until=None) -> Iterator[str | None]:
    """The file's last `tail` lines, then (follow) new ones; with `sentinel`, None between.
    Following stops when `until()` says so (asked whenever the file has nothing new)."""
    f = open_log(path)
    try:
        lines = f.read().splitlines(keepends=True)
        for line in lines if tail is None or tail < 0 else lines[-tail:] if tail else []:
            yield line.decode("utf-8", "replace")
        if sentinel:
            yield None
        partial = b""
        while follow:
            chunk = f.read()
            if chunk:
                *done, partial = (partial + chunk).split(b"\n")
                for line in done:
                    yield line.decode("utf-8", "replace") + "\n"
                continue
            if rotated(f, path):
                f.close()
                f, partial = open_log(path), b""
                continue
            if until is not None and until():
                return
            time.sleep(interval)
    finally:
        f.close()


def rotated(f, path: str) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except OSError:
        return False
