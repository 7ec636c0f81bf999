"""Jobs: run a command on a raylite cluster's head and follow it, as Ray's job_submission does.

    from raylite.job_submission import JobSubmissionClient, JobStatus

    client = JobSubmissionClient("127.0.0.1:6380")       # or None: RAYLITE_ADDRESS / "auto"
    sid = client.submit_job(entrypoint="python script.py", runtime_env={"working_dir": "./"})
    client.get_job_status(sid)                            # JobStatus.RUNNING ... SUCCEEDED
    print(client.get_job_logs(sid))

The pieces, each a module here: client (JobSubmissionClient), manager (the cluster's job
manager actor: every job's record), supervisor (one actor per job: runs its entrypoint),
_runner.py (the entrypoint's process group leader), package (working_dir packing),
models (JobStatus, JobInfo, JobDetails, ...). Built on raylite's public API only.
"""
from .client import JobSubmissionClient
from .models import DriverInfo, JobDetails, JobErrorType, JobInfo, JobStatus, JobType

__all__ = ["DriverInfo", "JobDetails", "JobErrorType", "JobInfo", "JobStatus", "JobSubmissionClient",
           "JobType"]
