"""Warm workers from a fork server (the "zygote"), which reaps them and reports how they died.

    daemon ──"spawn <worker id>" / "kill <pid>"──► zygote ──fork──► worker: _worker.main.run(...)
           ◄──"forked <worker id> <pid>" / "failed <worker id> <why>" / "exit <pid> <status>"──

The first zygote is forked from the daemon's main thread before any other
thread exists: a worker then starts in a few milliseconds with raylite already
imported. A zygote that dies is replaced by a fresh interpreter
(`python -m raylite._node.worker_pool`), never by forking the daemon, which by
then runs threads. The fresh one reads its settings (with the cluster token)
from its request pipe, so they never show in `ps`.

The zygote owns its children: it reaps them (SIGCHLD wakes its select loop)
and it is the only process that signals them. It kills a pid only while that
pid is its own unreaped child, so a pid that is not a worker (0, -1, one
reused by the system) is never signalled. When its request pipe closes (the
daemon stops or dies) it kills and reaps every worker, then exits. On Linux
each zygote and worker also gets SIGKILL when its parent dies.
"""
from __future__ import annotations

import errno
import json
import os
import select
import signal
import subprocess
import sys
import time

STOP_TIMEOUT_S = 3.0
PRELOAD_TIMEOUT_S = 30.0    # the daemon waits this long at most for the first zygote's imports


