"""A daemon's log file, rotated by size so it never grows without bound.

`raylite start` appends a daemon's stderr to <temp>/raylite_{head,node}.log. The daemon
logs through the root logger; RotatingStderr is its one handler (installed after the
zygote fork, so workers never carry it):

    log record ─► "time level logger: message"
               ─► fstat(fd 2): would it pass max_bytes? ─► rotate:
                    log.N-1 → log.N, ..., log → log.1 (the oldest is replaced),
                    open a fresh private log (0600, O_NOFOLLOW), dup2 it onto fd 2
               ─► write(2) on fd 2 (the log file)

So on disk there are at most 1 + backup_count files, each at most max_bytes (or one
record, if a single record is longer). Writes that bypass logging (a traceback printed
by the interpreter, the zygote's own stderr) land in the current file and count at the
next record. Several daemons may
share one file (nodes share raylite_node.log): each rotates when the file its fd 2 names
is full, so every file stays bounded; a rename race between them can only cut a file
short. Rotation is rare and costs a few renames; each record costs one fstat.
"""
from __future__ import annotations

import logging
import os

from .. import _private_files as private


class RotatingStderr(logging.Handler):
    def __init__(self, path: str, max_bytes: int, backup_count: int, fd: int = 2):
        super().__init__(logging.WARNING)
        self.path, self.max_bytes, self.backup_count, self.fd = path, max_bytes, backup_count, fd
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    @classmethod
    def install(cls, path: str, max_bytes: int, backup_count: int) -> "RotatingStderr":
        """Makes this the root logger's only handler (stderr is this file already)."""
        handler = cls(path, max_bytes, backup_count)
        root = logging.getLogger()
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(handler)
        return handler

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            size = os.fstat(self.fd).st_size  # handle() holds our lock
            if size and size + len(data) > self.max_bytes:
                self.rotate()
            os.write(self.fd, data)
        except Exception:
            self.handleError(record)

    def rotate(self) -> None:
        """Shifts the old files up by one and starts a fresh file on our fd."""
        fd = private.rotate(self.path, self.backup_count)
        try:
            os.dup2(fd, self.fd)
        finally:
            os.close(fd)
