"""list_logs and get_log: the log files a cluster keeps on this machine.

    <temp>/raylite_head.log[.1 .. .N]     the head daemon's log (rotated by size)   "node"
    <temp>/raylite_node.log[.1 .. .N]     joined nodes' daemons (one shared file)    "node"
    <session>/logs/job-driver-<id>.log    a submitted job's output (`raylite job`)   "job"

Files are found from the cluster's records (fetch.resolve: the session dir and temp dir of
the cluster asked), and read directly: only files of a cluster on this machine can be read.
A name is looked up in that listing, never joined to a path, so no name reaches outside it.
Workers' output is streamed to their driver and not kept in per-worker files yet, so
logs by actor_id, task_id or pid are not available: asking for them says so.

get_log yields the file's last `tail` lines (-1: all), then, with follow=True, each line as
it is written (a rotated file is reopened), until the caller stops iterating.
"""
from __future__ import annotations

import fnmatch
import os
import time
from typing import Iterator

from .common import RayStateApiException
from .fetch import resolve

NODE_LOGS = ("raylite_head.log", "raylite_node.log")


def _files(address, temp_dir) -> dict[str, dict[str, str]]:
    """{category: {filename: path}} of the cluster's log files on this machine."""
    from raylite import _private_files as private

    target = resolve(address, temp_dir)
    out: dict[str, dict[str, str]] = {"node": {}, "job": {}}
    temp = target.temp_dir
    if temp and private.check_dir(temp):
        for name in sorted(os.listdir(temp)):
            if name.partition(".log")[0] + ".log" in NODE_LOGS and _is_file(os.path.join(temp, name)):
                out["node"][name] = os.path.join(temp, name)
    logs = os.path.join(target.session_dir, "logs") if target.session_dir else None
    if logs and private.check_dir(target.session_dir) and private.check_dir(logs):
        for name in sorted(os.listdir(logs)):
            if name.endswith(".log") and _is_file(os.path.join(logs, name)):
                out["job"][name] = os.path.join(logs, name)
    return out


def _is_file(path: str) -> bool:
    return os.path.isfile(path) and not os.path.islink(path)


def list_logs(address=None, node_id=None, node_ip=None, glob_filter: str = "*",
              timeout=30, _temp_dir=None) -> dict[str, list[str]]:
    """The log files of the cluster on this machine, by category ("node", "job"), as Ray's
    list_logs gives {category: [filename, ...]}. node_id/node_ip: only this machine's files
    can be read, so they select nothing else."""
    files = _files(address, _temp_dir)
    return {cat: [n for n in names if fnmatch.fnmatch(n, glob_filter)]
            for cat, names in files.items()}


def get_log(address=None, node_id=None, node_ip=None, filename: str | None = None,
            actor_id=None, task_id=None, pid=None, follow: bool = False, tail: int = 1000,
            timeout=30, suffix: str = "out", submission_id: str | None = None,
            _interval: float = 0.25, _temp_dir=None) -> Iterator[str]:
    """Lines of one log file (each ending in a newline): by `filename` (from list_logs), or
    a submitted job's by `submission_id`. The last `tail` lines (-1: all), then, with
    `follow`, new lines as they come."""
    if actor_id is not None or task_id is not None or pid is not None:
        raise RayStateApiException(
            "logs by actor_id, task_id or pid are not kept yet: workers' output is printed by "
            "their driver (and by `raylite job logs` for submitted jobs); see `raylite logs` "
            "for the files there are.")
    if submission_id is not None:
        filename = f"job-driver-{submission_id}.log"
    if not filename:
        raise RayStateApiException("get_log needs a filename (see list_logs()) or a "
                                   "submission_id.")
    files = _files(address, _temp_dir)
    path = files["node"].get(filename) or files["job"].get(filename)
    if path is None:
        names = [n for cat in files.values() for n in cat]
        raise RayStateApiException(f"no log file {filename!r} here; the files are: "
                                   f"{', '.join(names) or 'none'}")
    return _read(path, tail, follow, _interval)


def _open(path: str):
    """The log file, opened without following a link and only if it is ours
    (_private_files: NotPrivateError names the path otherwise)."""
    from raylite import _private_files as private

    return os.fdopen(private.open_file(path), "rb")


def _read(path: str, tail: int, follow: bool, interval: float) -> Iterator[str]:
    f = _open(path)
    try:
        lines = f.read().splitlines(keepends=True)
        for line in lines if tail is None or tail < 0 else lines[-tail:] if tail else []:
            yield line.decode("utf-8", "replace")
        partial = b""
        while follow:
            chunk = f.read()
            if chunk:
                *done, partial = (partial + chunk).split(b"\n")
                for line in done:
                    yield line.decode("utf-8", "replace") + "\n"
                continue
            if _rotated(f, path):
                f.close()
                f, partial = _open(path), b""
                continue
            time.sleep(interval)
    finally:
        f.close()


def _rotated(f, path: str) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except OSError:
        return False