class Zygote:
    """The daemon's handle on one fork server: requests go in, events come out."""

    def __init__(self, pid: int, req_fd: int, rep_fd: int, proc: subprocess.Popen | None = None):
        self.pid, self._req, self._rep, self._proc = pid, req_fd, rep_fd, proc
        self.started = time.monotonic()
        os.set_blocking(req_fd, False)  # a request never blocks the daemon (it holds its lock)
        self._buf = b""
        self._preloaded: int | None = None  # the first zygote's "imports done" pipe

    def wait_preloaded(self, timeout: float = PRELOAD_TIMEOUT_S) -> None:
        """Returns once the first zygote has imported what workers need (so the first task
        finds a worker soon), or it died, or `timeout` passed (a dead zygote is replaced as
        usual; a slow one serves when it is ready)."""
        fd, self._preloaded = self._preloaded, None
        if fd is None:
            return
        try:
            if select.select([fd], [], [], timeout)[0]:
                os.read(fd, 1)
        finally:
            os.close(fd)

    @classmethod
    def fork(cls) -> "Zygote":
        """The first zygote: forked early, while the daemon is still single-threaded, with
        what both need imported and the collector's view of it frozen (gc.freeze: the
        objects are never traversed, so the zygote and its workers do not copy the pages
        they share with the daemon). It then imports what only workers need (preload),
        while the daemon imports its server and GCS on the other core. It is forked before
        the listener exists, so it holds none of the daemon's sockets, and waits for its
        settings (`configure`) on its request pipe, as a replacement zygote does."""
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                for fd in (req_w, rep_r, done_r):
                    os.close(fd)
                die_with_parent()
                preload()
                os.write(done_w, b"1")
                os.close(done_w)
                _serve_configured(req_r, rep_w)
            finally:
                os._exit(0)
        for fd in (req_r, rep_w, done_w):
            os.close(fd)
        zygote = cls(pid, req_w, rep_r)
        zygote._preloaded = done_r
        return zygote

    @classmethod
    def start(cls, worker_args: tuple) -> "Zygote":
        """A replacement zygote in a fresh interpreter; OSError when it cannot be started."""
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        try:
            proc = subprocess.Popen([sys.executable, "-m", "raylite._node.worker_pool", str(req_r),
                                     str(rep_w)], pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL)
        except BaseException:
            for fd in (req_w, rep_r):
                os.close(fd)
            raise
        finally:
            os.close(req_r)
            os.close(rep_w)
        z = cls(proc.pid, req_w, rep_r, proc)
        z.configure(worker_args)
        return z

    def configure(self, worker_args: tuple) -> bool:
        """Sends the zygote its settings (the cluster token among them: never on a command
        line); it serves requests once it has them."""
        address, token, session_dir, node_id = worker_args
        config = {"address": address, "token": token.hex(), "session_dir": session_dir,
                  "node_id": node_id.hex(), "parent": os.getpid()}
        return self._write(json.dumps(config) + "\n")

    # -- requests (any thread; they never block) -------------------------------------
    def spawn(self, worker_id: bytes, env: str | None = None) -> bool:
        """Asks for a worker (of runtime_env key `env`, whose spec is ready under the session
        dir); False when the request could not be written (zygote gone or stuck)."""
        return self._write(f"spawn {worker_id.hex()}{' ' + env if env else ''}\n")

    def kill(self, pid: int) -> bool:
        return self._write(f"kill {pid}\n")

    def _write(self, line: str) -> bool:
        try:
            return os.write(self._req, line.encode()) == len(line)
        except OSError:  # EPIPE: it died; EAGAIN: 64 KiB of requests it is not reading
            return False

    # -- events (the daemon's one zygote thread) ---------------------------------------
    def events(self, timeout: float | None) -> list | None:
        """Events that arrive within `timeout` ([] when none); None once the zygote is gone.
        Each is ("forked", worker id, pid), ("failed", worker id, why) or ("exit", pid, status)."""
        try:
            if not select.select([self._rep], [], [], timeout)[0]:
                return []
            data = os.read(self._rep, 65536)
        except OSError:
            return None
        if not data:
            return None
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        out = []
        for line in lines:
            kind, _, rest = line.decode(errors="replace").partition(" ")
            a, _, b = rest.partition(" ")
            try:
                if kind == "forked":
                    out.append((kind, bytes.fromhex(a), int(b)))
                elif kind == "failed":
                    out.append((kind, bytes.fromhex(a), b))
                elif kind == "exit":
                    out.append((kind, int(a), int(b)))
            except ValueError:
                pass  # not a line our zygote writes
        return out

    def stop(self) -> None:
        """Closes the request pipe: the zygote kills and reaps its workers, then exits (SIGKILL
        after STOP_TIMEOUT_S). Only the daemon's zygote thread may close the event side."""
        if self._req >= 0:
            try:
                os.close(self._req)
            except OSError:
                pass
            self._req = -1
        if not self._wait(STOP_TIMEOUT_S):
            try:
                os.kill(self.pid, signal.SIGKILL)  # our own child, not yet reaped
            except ProcessLookupError:
                pass
            self._wait(None)

    def close_events(self) -> None:
        try:
            os.close(self._rep)
        except OSError:
            pass

    def _wait(self, timeout: float | None) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if os.waitpid(self.pid, 0 if deadline is None else os.WNOHANG)[0]:
                    return True
            except ChildProcessError:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


def describe_exit(status: int, oom_before: int | None, oom_now: int | None) -> str:
    """How a worker died, from its wait status: "exited with code 3", "killed by SIGSEGV",
    "killed by the OOM killer (out of memory)". The OOM counters are the kernel's count of
    OOM kills before and after the death (None: not readable here)."""
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    if not os.WIFSIGNALED(status):
        return f"ended with wait status {status}"
    sig = os.WTERMSIG(status)
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    if sig != signal.SIGKILL:
        return f"killed by {name}"
    if oom_before is None or oom_now is None:
        return "killed by SIGKILL (possibly the OOM killer: out of memory)"
    if oom_now > oom_before:
        return "killed by SIGKILL from the OOM killer (out of memory)"
    return "killed by SIGKILL"


