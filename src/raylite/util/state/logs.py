"""list_logs and get_log: the log files a cluster keeps on this machine.

    <temp>/raylite_head.log[.1 .. .N]          the head daemon's log (rotated by size)  "node"
    <temp>/raylite_node.log[.1 .. .N]          joined nodes' daemons (one shared file)   "node"
    <session>/logs/worker-<id>-<pid>.out|.err  a worker's stdout / stderr (rotated by   "worker"
                   [.1 .. .N]                  size; made on its first output)
    <session>/logs/job-driver-<id>.log         a submitted job's output (`raylite job`)  "job"

log_files() is the one listing: the dashboard's logs page serves the same files. Files are
found from the cluster's records (fetch.resolve: the session dir and temp dir of the cluster
asked); with no cluster running here, the newest stopped cluster's kept logs (_session.py:
a clean stop keeps logs/ until the next head starts). They are read directly: only files
of a cluster on this machine can be read. A name is looked up in that listing, never joined
to a path, so no name reaches outside it.

get_log by `pid` reads that worker's file (`suffix` "out" or "err"); by `actor_id`, the
file of the worker that hosts the actor (its pid from list_actors); by `task_id`, the lines
that attempt printed (`attempt_number`, default the latest), found in its worker's files
between the markers the worker writes around a task's output (task_logs.py). Reading a
worker's whole file leaves those markers out.

get_log yields the file's last `tail` lines (-1: all), then, with follow=True, each line as
it is written (a rotated file is reopened), until the caller stops iterating.
"""
from __future__ import annotations

import fnmatch
import os
import re
from typing import Iterator

from .common import RayStateApiException
from .fetch import resolve
from .log_read import read_lines as _read
from .task_logs import is_marker

NODE_LOGS = ("raylite_head.log", "raylite_node.log")
CATEGORIES = ("node", "worker", "job")
_WORKER = re.compile(r"^worker-[0-9a-f]+-(\d+)\.(out|err)(\.\d+)?$")


def log_files(temp: str | None, session_dir: str | None) -> dict[str, dict[str, str]]:
    """{category: {filename: path}} of the log files of the cluster whose temp dir and
    session dir these are: the daemons' logs in `temp`, the files of `session_dir`/logs."""
    from raylite import _private_files as private

    out: dict[str, dict[str, str]] = {c: {} for c in CATEGORIES}
    if temp and private.check_dir(temp):
        for name in sorted(os.listdir(temp)):
            if name.partition(".log")[0] + ".log" in NODE_LOGS and _is_file(os.path.join(temp, name)):
                out["node"][name] = os.path.join(temp, name)
    logs = os.path.join(session_dir, "logs") if session_dir else None
    if logs and private.check_dir(session_dir) and private.check_dir(logs):
        for name in sorted(os.listdir(logs)):
            path = os.path.join(logs, name)
            if not _is_file(path):
                continue
            if _WORKER.match(name):
                out["worker"][name] = path
            elif name.endswith(".log"):
                out["job"][name] = path
    return out


def _files(address, temp_dir) -> dict[str, dict[str, str]]:
    """log_files() of the cluster asked, else (no address, none running) the newest kept logs."""
    try:
        target = resolve(address, temp_dir)
    except RayStateApiException:
        if address is not None:
            raise
        from raylite import _session
        from raylite.cli import _records as rec

        temp = rec.temp_dir(temp_dir)
        ended = _session.ended_sessions(temp)
        if not ended:
            raise
        return log_files(temp, ended[0])
    return log_files(target.temp_dir, target.session_dir)


def _refuse_on_ray(address, call: str) -> None:
    """On the ray runtime (no address): the logs are Ray's, listed by Ray's state API only."""
    if address is None:
        from raylite import _runtime

        rt = _runtime.current()
        if rt is not None and rt.name == "ray":
            from . import on_ray

            on_ray.refuse(call, "logs", rt.info().session_dir)


def _is_file(path: str) -> bool:
    return os.path.isfile(path) and not os.path.islink(path)


