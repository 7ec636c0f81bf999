"""Warm workers from a fork server (the "zygote").

    daemon main (single-threaded, raylite pre-imported)
       └─ fork ─► zygote: reads "worker-id\\n" from a pipe, forks, writes "pid\\n" back
                    └─ fork ─► worker: runs raylite._worker.main.run(...)

The zygote is forked before the daemon starts any thread, so every worker is
a clean, single-threaded copy with raylite already imported: a worker starts
in a few milliseconds instead of an interpreter start. Workers are the
zygote's children; the zygote reaps them (SIGCHLD ignored). The daemon kills
them by pid and learns of their death when their connection closes.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable


class Zygote:
    def __init__(self, run_worker: Callable[[bytes], None]):
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the zygote
            os.close(req_w)
            os.close(rep_r)
            try:
                _serve(req_r, rep_w, run_worker)
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(rep_w)
        self.pid = pid
        self._req = os.fdopen(req_w, "w", buffering=1)
        self._rep = os.fdopen(rep_r, "r")

    def spawn(self, worker_id: bytes) -> int:
        """Forks one worker; returns its pid."""
        self._req.write(worker_id.hex() + "\n")
        line = self._rep.readline()
        if not line:
            raise RuntimeError("the worker fork server exited")
        return int(line)

    def stop(self) -> None:
        try:
            self._req.close()
            self._rep.close()
        except OSError:
            pass
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (a crashed daemon leaves no
    zygote, a dead zygote no workers, even mid-task)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _serve(req_fd: int, rep_fd: int, run_worker: Callable[[bytes], None]) -> None:
    die_with_parent()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    req = os.fdopen(req_fd, "r")
    rep = os.fdopen(rep_fd, "w", buffering=1)
    for line in req:  # ends when the daemon closes the pipe (or dies)
        worker_id = bytes.fromhex(line.strip())
        pid = os.fork()
        if pid == 0:
            req.close()
            rep.close()
            die_with_parent()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = 0
            try:
                run_worker(worker_id)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 0
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                except Exception:
                    pass
                os._exit(code)
        rep.write(f"{pid}\n")