def oom_kills() -> int | None:
    """The kernel's count of OOM kills: this cgroup's (v2) if readable, else the machine's."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next((ln.split(":", 2)[2].strip() for ln in f if ln.startswith("0::")), None)
        if path is not None:
            with open(f"/sys/fs/cgroup{path}/memory.events") as f:
                for ln in f:
                    if ln.startswith("oom_kill "):
                        return int(ln.split()[1])
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/vmstat") as f:
            for ln in f:
                if ln.startswith("oom_kill "):
                    return int(ln.split()[1])
    except (OSError, ValueError):
        pass
    return None


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (a crashed daemon leaves no
    zygote, a dead zygote no workers, even mid-task)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def preload() -> None:
    """Everything a worker needs, imported once in the zygote: forked workers share it."""
    from .._worker import main

    main.preload()


# -- the zygote process ----------------------------------------------------------------
def _serve(req_fd: int, rep_fd: int, worker_args: tuple) -> None:
    die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, not SIG_IGN: children stay waitable
    children: set[int] = set()
    fds = (req_fd, rep_fd, wake_r, wake_w)
    buf = b""
    while True:
        try:
            ready, _, _ = select.select([req_fd, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            _drain(wake_r)
        _reap(children, rep_fd)
        if req_fd not in ready:
            continue
        data = os.read(req_fd, 65536)
        if not data:  # the daemon stopped (or died): take every worker with us
            break
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            kind, _, arg = line.decode().partition(" ")
            if kind == "spawn":
                wid, _, env = arg.partition(" ")
                _fork_worker(bytes.fromhex(wid), env or None, worker_args, fds, children, rep_fd)
            elif kind == "kill" and int(arg) in children:  # only our own, unreaped child
                os.kill(int(arg), signal.SIGKILL)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    _reap(children, rep_fd, block=True)


def _fork_worker(worker_id: bytes, env: str | None, worker_args: tuple, fds: tuple,
                 children: set, rep_fd: int) -> None:
    try:
        pid = os.fork()
    except OSError as e:  # EAGAIN/ENOMEM: report it (after a pause, so retries do not spin)
        time.sleep(0.5)
        _report(rep_fd, f"failed {worker_id.hex()} fork() failed: {e.strerror or e}")
        return
    if pid:
        children.add(pid)
        _report(rep_fd, f"forked {worker_id.hex()} {pid}")
        return
    try:  # in the forked child: whatever happens, it never returns to the fork server's loop
        from .._worker import main as worker_main
    except BaseException:
        os._exit(1)

    def body() -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in fds:
            os.close(fd)
        die_with_parent()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        address, token, session_dir, node_id = worker_args
        worker_main.run(address, token, worker_id, session_dir, node_id, env)

    worker_main.run_to_exit(body)


def _reap(children: set, rep_fd: int, block: bool = False) -> None:
    """Reports every child that has exited (`block`: waits until all of `children` have)."""
    while children or not block:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _report(rep_fd, f"exit {pid} {status}")


def _report(rep_fd: int, line: str) -> None:
    try:
        os.write(rep_fd, (line + "\n").encode())
    except OSError:
        pass  # the daemon is gone: nobody to tell


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _serve_configured(req_fd: int, rep_fd: int) -> None:
    """Reads the settings line (Zygote.configure), then serves; returns at once when the
    daemon closes the pipe first or is not our parent any more."""
    die_with_parent()
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(req_fd, 1)  # byte by byte: what follows the settings is for _serve
        if not chunk:
            return
        line += chunk
    config = json.loads(line)
    if os.getppid() != config["parent"]:
        return  # the daemon died before we could tie our life to it
    worker_args = (config["address"], bytes.fromhex(config["token"]), config["session_dir"],
                   bytes.fromhex(config["node_id"]))
    import gc

    gc.freeze()  # what the workers inherit is never traversed by their collector: pages stay shared
    _serve(req_fd, rep_fd, worker_args)


def _main(argv: list[str]) -> None:
    """A replacement zygote: `python -m raylite._node.worker_pool REQ_FD REP_FD`."""
    preload()
    _serve_configured(int(argv[0]), int(argv[1]))


if __name__ == "__main__":
    try:
        _main(sys.argv[1:])
    except OSError as e:
        if e.errno != errno.EPIPE:
            raise
