"""A worker's output: kept in its own files, and sent to the driver of the job it serves.

    fd 1 / fd 2 ─► a pipe each ─► _pump thread (one per pipe, as before):
        bytes ─► WorkerLog: <session>/logs/worker-<worker id>-<pid>.out / .err, made on the
                 first byte (a worker that prints nothing leaves no file), rotated by size
                 at RAYLITE_ROTATION_MAX_BYTES (RAYLITE_ROTATION_BACKUP_COUNT kept: .1 .. .N)
        whole lines, while it serves a job ─► LogLines ─► node daemon ─► the job's driver

The files outlive the worker and the cluster (the daemon keeps the session's logs/ when
it stops: _node/main.py), so `raylite logs` and util.state.get_log read them after the
task ended. Written raw, as the task printed them; a line the pipe has not finished yet
is in the file already and reaches the driver when its newline comes.
"""
from __future__ import annotations

import os
import threading

from .. import _private_files as private
from .._protocol import messages as m


class WorkerLog:
    """One of the worker's files, bounded: at most 1 + backup_count files of max_bytes."""

    def __init__(self, path: str, max_bytes: int, backup_count: int):
        self.path, self.max_bytes, self.backup_count = path, max_bytes, backup_count
        self._fd: int | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        try:
            if self._fd is None:
                private.make_dir(os.path.dirname(self.path))
                self._fd = private.open_file(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                self._size = os.fstat(self._fd).st_size
            elif self._size and self._size + len(data) > self.max_bytes:
                os.close(self._fd)
                self._fd, self._size = None, 0
                self._fd = private.rotate(self.path, self.backup_count)
            os.write(self._fd, data)
            self._size += len(data)
        except (OSError, private.NotPrivateError):
            pass  # a full disk or a removed session dir: the driver still gets the output


def forward_output(rt, executor, session_dir: str, worker_id: bytes) -> None:
    """Points fd 1 and 2 at pipes whose bytes go to the worker's files and whose lines go to
    the job's driver, prefixed as Ray does."""
    import sys

    from .._config import from_env

    try:
        cfg = from_env()
        max_bytes, backups = cfg.rotation_max_bytes, cfg.rotation_backup_count
    except ValueError:  # the daemon said why at its start; the defaults hold here
        from .._config import ROTATION_BACKUP_COUNT, ROTATION_MAX_BYTES
        max_bytes, backups = ROTATION_MAX_BYTES, ROTATION_BACKUP_COUNT
    base = os.path.join(session_dir, "logs", f"worker-{worker_id.hex()}-{os.getpid()}")
    for fd, is_err in ((1, False), (2, True)):
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        log = WorkerLog(base + (".err" if is_err else ".out"), max_bytes, backups)
        threading.Thread(target=_pump, args=(rt, executor, r, is_err, log), daemon=True,
                         name="raylite-log").start()
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def _pump(rt, executor, fd: int, is_err: bool, log: WorkerLog) -> None:
    with os.fdopen(fd, "rb", buffering=0) as f:
        pending = b""
        while True:
            chunk = f.read(65536)
            if not chunk:
                return
            log.write(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines and executor.job_id:
                prefix = f"({executor.current_name} pid={os.getpid()})"
                text = tuple(x.decode("utf-8", "replace") for x in lines)
                try:
                    rt.send_daemon(m.LogLines(executor.job_id, prefix, text, is_err))
                except OSError:
                    return
