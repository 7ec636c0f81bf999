"""The job manager: one detached named actor per cluster that keeps every job's record.

    client ──submit / info / list_jobs / stop / delete / read_log──► JobManager
             (actor "_raylite_job_manager" in namespace "_raylite_jobs", 0 CPUs, threaded;
              made by the first submit_job, found by name afterwards)
    JobManager ─► one JobSupervisor per job (a detached actor "_raylite_job_supervisor_<id>",
                  holding the job's entrypoint resources; detached because an actor made
                  during a client's call would end with that client's driver)
                  ─► start.remote(), wait.remote()
    the two refs' futures ─► _events queue ─► watcher thread: RUNNING, then the terminal
                  fields, or FAILED when the supervisor died (a supervisor ends itself
                  once wait() returns; stop() kills one whose job has not started)

State: `_records` (submission id -> the job's record, the keys of JobDetails, in
submission order), `_supervisors` and `_refs` for jobs not yet terminal; all under
`_lock`. A record only moves forward: once terminal it keeps its status. Paths are
the manager's: the job's log is <session>/logs/job-driver-<id>.log (kept after
delete_job, as Ray keeps it), its files are in <session>/jobs/<id>/ (removed by
delete_job). The manager (no CPU: it fits the head, where the GCS puts an actor that
fits) and the supervisors (soft node affinity to the manager's node) run on the head
node, so the manager reads the logs its supervisors' jobs write. A job whose entrypoint
resources only another node has is placed there (docs/jobs.md: it runs only when that
node shares this one's filesystem). The
records live in the manager's memory: they last as long as the cluster does.
"""
from __future__ import annotations

import functools
import os
import queue
import re
import secrets
import shutil
import threading
import time

import raylite
from raylite import exceptions

from .. import _private_files as private
from .models import _STOPPED_MESSAGE, JobStatus, new_record
from .supervisor import GRACE_S, JobSupervisor

MANAGER_NAME = "_raylite_job_manager"
NAMESPACE = "_raylite_jobs"
_ID_OK = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_submission_id() -> str:
    return "raysubmit_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def check_submission_id(sid: object) -> str | None:
    """Why `sid` cannot name a job (None if it can)."""
    if not isinstance(sid, str) or not _ID_OK.match(sid) or sid in (".", ".."):
        return (f"submission_id must be 1-128 letters, digits, '_', '.' or '-', got {sid!r}: "
                "it names the job's log file.")
    return None


