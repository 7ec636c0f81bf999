"""get_log(task_id=...): the lines one task attempt printed, out of its worker's files.

    task_id ─► fetch.ask_tasks(task_id = ID) ─► the attempt's record: worker id and pid
            ─► <session>/logs/worker-<worker id>-<pid>.<out|err> and its rotated .N .. .1
               (oldest first), read in order
            ─► the lines between ":raylite_task_begin:<id>:<attempt>" and
               ":raylite_task_end:<id>:<attempt>" (the markers _worker/output.py writes
               around a task's output; a task that printed nothing has none: no lines),
               less those after another task's begin marker (a concurrent actor's calls
               interleave: each run of a call's lines starts with its begin marker)
            ─► the last `tail` of them; with follow, new ones until its end (the end
               marker, the next task's begin marker, or its record no longer RUNNING)

A task still running has no end marker yet: its lines so far (and, following, the rest).
The files are this machine's only; a task whose worker ran elsewhere is not readable here.
"""
from __future__ import annotations

from typing import Iterator

from .common import RayStateApiException
from .log_read import read_lines

BEGIN, END = ":raylite_task_begin:", ":raylite_task_end:"


def is_marker(line: str) -> bool:
    return line.startswith((BEGIN, END))


def still_running(target, task_id: str, attempt_number: int, timeout, clock=None):
    """A callable: is the attempt still RUNNING? It asks the GCS at most once a second
    (answering True in between); a cluster that does not answer counts as ended."""
    import time

    clock = clock or time.monotonic
    last = [clock(), True]

    def running() -> bool:
        if clock() - last[0] >= 1.0:
            last[0] = clock()
            try:
                last[1] = attempt_of(target, task_id, attempt_number, timeout).state == "RUNNING"
            except RayStateApiException:
                last[1] = False
        return last[1]
    return running


def attempt_of(target, task_id: str, attempt_number: int | None, timeout):
    """The record of `task_id`'s attempt (the latest when attempt_number is None)."""
    from .fetch import ask_tasks

    records = ask_tasks(target, [("task_id", "=", task_id)], None, 0, False, timeout).records
    if not records:
        raise RayStateApiException(f"no task {task_id!r} in the cluster's task records (see "
                                   "`raylite list tasks`; the oldest finished ones are dropped "
                                   "past the bound per job)")
    if attempt_number is None:
        return max(records, key=lambda r: r.attempt_number)
    for r in records:
        if r.attempt_number == attempt_number:
            return r
    raise RayStateApiException(f"task {task_id} has no attempt {attempt_number}; its attempts: "
                               f"{', '.join(str(r.attempt_number) for r in records)}")


def worker_files(workers: dict, worker_id: str, pid: int, suffix: str) -> list[str]:
    """Paths of the worker's `suffix` file and its rotated ones, oldest first."""
    base = f"worker-{worker_id}-{pid}.{suffix}"
    rotated = sorted((n for n in workers if n.startswith(base + ".")),
                     key=lambda n: -int(n.rpartition(".")[2]))
    return [workers[n] for n in rotated] + ([workers[base]] if base in workers else [])


def task_lines(files: dict, record, suffix: str, tail: int, follow: bool,
               interval: float, running=None) -> Iterator[str]:
    """The attempt's lines from the worker files in `files` (logs.log_files()["worker"]);
    RayStateApiException now (not when iterated) when there is nothing to read. Following
    a running task ends at its end marker, or once `running()` (asked when the file has
    nothing new, at most once a second) says it ended."""
    if record.worker_pid is None or record.worker_id is None:
        raise RayStateApiException(f"task {record.task_id} has not run yet (state "
                                   f"{record.state}): it has no output")
    paths = worker_files(files, record.worker_id, record.worker_pid, suffix)
    if not paths:
        raise RayStateApiException(
            f"no {suffix} file of worker {record.worker_id[:12]} (pid {record.worker_pid}), "
            f"which ran task {record.task_id}, on this machine: it printed nothing (the file "
            "is made on its first output), or it ran on another node, whose files are not "
            "readable from here")
    key = f"{record.task_id}:{record.attempt_number}\n"
    if record.state != "RUNNING":
        follow = False  # ended: its lines are all written (its end marker may wait)
    return _lines(paths, _Segment(BEGIN + key, END + key), tail, follow, interval, running)


def _lines(paths: list, seg, tail: int, follow: bool, interval: float,
           running) -> Iterator[str]:
    lines: list | None = []
    for i, path in enumerate(paths):
        following = follow and i == len(paths) - 1
        for line in read_lines(path, -1, following, interval, sentinel=following,
                               until=(lambda: not running()) if following else None):
            if line is None:  # what the file held is read: from here on, new lines
                yield from _flush(lines, tail)
                lines = None
                continue
            got = seg.feed(line)
            if seg.done:
                break
            if got is not None:
                if lines is None:
                    yield got
                else:
                    lines.append(got)
        if seg.done:
            break
    if lines is not None:
        yield from _flush(lines, tail)


class _Segment:
    """Picks a task's lines: those after one of its begin markers, until another task's
    begin marker (calls of a concurrent actor take turns: a call's lines come in runs, each
    after its begin marker) or its end marker, which ends it."""
    __slots__ = ("begin", "end", "inside", "done")

    def __init__(self, begin: str, end: str):
        self.begin, self.end, self.inside, self.done = begin, end, False, False

    def feed(self, line: str) -> str | None:
        if line == self.end:
            self.done = True
            return None
        if line.startswith(BEGIN):  # a run of its lines starts, or another's does
            self.inside = line == self.begin
            return None
        return line if self.inside and not line.startswith(END) else None


def _flush(lines: list, tail: int) -> list:
    return lines if tail is None or tail < 0 else lines[-tail:] if tail else []
