"""JobSubmissionClient: Ray's Jobs SDK, spoken to the cluster's job manager actor.

    JobSubmissionClient(address) ─► each call: connected() ─► the job manager actor
        (get_actor("_raylite_job_manager", "_raylite_jobs"); submit_job makes it if absent)
        ─► one actor call, its answer turned into Ray's types (JobDetails, JobStatus, str)

Connecting. Ray's client speaks HTTP; raylite's speaks the cluster's own authenticated
protocol, so a call needs this process to be a driver of the cluster for its duration:

    this process already called init() (on a cluster)  ─► the call uses that connection
                                                          (and never shuts it down)
    it did not                                         ─► init(address) for the call,
                                                          shutdown() when the last call
                                                          in progress ends

so a client leaves no connection behind, and a program that calls init() itself before
or after using a client is not disturbed. The count of calls in progress is one per
process (`_CONNECTION`), shared by every client. An address given to a client must be
the one this process is connected to, if it is: a process is a driver of one cluster.

Address: the argument, else RAYLITE_ADDRESS, else RAY_ADDRESS, else "auto" (the cluster
`raylite start` recorded on this machine). "http://..." (Ray's dashboard address) is
refused with what to pass instead. The cluster's token is found as init() finds it
(RAYLITE_CLUSTER_TOKEN, or this machine's session under RAYLITE_TEMP_DIR).
"""
from __future__ import annotations

import codecs
import contextlib
import os
import shlex
import threading
import time
from typing import Any, AsyncIterator, Iterator

import raylite

from .models import JobDetails, JobStatus
from .._runtime_env.packing import pack
from .package import check_runtime_env, pack_modules

LOG_CHUNK = 1 << 20
POLL_S = 0.2
_MANAGER_NAME = "_raylite_job_manager"
_NAMESPACE = "_raylite_jobs"


def resolve_address(address: str | None) -> str:
    addr = address or os.environ.get("RAYLITE_ADDRESS") or os.environ.get("RAY_ADDRESS") or "auto"
    if not isinstance(addr, str):
        raise TypeError(f"address must be a string like 'host:port' or 'auto', got {addr!r}.")
    if addr.startswith(("http://", "https://")):
        raise ValueError(f"{addr!r} is an HTTP address (Ray's dashboard); raylite has no HTTP job "
                         "server: pass the head's host:port as `raylite start --head` printed it, "
                         "or 'auto' for the cluster started on this machine.")
    return addr


class _Connection:
    """This process's driver connection while client calls run (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._ours = False
        self.manager_class: Any = None  # raylite.remote(JobManager), made on first use

    @contextlib.contextmanager
    def use(self, address: str) -> Iterator[str]:
        """Connected for the block; yields the cluster's address."""
        with self._lock:
            if self._users == 0:
                self._ours = not raylite.is_initialized()
                if self._ours:
                    raylite.init(address=address, log_to_driver=False, configure_logging=False)
            self._users += 1
        try:
            yield _check_cluster(address)
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._ours:
                    self._ours = False
                    raylite.shutdown()


def _check_cluster(address: str) -> str:
    here = raylite.init(ignore_reinit_error=True).address_info["address"]
    if here == "local":
        raise RuntimeError("JobSubmissionClient needs a raylite cluster, but this process runs "
                           "raylite in local mode: call shutdown() first, or use the client from "
                           "another process.")
    if address not in ("auto", here) and not address.startswith(("ray://", "raylite://")):
        raise ValueError(f"This process is connected to the cluster at {here}, not {address}: a "
                         "process is a driver of one cluster. Use JobSubmissionClient("
                         f"{here!r}), or call raylite.shutdown() first.")
    return here


_CONNECTION = _Connection()


def _manager(create: bool) -> Any:
    """The job manager actor's handle (None if there is none and not `create`)."""
    try:
        return raylite.get_actor(_MANAGER_NAME, namespace=_NAMESPACE)
    except ValueError:
        if not create:
            return None
    if _CONNECTION.manager_class is None:
        from .manager import JobManager

        _CONNECTION.manager_class = raylite.remote(JobManager)
    return _CONNECTION.manager_class.options(
        name=_MANAGER_NAME, namespace=_NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_concurrency=16).remote()


def _missing(job_id: str) -> RuntimeError:
    return RuntimeError(f"Job {job_id!r} does not exist on this cluster (list them with "
                        "list_jobs() or `raylite job list`).")