def _short(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {cause}"


class JobManager:
    """Keeps the records of this cluster's jobs and runs each through a supervisor."""

    def __init__(self, grace_s: float = GRACE_S):
        info = raylite.init(ignore_reinit_error=True).address_info  # this worker's connection
        self._address = info["address"]
        self._temp_dir = os.path.dirname(info["session_dir"])
        self._log_dir = os.path.join(info["session_dir"], "logs")
        self._jobs_dir = os.path.join(info["session_dir"], "jobs")
        private.make_dir(self._log_dir)
        private.make_dir(self._jobs_dir)
        self._grace = grace_s
        self._supervisor_class = raylite.remote(JobSupervisor)
        self._lock = threading.Lock()
        self._records: dict[str, dict] = {}
        self._supervisors: dict = {}
        self._refs: dict[str, tuple] = {}
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._watch, daemon=True, name="raylite-jobs-watch").start()

    def log_path(self, sid: str) -> str:
        return os.path.join(self._log_dir, f"job-driver-{sid}.log")

    # -- requests from clients ---------------------------------------------------------
    def submit(self, spec: dict, package: bytes | None) -> tuple[bool, str]:
        """(True, submission id) once the job's supervisor is on its way; (False, why) if not."""
        sid = spec.get("submission_id") or new_submission_id()
        problem = check_submission_id(sid)
        if problem:
            return False, problem
        resources = {k: spec[k] for k in ("num_cpus", "num_gpus", "memory", "resources")
                     if spec.get(k) is not None}
        with self._lock:
            if sid in self._records:
                return False, (f"Job with submission_id {sid!r} already exists: pick another "
                               "submission_id (or delete_job the old one first).")
            record = new_record(sid, spec["entrypoint"], spec.get("runtime_env"),
                                spec.get("metadata"), resources, int(time.time() * 1000))
            self._records[sid] = record
        from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # on this node when it could run it (its job's logs are read here), else where the
        # GCS places it (it waits on the head when no node could run it: PENDING)
        here = NodeAffinitySchedulingStrategy(raylite.get_runtime_context().get_node_id(), True)
        try:
            sup = self._supervisor_class.options(
                name=f"_raylite_job_supervisor_{sid}", namespace=NAMESPACE, lifetime="detached",
                num_cpus=resources.get("num_cpus", 0), max_concurrency=4, scheduling_strategy=here,
                **{k: v for k, v in resources.items() if k != "num_cpus"}).remote(sid, self._grace)
        except (ValueError, TypeError) as e:
            with self._lock:
                del self._records[sid]
            return False, f"The job's entrypoint resources are not valid: {e}"
        refs = (sup.start.remote(spec["entrypoint"], spec.get("runtime_env"), package,
                                 self._address, self._temp_dir, self.log_path(sid),
                                 os.path.join(self._jobs_dir, sid), spec.get("py_modules_data")),
                sup.wait.remote())
        with self._lock:
            self._supervisors[sid] = sup
            self._refs[sid] = refs
        for kind, ref in zip(("start", "wait"), refs):
            ref.future().add_done_callback(functools.partial(self._done, sid, kind))
        return True, sid

    def info(self, sid: str) -> dict | None:
        with self._lock:
            record = self._records.get(sid)
            return dict(record) if record is not None else None

    def list_jobs(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._records.values()]

    def stop(self, sid: str) -> bool | None:
        """True if the job was running (or waiting to run) and is being stopped; False if it
        had already ended; None if there is no such job."""
        with self._lock:
            record = self._records.get(sid)
            if record is None:
                return None
            status = JobStatus(record["status"])
            sup = self._supervisors.get(sid)
            refs = self._refs.get(sid)
        if status.is_terminal() or sup is None:
            return False
        if status == JobStatus.RUNNING:
            try:
                return raylite.get(sup.stop.remote(), timeout=30)
            except exceptions.RayError:  # the supervisor is gone or stuck ...
                if raylite.wait([refs[1]], timeout=0)[0]:
                    return False  # ... as the job has just ended: the watcher records how
        self._finish(sid, {"status": "STOPPED", "message": _STOPPED_MESSAGE})
        raylite.kill(sup)
        return True

    def delete(self, sid: str) -> tuple[bool, str]:
        with self._lock:
            record = self._records.get(sid)
            if record is None:
                return False, f"Job {sid!r} does not exist."
            if not JobStatus(record["status"]).is_terminal():
                return False, (f"Job {sid!r} is {record['status']}: only a job that has ended "
                               "can be deleted. Stop it first (stop_job / `raylite job stop`).")
            del self._records[sid]
        shutil.rmtree(os.path.join(self._jobs_dir, sid), ignore_errors=True)
        return True, ""

    def read_log(self, sid: str, offset: int, limit: int) -> tuple | None:
        """(bytes from `offset`, up to `limit`; the next offset; the job's status before the
        read, so a terminal status means the bytes returned are all there will be) or None."""
        with self._lock:
            record = self._records.get(sid)
            if record is None:
                return None
            status = record["status"]
        try:
            fd = private.open_file(self.log_path(sid))
        except FileNotFoundError:
            return b"", offset, status
        with os.fdopen(fd, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
        return data, offset + len(data), status

    # -- results from supervisors -------------------------------------------------------
    def _finish(self, sid: str, fields: dict) -> None:
        """Applies a supervisor's fields unless the job is already terminal."""
        with self._lock:
            record = self._records.get(sid)
            if record is None or JobStatus(record["status"]).is_terminal():
                return
            if fields.get("status") == "RUNNING" and record["status"] != "PENDING":
                return
            record.update(fields)
            if JobStatus(record["status"]).is_terminal():
                record["end_time"] = record.get("end_time") or int(time.time() * 1000)
                self._supervisors.pop(sid, None)
                self._refs.pop(sid, None)

    def _done(self, sid: str, kind: str, future) -> None:
        self._events.put((sid, kind))  # on whichever thread completed the future: nothing more

    def _watch(self) -> None:
        while True:
            sid, kind = self._events.get()
            with self._lock:
                refs = self._refs.get(sid)
            if refs is None:
                continue  # already terminal
            ref = refs[0] if kind == "start" else refs[1]
            try:
                result = raylite.get(ref)
            except Exception as e:  # noqa: BLE001 - every way a supervisor fails ends the job
                gone = isinstance(e, exceptions.RayActorError)
                self._finish(sid, {
                    "status": "FAILED",
                    "error_type": "JOB_SUPERVISOR_ACTOR_DIED" if gone
                    else "JOB_SUPERVISOR_ACTOR_START_FAILURE",
                    "message": (f"The job's supervisor died: {_short(e)}" if gone else
                                f"The job could not start: {_short(e)}")})
                continue
            if result is not None:
                self._finish(sid, result)
