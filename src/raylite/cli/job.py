"""`raylite job submit|status|logs|stop|delete|list`: Jobs from the shell, through JobSubmissionClient.

    argparse (main.py) ─► run_<command>(args) ─► JobSubmissionClient(--address)
        one connection to the cluster for the whole command ─► print ─► exit code

Output: what a script wants on stdout (the job's log; with --no-wait, the submission id
alone), progress and hints on stderr. Exit codes: 0 done (submit: the job
SUCCEEDED), 1 could not, or the job did not succeed, 2 bad flags, 130 Ctrl-C while
following (the job keeps running). raylite.job_submission is imported when a command
runs, so `raylite --help` stays quick.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any, Iterator

from . import _records as rec


class _Usage(Exception):
    """A bad flag: exit code 2."""


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Any]:
    """A client connected for the whole command; errors printed as `raylite job <cmd>: ...`."""
    os.environ["RAYLITE_TEMP_DIR"] = rec.temp_dir(args.temp_dir)
    from raylite.job_submission import JobSubmissionClient

    client = JobSubmissionClient(args.address)
    with client._connected():
        yield client


def _run(args: argparse.Namespace, body) -> int:
    try:
        return body(args)
    except _Usage as e:
        print(f"raylite job {args.job_command}: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError, ConnectionError, TypeError, OSError) as e:
        print(f"raylite job {args.job_command}: {e}", file=sys.stderr)
        return 1


def _json(flag: str, text: str | None, kind: type = dict) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise _Usage(f"{flag} is not valid JSON ({e}).") from None
    if not isinstance(value, kind):
        raise _Usage(f"{flag} must be a JSON object, got {text!r}.")
    return value


def _follow(client, sid: str) -> None:
    for text in client._follow(sid):
        sys.stdout.write(text)
        sys.stdout.flush()


def _wait_to_run(client, sid: str) -> None:
    """While the job is PENDING (its supervisor starting, resources not free): a waiting line."""
    from ._progress import Waiting

    waiting = Waiting(f"Job {sid!r} is pending: waiting for it to start")
    try:
        while client.get_job_info(sid).status == "PENDING":
            waiting.tick()
            time.sleep(0.25)
    finally:
        waiting.done()


def _ended(client, sid: str) -> int:
    info = client.get_job_info(sid)
    print(f"Job {sid!r} {str(info.status).lower()}" + (
        "." if info.status == "SUCCEEDED" else f": {info.message}"), file=sys.stderr)
    return 0 if info.status == "SUCCEEDED" else 1


def _submit(args: argparse.Namespace) -> int:
    entrypoint = args.entrypoint[1:] if args.entrypoint[:1] == ["--"] else args.entrypoint
    if not entrypoint:
        raise _Usage("give the command to run after --, e.g. "
                     "`raylite job submit --working-dir . -- python script.py`.")
    runtime_env = _json("--runtime-env-json", args.runtime_env_json) or {}
    if args.working_dir:
        runtime_env["working_dir"] = args.working_dir
    with _client(args) as client:
        sid = client.submit_job(
            entrypoint=entrypoint[0] if len(entrypoint) == 1 else entrypoint,
            submission_id=args.submission_id, runtime_env=runtime_env or None,
            metadata=_json("--metadata-json", args.metadata_json),
            entrypoint_num_cpus=args.entrypoint_num_cpus,
            entrypoint_num_gpus=args.entrypoint_num_gpus,
            entrypoint_memory=args.entrypoint_memory,
            entrypoint_resources=_json("--entrypoint-resources", args.entrypoint_resources))
        if args.no_wait:
            print(sid)
            print(f"Job {sid!r} submitted. Follow it:  raylite job logs --follow {sid}\n"
                  f"  Its status:  raylite job status {sid}\n  Stop it:     raylite job stop {sid}",
                  file=sys.stderr)
            return 0
        print(f"Job {sid!r} submitted; its log follows (Ctrl-C stops following, not the job).",
              file=sys.stderr)
        try:
            _wait_to_run(client, sid)
            _follow(client, sid)
        except KeyboardInterrupt:
            print(f"\nStopped following. The job keeps running: raylite job stop {sid}",
                  file=sys.stderr)
            return 130
        return _ended(client, sid)


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        info = client.get_job_info(args.submission_id)
    print(f"Job {args.submission_id!r}: {info.status}")
    if info.message:
        print(f"  {info.message}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if not args.follow:
            sys.stdout.write(client.get_job_logs(args.submission_id))
            return 0
        try:
            _follow(client, args.submission_id)
        except KeyboardInterrupt:
            return 130
    return 0


def _stop(args: argparse.Namespace) -> int:
    sid = args.submission_id
    with _client(args) as client:
        if not client.stop_job(sid):
            print(f"Job {sid!r} was not running: {client.get_job_status(sid)}.")
            return 0
        if args.no_wait:
            print(f"Stopping job {sid!r}.")
            return 0
        while not client.get_job_status(sid).is_terminal():
            time.sleep(0.1)
        print(f"Job {sid!r}: {client.get_job_status(sid)}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete_job(args.submission_id)
    print(f"Job {args.submission_id!r} deleted.")
    return 0


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        jobs = client.list_jobs()
    if not jobs:
        print("No jobs (submit one: raylite job submit -- python script.py).")
        return 0
    width = max(len("SUBMISSION ID"), *(len(j.submission_id) for j in jobs))
    print(f"{'SUBMISSION ID':<{width}}  {'STATUS':<9}  {'STARTED':<19}  ENTRYPOINT")
    for j in jobs:
        entry = j.entrypoint if len(j.entrypoint) <= 60 else j.entrypoint[:57] + "..."
        print(f"{j.submission_id:<{width}}  {str(j.status):<9}  {_when(j.start_time):<19}  {entry}")
    return 0


def run_submit(args: argparse.Namespace) -> int:
    return _run(args, _submit)


def run_status(args: argparse.Namespace) -> int:
    return _run(args, _status)


def run_logs(args: argparse.Namespace) -> int:
    return _run(args, _logs)


def run_stop(args: argparse.Namespace) -> int:
    return _run(args, _stop)


def run_delete(args: argparse.Namespace) -> int:
    return _run(args, _delete)


def run_list(args: argparse.Namespace) -> int:
    return _run(args, _list)
