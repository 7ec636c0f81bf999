"""The data of Jobs, as Ray's job_submission module names it: JobStatus, JobErrorType,
JobType, DriverInfo, JobInfo and JobDetails.

A job's record travels between the job manager actor and clients as a plain dict
(`record` below, the keys of JobDetails); clients turn it into JobDetails. Plain
dataclasses, not pydantic models: raylite adds no dependency. Times are
milliseconds since the epoch, as in Ray.

    PENDING ──► RUNNING ──► SUCCEEDED | FAILED | STOPPED      (the last three are terminal)
       └──────────────────► FAILED | STOPPED                  (could not start, or stopped first)
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any


class JobStatus(str, enum.Enum):
    """Where a job is in its life; compares equal to its name as a string."""

    PENDING = "PENDING"      # submitted; its supervisor or entrypoint is starting
    RUNNING = "RUNNING"      # the entrypoint command runs
    STOPPED = "STOPPED"      # stopped by a user (stop_job / `raylite job stop`)
    SUCCEEDED = "SUCCEEDED"  # the entrypoint command exited with 0
    FAILED = "FAILED"        # it exited with another code, or could not start

    def __str__(self) -> str:
        return self.value

    def is_terminal(self) -> bool:
        """True once the job will not change any more."""
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobErrorType(str, enum.Enum):
    """Why a FAILED job failed (JobInfo/JobDetails.error_type); compares equal to its name.
    raylite sets the entrypoint's and the supervisor's; the others are Ray's names for
    failures raylite reports in `message` only."""

    RUNTIME_ENV_SETUP_FAILURE = "RUNTIME_ENV_SETUP_FAILURE"
    JOB_SUPERVISOR_ACTOR_START_TIMEOUT = "JOB_SUPERVISOR_ACTOR_START_TIMEOUT"
    JOB_SUPERVISOR_ACTOR_START_FAILURE = "JOB_SUPERVISOR_ACTOR_START_FAILURE"  # could not start
    JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE = "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE"
    JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE = "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE"
    JOB_SUPERVISOR_ACTOR_DIED = "JOB_SUPERVISOR_ACTOR_DIED"        # its supervisor died
    JOB_ENTRYPOINT_COMMAND_START_ERROR = "JOB_ENTRYPOINT_COMMAND_START_ERROR"
    JOB_ENTRYPOINT_COMMAND_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"  # it exited with another code

    def __str__(self) -> str:
        return self.value


def _error_type(v: Any) -> "JobErrorType | str | None":
    """A record's error_type as the enum (a name it does not know stays a string)."""
    try:
        return JobErrorType(v) if v else v
    except ValueError:
        return v


class JobType(str, enum.Enum):
    """SUBMISSION: submitted through Jobs. (DRIVER, a program that called init() itself, is
    never listed by raylite: list_jobs shows submissions only.)"""

    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass
class DriverInfo:
    """The entrypoint process of a job: `pid` is the process group leader the head started
    (a small runner, parent of the entrypoint's shell); `id` is not known to the head (None)."""

    id: str | None
    node_ip_address: str
    pid: str


@dataclasses.dataclass
class JobInfo:
    """What Ray's JobInfo holds for a job (the older of Ray's two job records)."""

    status: JobStatus
    entrypoint: str
    message: str | None = None
    error_type: JobErrorType | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict | None = None
    runtime_env: dict | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict | None = None
    driver_agent_http_address: str | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["status"] = str(self.status)
        out["error_type"] = str(self.error_type) if self.error_type else None
        return out

    @classmethod
    def from_json(cls, json_dict: dict) -> "JobInfo":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in json_dict.items() if k in names}
        kw["status"] = JobStatus(kw["status"])
        kw["error_type"] = _error_type(kw.get("error_type"))
        return cls(**kw)


@dataclasses.dataclass
class JobDetails:
    """A job as get_job_info() and list_jobs() return it (Ray's JobDetails fields).

    `job_id` (the id of the driver the entrypoint starts) is not known to the head: None.
    `driver_agent_http_address` is None: raylite has no HTTP agent."""

    type: JobType
    entrypoint: str
    status: JobStatus
    submission_id: str | None = None
    job_id: str | None = None
    driver_info: DriverInfo | None = None
    message: str | None = None
    error_type: JobErrorType | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict | None = None
    runtime_env: dict | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict | None = None
    driver_agent_http_address: str | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None

    @classmethod
    def from_record(cls, record: dict) -> "JobDetails":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in record.items() if k in names}
        kw["type"] = JobType(kw.get("type", "SUBMISSION"))
        kw["status"] = JobStatus(kw["status"])
        kw["error_type"] = _error_type(kw.get("error_type"))
        if kw.get("driver_info") is not None:
            kw["driver_info"] = DriverInfo(**kw["driver_info"])
        return cls(**kw)

    def dict(self) -> dict:
        """The fields as a dict, enums as their names (as Ray's pydantic model's .dict())."""
        out = dataclasses.asdict(self)
        out["type"], out["status"] = str(self.type), str(self.status)
        out["error_type"] = str(self.error_type) if self.error_type else None
        return out


_STOPPED_MESSAGE = "Job was intentionally stopped."
_SUCCEEDED_MESSAGE = "Job finished successfully."


def new_record(submission_id: str, entrypoint: str, runtime_env: dict | None,
               metadata: dict | None, resources: dict[str, Any], now_ms: int) -> dict:
    """A PENDING job's record (the keys of JobDetails)."""
    return {"type": "SUBMISSION", "submission_id": submission_id, "job_id": None,
            "entrypoint": entrypoint, "status": "PENDING",
            "message": "Job has not started yet. It may be waiting for resources "
                       "(entrypoint_num_cpus, ...) or for its working_dir to be unpacked.",
            "error_type": None, "start_time": now_ms, "end_time": None,
            "metadata": dict(metadata or {}), "runtime_env": runtime_env,
            "entrypoint_num_cpus": resources.get("num_cpus"),
            "entrypoint_num_gpus": resources.get("num_gpus"),
            "entrypoint_memory": resources.get("memory"),
            "entrypoint_resources": resources.get("resources"),
            "driver_agent_http_address": None, "driver_node_id": None,
            "driver_exit_code": None, "driver_info": None}