def list_logs(address=None, node_id=None, node_ip=None, glob_filter: str = "*",
              timeout=30, _temp_dir=None) -> dict[str, list[str]]:
    """The log files of the cluster on this machine, by category ("node", "worker", "job"),
    as Ray's list_logs gives {category: [filename, ...]}. node_id/node_ip: only this
    machine's files can be read, so they select nothing else."""
    _refuse_on_ray(address, "list_logs")
    files = _files(address, _temp_dir)
    return {cat: [n for n in names if fnmatch.fnmatch(n, glob_filter)]
            for cat, names in files.items()}


def get_log(address=None, node_id=None, node_ip=None, filename: str | None = None,
            actor_id=None, task_id=None, pid=None, follow: bool = False, tail: int = 1000,
            timeout=30, suffix: str = "out", submission_id: str | None = None,
            attempt_number: int | None = None, _interval: float = 0.25,
            _temp_dir=None) -> Iterator[str]:
    """Lines of one log file (each ending in a newline): by `filename` (from list_logs), a
    worker's by `pid` or `actor_id` (`suffix` "out" or "err"), a task's by `task_id` (the
    lines its attempt `attempt_number`, default the latest, printed), or a submitted job's
    by `submission_id`. The last `tail` lines (-1: all), then, with `follow`, new lines
    (for a task: until it ends)."""
    if suffix not in ("out", "err"):
        raise RayStateApiException(f"suffix must be 'out' or 'err', got {suffix!r}")
    _refuse_on_ray(address, "get_log")
    if task_id is not None:
        return _task_log(address, task_id, attempt_number, suffix, tail, follow, timeout,
                         _interval, _temp_dir)
    files = _files(address, _temp_dir)
    if actor_id is not None:
        pid = _actor_pid(address, actor_id, _temp_dir)
    if pid is not None:
        filename = _worker_file(files["worker"], pid, suffix)
    if submission_id is not None:
        filename = f"job-driver-{submission_id}.log"
    if not filename:
        raise RayStateApiException("get_log needs a filename (see list_logs()), a pid, an "
                                   "actor_id or a submission_id.")
    path = next((cat[filename] for cat in files.values() if filename in cat), None)
    if path is None:
        names = [n for cat in files.values() for n in cat]
        raise RayStateApiException(f"no log file {filename!r} here; the files are: "
                                   f"{', '.join(names) or 'none'}")
    if path in files["worker"].values():
        return (line for line in _read(path, tail, follow, _interval) if not is_marker(line))
    return _read(path, tail, follow, _interval)


def _task_log(address, task_id, attempt_number, suffix, tail, follow, timeout, interval,
              temp_dir) -> Iterator[str]:
    from .task_logs import attempt_of, still_running, task_lines

    if not isinstance(task_id, str):
        raise RayStateApiException(f"task_id must be a hex string, got {type(task_id).__name__}")
    target = resolve(address, temp_dir)
    if target.address is None:
        raise RayStateApiException("in local mode a task's output is the driver's own: it is "
                                   "printed where the driver's is, not kept in a file")
    record = attempt_of(target, task_id, attempt_number, timeout)
    files = log_files(target.temp_dir, target.session_dir)
    running = still_running(target, task_id, record.attempt_number, timeout)
    return task_lines(files["worker"], record, suffix, tail, follow, interval, running)


def _worker_file(workers: dict, pid, suffix: str) -> str:
    for name in workers:
        m = _WORKER.match(name)
        if m and m.group(1) == str(pid) and m.group(2) == suffix and not m.group(3):
            return name
    raise RayStateApiException(f"no {suffix} log of a worker with pid {pid} here (a worker's "
                               "file is made on its first output); see list_logs().")


def _actor_pid(address, actor_id: str, temp_dir) -> int:
    from .fetch import ask

    snap, _ = ask(resolve(address, temp_dir), ("actors", "workers"), False, timeout=10.0)
    worker = next((w for w in snap.workers if w.actor_id == actor_id and w.pid), None)
    if worker is None:
        raise RayStateApiException(f"no live actor {actor_id!r} with a worker here: its logs "
                                   "cannot be found by actor id (see list_logs() for the files)")
    return worker.pid
