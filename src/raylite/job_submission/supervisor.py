"""One job's supervisor: an actor that runs the entrypoint command on the head and reports how it ended.

    job manager ──start(spec, package)──► JobSupervisor (a threaded actor, owned by the manager,
                                          holding the job's entrypoint_num_cpus/gpus/... )
                   unpack working_dir ─► <session>/jobs/<id>/working_dir   (the cwd)
                   python _runner.py ... "<entrypoint>"   its own session and process group,
                                          stdout+stderr appended to <session>/logs/job-driver-<id>.log
                ◄── RUNNING fields (pid, node)
    job manager ──wait()──► blocks until the runner exits, then ends what the job left in its
                            group (SIGTERM, GRACE_S, SIGKILL) ◄── terminal fields; then the
                            supervisor ends itself (__ray_terminate__, after pending calls)
    job manager ──stop()──► SIGTERM to the job's process group; SIGKILL after GRACE_S if any
                            process of it is left

The entrypoint runs with the cluster's address in RAYLITE_ADDRESS and RAY_ADDRESS, the
cluster's temp dir in RAYLITE_TEMP_DIR (so init() finds the token in the session), the
working_dir then the py_modules first on PYTHONPATH, this Python's directory first on PATH
(so `python` is the Python the cluster runs), PYTHONUNBUFFERED=1 (so its log fills as it
prints, unless set) and runtime_env's env_vars last; RAYLITE_JOB_RUNTIME_ENV carries the
job's runtime_env (its working_dir and py_modules now the unpacked ones on the head), so the
job's tasks get it too. When the supervisor dies, the runner ends
the job (see _runner.py), and the manager reports FAILED.

start(), wait() and stop() may run at once, in any order (the actor is threaded):
`_lock` guards the process and the stop request, `_started` says start() is done.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import raylite

from .. import _private_files as private
from .models import _STOPPED_MESSAGE, _SUCCEEDED_MESSAGE
from .._runtime_env.packing import unpack
from .package import entrypoint_runtime_env, place_modules

GRACE_S = 3.0
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_runner.py")
_LOG_TAIL_CHARS = 2000


def entrypoint_env(base: dict, address: str, temp_dir: str, cwd: str,
                   env_vars: dict | None, paths: list | None = None) -> dict:
    """The environment the entrypoint command runs in (see the module docstring)."""
    env = {k: v for k, v in base.items() if k != "RAYLITE_WORKER"}
    env.update(RAYLITE_ADDRESS=address, RAY_ADDRESS=address, RAYLITE_TEMP_DIR=temp_dir)
    exe_dir = os.path.dirname(sys.executable)
    path = env.get("PATH", os.defpath)
    if path.split(os.pathsep)[0] != exe_dir:
        env["PATH"] = exe_dir + os.pathsep + path
    first = os.pathsep.join([cwd, *(paths or ())])  # the working_dir, then the py_modules
    env["PYTHONPATH"] = first + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(env_vars or {})
    return env


def _signal_group(pgid: int, sig: int) -> bool:
    """Sends sig to the process group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal (it changed uid): not ours to end
        return False
    return True