class _LogCursor:
    """Where a reader is in a job's log; turns read_log answers into text."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.offset = 0
        self.done = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def take(self, answer: tuple | None) -> str:
        if answer is None:
            raise _missing(self.job_id)
        data, self.offset, status = answer
        self.done = JobStatus(status).is_terminal() and len(data) < LOG_CHUNK
        return self._decoder.decode(data, final=self.done)

    def flush(self) -> str:
        """What is left of a character cut at the end of what was read so far."""
        return self._decoder.decode(b"", final=True)


class JobSubmissionClient:
    """Submits jobs to a raylite cluster and follows them, with Ray's JobSubmissionClient calls.

    `cookies`, `headers` and `verify` are HTTP settings: accepted and unused (raylite speaks
    its own authenticated protocol). `create_cluster_if_needed` is accepted and unused, as in
    Ray. `metadata` is merged into every job's metadata."""

    def __init__(self, address: str | None = None, create_cluster_if_needed: bool = False,
                 cookies: dict | None = None, metadata: dict | None = None,
                 headers: dict | None = None, verify: Any = True):
        self._requested = resolve_address(address)
        self._metadata = dict(metadata or {})
        with _CONNECTION.use(self._requested) as here:  # fails now if there is no cluster
            self._address = here

    @contextlib.contextmanager
    def _connected(self) -> Iterator[None]:
        with _CONNECTION.use(self._address):
            yield

    def _call(self, method: str, *args: Any, create: bool = False) -> Any:
        with self._connected():
            manager = _manager(create)
            return None if manager is None else raylite.get(getattr(manager, method).remote(*args))

    def get_address(self) -> str:
        return self._address

    def get_version(self) -> str:
        return raylite.__version__

    def submit_job(self, *, entrypoint: str, job_id: str | None = None,
                   runtime_env: dict | None = None, metadata: dict | None = None,
                   submission_id: str | None = None, entrypoint_num_cpus: float | None = None,
                   entrypoint_num_gpus: float | None = None, entrypoint_memory: int | None = None,
                   entrypoint_resources: dict | None = None) -> str:
        """Starts `entrypoint` (a shell command) on the head; returns the submission id."""
        if isinstance(entrypoint, (list, tuple)):
            entrypoint = shlex.join(entrypoint)
        if not isinstance(entrypoint, str) or not entrypoint.strip():
            raise ValueError(f"entrypoint must be a shell command, e.g. 'python script.py', got "
                             f"{entrypoint!r}.")
        if job_id is not None and submission_id is not None and job_id != submission_id:
            raise ValueError("job_id is the old name of submission_id: pass only submission_id.")
        for name, v in (("entrypoint_num_cpus", entrypoint_num_cpus),
                        ("entrypoint_num_gpus", entrypoint_num_gpus),
                        ("entrypoint_memory", entrypoint_memory)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
                raise ValueError(f"{name} must be a number >= 0, got {v!r}.")
        runtime_env = check_runtime_env(runtime_env)
        package = None
        if runtime_env and runtime_env.get("working_dir"):
            package = pack(runtime_env["working_dir"], runtime_env.get("excludes", [])).data
        spec = {"entrypoint": entrypoint, "submission_id": submission_id or job_id,
                "runtime_env": runtime_env, "metadata": {**self._metadata, **(metadata or {})},
                "num_cpus": entrypoint_num_cpus, "num_gpus": entrypoint_num_gpus,
                "memory": entrypoint_memory, "resources": entrypoint_resources,
                "py_modules_data": pack_modules(runtime_env)}
        ok, answer = self._call("submit", spec, package, create=True)
        if not ok:
            raise ValueError(answer)
        return answer

    def get_job_info(self, job_id: str) -> JobDetails:
        record = self._call("info", job_id)
        if record is None:
            raise _missing(job_id)
        return JobDetails.from_record(record)

    def list_jobs(self) -> list[JobDetails]:
        """Every job submitted to this cluster, in submission order."""
        return [JobDetails.from_record(r) for r in self._call("list_jobs") or []]

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.get_job_info(job_id).status

    def stop_job(self, job_id: str) -> bool:
        """Asks the job to end (SIGTERM to its processes, SIGKILL after a grace period); True if
        it was running. get_job_status() says STOPPED once its processes are gone."""
        stopped = self._call("stop", job_id)
        if stopped is None:
            raise _missing(job_id)
        return stopped

    def delete_job(self, job_id: str) -> bool:
        """Forgets an ended job and its files (its log stays); RuntimeError if it has not ended."""
        answer = self._call("delete", job_id)
        if answer is None:
            raise _missing(job_id)
        ok, why = answer
        if not ok:
            raise RuntimeError(why)
        return True

    def get_job_logs(self, job_id: str) -> str:
        """Everything the job's entrypoint has printed so far (stdout and stderr)."""
        with self._connected():
            cursor, parts = _LogCursor(job_id), []
            while True:
                before = cursor.offset
                parts.append(cursor.take(self._call("read_log", job_id, before, LOG_CHUNK)))
                if cursor.offset - before < LOG_CHUNK:
                    return "".join(parts) + cursor.flush()

    def _follow(self, job_id: str) -> Iterator[str]:
        """The job's log as it grows, until the job has ended and all of it is read."""
        with self._connected():
            cursor = _LogCursor(job_id)
            while not cursor.done:
                text = cursor.take(self._call("read_log", job_id, cursor.offset, LOG_CHUNK))
                if text:
                    yield text
                elif not cursor.done:
                    time.sleep(POLL_S)

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """The job's log as it grows (an async iterator), until the job has ended."""
        import asyncio

        with self._connected():
            manager = _manager(False)
            if manager is None:
                raise _missing(job_id)
            cursor = _LogCursor(job_id)
            while not cursor.done:
                text = cursor.take(await manager.read_log.remote(job_id, cursor.offset, LOG_CHUNK))
                if text:
                    yield text
                elif not cursor.done:
                    await asyncio.sleep(POLL_S)