def end_group(pgid: int, grace: float) -> None:
    """SIGTERM to what is left of the group, then SIGKILL after `grace` s if anything is."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    for sig, wait in ((signal.SIGKILL, grace), (None, 1.0)):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _signal_group(pgid, 0):
                return
            time.sleep(0.05)
        if sig is not None:
            _signal_group(pgid, sig)


def _log_tail(path: str) -> str:
    try:
        fd = private.open_file(path)
    except (OSError, private.NotPrivateError):
        return ""
    with os.fdopen(fd, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - _LOG_TAIL_CHARS))
        return f.read().decode("utf-8", "replace").strip()


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"failed with exit code {code}"


class JobSupervisor:
    """Runs one job's entrypoint (see the module docstring). Created by the job manager."""

    def __init__(self, submission_id: str, grace_s: float = GRACE_S):
        self._id = submission_id
        self._grace = grace_s
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._exited = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._stop_requested = False
        self._driver: dict = {}
        self._log_path = ""

    def start(self, entrypoint: str, runtime_env: dict | None, package: bytes | None,
              address: str, temp_dir: str, log_path: str, job_dir: str,
              modules: list | None = None) -> dict | None:
        """Unpacks the working_dir and the py_modules (`modules`: package.pack_modules), and
        starts the entrypoint; its RUNNING fields (None when the job was stopped first).
        Raises what kept it from starting."""
        try:
            self._log_path = log_path
            private.make_dir(job_dir)
            cwd = job_dir
            if package is not None:
                cwd = os.path.join(job_dir, "working_dir")
                unpack(package, cwd)
            paths, py_modules = place_modules(modules, job_dir)
            env = entrypoint_env(dict(os.environ), address, temp_dir, cwd,
                                 (runtime_env or {}).get("env_vars"), paths)
            env["RAYLITE_JOB_RUNTIME_ENV"] = json.dumps(entrypoint_runtime_env(
                runtime_env, cwd if package is not None else None, py_modules))
            with self._lock:
                if self._stop_requested:
                    return None
                fd = private.open_file(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                with os.fdopen(fd, "ab") as log:
                    self._proc = subprocess.Popen(
                        [sys.executable, RUNNER, str(self._grace), str(os.getpid()), entrypoint],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                        env=env, start_new_session=True)
            threading.Thread(target=self._reap, daemon=True, name="raylite-job-reap").start()
            self._driver = {
                "driver_info": {"id": None, "node_ip_address": address.rpartition(":")[0],
                                "pid": str(self._proc.pid)},
                "driver_node_id": raylite.get_runtime_context().get_node_id()}
            return {"status": "RUNNING", "message": "Job is currently running.", **self._driver}
        finally:
            self._started.set()

    def _reap(self) -> None:
        self._proc.wait()
        self._exited.set()

    def wait(self) -> dict | None:
        """Blocks until the job's processes are gone; its terminal fields (None if it never
        started: start() said why). The supervisor then ends (its job is over), whether or
        not the manager that made it is still there to end it."""
        try:
            return self._wait()
        finally:
            raylite.get_runtime_context().current_actor.__ray_terminate__.remote()

    def _wait(self) -> dict | None:
        self._started.wait()
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
        self._exited.wait()
        end_group(proc.pid, self._grace)  # what the entrypoint left behind ends with it
        code = proc.returncode
        done = {**self._driver, "end_time": int(time.time() * 1000), "driver_exit_code": code}
        with self._lock:
            stopped = self._stop_requested
        if stopped:
            return {**done, "status": "STOPPED", "message": _STOPPED_MESSAGE}
        if code == 0:
            return {**done, "status": "SUCCEEDED", "message": _SUCCEEDED_MESSAGE}
        tail = _log_tail(self._log_path)
        message = f"Job entrypoint command {_how_it_ended(code)}." + (
            f" The end of its log:\n{tail}" if tail else " It printed nothing.")
        return {**done, "status": "FAILED", "message": message,
                "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR"}

    def stop(self) -> bool:
        """SIGTERM to the job's process group, SIGKILL after the grace period; True if the
        job's process was running (False: it had ended, or start() will not start it)."""
        with self._lock:
            if self._exited.is_set():
                return False
            self._stop_requested = True
            proc = self._proc
            if proc is None:
                return False
            running = _signal_group(proc.pid, signal.SIGTERM)
        if running:
            threading.Thread(target=self._kill_later, args=(proc.pid,), daemon=True,
                             name="raylite-job-stop").start()
        return running

    def _kill_later(self, pgid: int) -> None:
        if not self._exited.wait(self._grace):  # the leader is not reaped: pgid is still ours
            _signal_group(pgid, signal.SIGKILL)
