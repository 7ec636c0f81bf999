"""Task events: the vocabulary, and the bounded store that turns them into task records (pure).

    owners (submit, push, finish, fail, retry, cancel) ─┐ batches of events, every ~100 ms,
    workers (running start and end)                    ─┴► TaskEventTable.add(batch, who)
                                                              one _Task per (task id, attempt),
                                                              at most `max_per_job` per job
    list_tasks / raylite list tasks / timeline ──────────► query(filters, limit, offset)
                                                              filters first, then the limit

An event is a plain tuple, cheap to make and to pickle:

    (task_id: bytes, attempt: int, state: str, time: float (s since the epoch), info)

    state                         made by   info
    PENDING_ARGS_AVAIL            owner     (job_id, name, actor_id or None): a new attempt
    PENDING_NODE_ASSIGNMENT       owner     the same, or None once its arguments are ready
    PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY  owner  (job_id, name, actor_id): a new call
    SUBMITTED_TO_WORKER           owner     the worker's address
    RUNNING                       worker    (job_id, name): the job it runs for, its full name
    RAN                           worker    None: the body returned or raised (not a state)
    FINISHED                      owner     None
    FAILED                        owner     (error_type, error_message)

Events of one attempt come from two processes (its owner and its worker), so they may
arrive in any order: a record's state only moves forward (pending < submitted < running <
finished or failed), and the worker's times win over the owner's for start and end.

Bounded: each job keeps at most `max_per_job` records; a new one pushes out that job's
oldest finished (FINISHED or FAILED) record, or, when none has finished, its oldest. Each
record pushed out is counted in the job's `dropped`, and `lost` counts events processes
dropped before sending (their buffers were full); both are reported with every query, so
a user is told what is missing.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from .filters import compile_filters, match_compiled
from .records import TaskEventRecord

PENDING_ARGS = "PENDING_ARGS_AVAIL"
PENDING_NODE = "PENDING_NODE_ASSIGNMENT"
PENDING_ACTOR = "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY"
SUBMITTED = "SUBMITTED_TO_WORKER"
RUNNING = "RUNNING"
RAN = "RAN"
FINISHED = "FINISHED"
FAILED = "FAILED"
RANK = {PENDING_ARGS: 1, PENDING_NODE: 1, PENDING_ACTOR: 1, SUBMITTED: 2, RUNNING: 3,
        FINISHED: 4, FAILED: 4}
STATES = (*RANK, RAN)
MAX_PER_JOB = 100_000         # records kept per job (RAYLITE_TASK_EVENTS_MAX_PER_JOB)

# Ray's ErrorType names, by the class name of the error a task failed with.
ERROR_TYPES = {"TaskCancelledError": "TASK_CANCELLED", "WorkerCrashedError": "WORKER_DIED",
               "ActorDiedError": "ACTOR_DIED", "ActorUnavailableError": "ACTOR_UNAVAILABLE",
               "OutOfMemoryError": "OUT_OF_MEMORY", "ObjectStoreFullError": "OBJECT_STORE_FULL",
               "RaySystemError": "LOCAL_RAYLET_DIED", "OwnerDiedError": "OWNER_DIED",
               "ObjectLostError": "OBJECT_UNRECONSTRUCTABLE"}
USER_ERROR = "TASK_EXECUTION_EXCEPTION"


def error_info(error: BaseException) -> tuple[str, str]:
    """(Ray's error_type, the error's first line) of the error a task failed with."""
    kind = ERROR_TYPES.get(type(error).__name__)
    if kind is None:
        kind = USER_ERROR
        for cls in type(error).__mro__:  # a RayTaskError subclass made for the user's type
            if cls.__name__ in ERROR_TYPES:
                kind = ERROR_TYPES[cls.__name__]
                break
    cause = getattr(error, "cause", None)  # a RayTaskError: the user's exception says more
    if kind == USER_ERROR and not isinstance(cause, BaseException):
        cause = error                     # the user's exception itself (local mode)
    try:
        text = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(error)
    except Exception:
        text = type(error).__name__
    return kind, (text.strip().partition("\n")[0] or type(error).__name__)[:500]


_FIELDS = TaskEventRecord._fields
_PLAIN = _FIELDS[:_FIELDS.index("events")]   # copied as they are; events, µs times after


class _Task:
    """One attempt, as far as its events have told (the record's fields, in ms)."""
    __slots__ = (*_FIELDS, "rank", "ran", "key")

    def __init__(self, key: tuple, job_id: str | None):
        self.key = key
        self.task_id, self.attempt_number = key[0].hex(), key[1]
        self.job_id = job_id
        self.name = self.func_or_class_name = ""
        self.state, self.type = PENDING_NODE, "NORMAL_TASK"
        self.actor_id = self.node_id = self.worker_id = self.worker_pid = None
        self.error_type = self.error_message = None
        self.creation_time_ms = self.start_time_ms = self.end_time_ms = None
        self.start_time_us = self.end_time_us = None
        self.owner_address = self.worker_address = None
        self.events: list = []
        self.rank = 0
        self.ran = False

    def record(self) -> TaskEventRecord:
        events = self.events  # two processes' events: in the order they happened
        if len(events) > 1:
            events = sorted(events, key=lambda e: (e[1], RANK.get(e[0], 0)))
        return TaskEventRecord(*[getattr(self, f) for f in _PLAIN], tuple(events),
                               self.start_time_us, self.end_time_us)


class _Job:
    __slots__ = ("keys", "finished", "dropped")

    def __init__(self) -> None:
        self.keys: dict = {}          # key -> None, oldest first
        self.finished: deque = deque()  # keys in the order they finished (some gone since)
        self.dropped = 0


class TaskEventTable:
    """Task records built from events, bounded per job (call with the shell's lock held)."""

    def __init__(self, max_per_job: int = MAX_PER_JOB):
        if max_per_job < 1:
            raise ValueError(f"max_per_job must be at least 1, not {max_per_job}")
        self.max_per_job = max_per_job
        self.tasks: dict[tuple, _Task] = {}   # (task id, attempt) -> record, oldest first
        self.jobs: dict[str | None, _Job] = {}
        self.lost = 0                          # events dropped by their processes, unsent
        self.ignored = 0                       # events for no known attempt (pushed out, ...)

    # -- events ------------------------------------------------------------------
    def add(self, events: Any, address: str | None = None, node_id: str | None = None,
            worker_id: str | None = None, pid: int | None = None, lost: int = 0) -> None:
        """A batch of events from the process at `address` (a worker: `node_id`, `worker_id`
        and `pid` say which; its RUNNING events place the attempt there)."""
        self.lost += lost
        tasks = self.tasks
        for task_id, attempt, state, at, info in events:
            key = (task_id, attempt)
            t = tasks.get(key)
            us = int(at * 1e6)
            ms = us // 1000
            if t is None:
                t = self._new(key, state, info)
                if t is None:
                    self.ignored += 1
                    continue
            if state == RAN:
                t.end_time_ms, t.end_time_us, t.ran = ms, us, True
                continue
            rank = RANK.get(state, 0)
            if rank == 1 and info is not None:  # a new attempt (or call): who and what it is
                job, name, actor = info
                t.name = t.func_or_class_name = name
                if actor is not None:
                    t.actor_id, t.type = actor.hex(), "ACTOR_TASK"
                t.owner_address = address
                t.creation_time_ms = ms
            elif state == SUBMITTED:
                t.worker_address = info
            elif state == RUNNING:
                t.start_time_ms, t.start_time_us = ms, us
                t.name = t.func_or_class_name = info[1]
                t.node_id, t.worker_id, t.worker_pid = node_id, worker_id, pid
                t.worker_address = address
            elif rank == 4:
                if state == FAILED:
                    t.error_type, t.error_message = info
                if not t.ran:
                    t.end_time_ms, t.end_time_us = ms, us
            t.events.append((state, ms))
            if rank >= t.rank:
                if rank == 4 and t.rank < 4:
                    self.jobs[t.job_id].finished.append(key)
                t.rank, t.state = rank, state

    def _new(self, key: tuple, state: str, info: Any) -> _Task | None:
        if RANK.get(state) == 1 and info is not None:
            job = info[0]
        elif state == RUNNING:
            job = info[0]
        else:
            return None  # a later event of an attempt pushed out (or never announced)
        job = job.hex() if type(job) is bytes and job else None
        j = self.jobs.get(job)
        if j is None:
            j = self.jobs[job] = _Job()
        t = self.tasks[key] = _Task(key, job)
        j.keys[key] = None
        if len(j.keys) > self.max_per_job:
            self._push_out(j)
        return t

    def _push_out(self, j: _Job) -> None:
        keys, finished = j.keys, j.finished
        while finished:
            key = finished.popleft()
            if key in keys:
                break
        else:
            key = next(iter(keys))
        del keys[key]
        del self.tasks[key]
        j.dropped += 1

    # -- queries -----------------------------------------------------------------
    def query(self, filters: Any = (), limit: int | None = None, offset: int = 0
              ) -> tuple[tuple, int]:
        """(the records that pass every filter, from the `offset`-th match on, at most `limit`
        of them; how many matched in all). Filters apply to every record before the limit."""
        out = []
        end = None if limit is None else offset + limit
        if not filters:
            total = len(self.tasks)
            if end is None or end > offset:
                for i, t in enumerate(self.tasks.values()):
                    if i >= offset:
                        if end is not None and i >= end:
                            break
                        out.append(t.record())
            return tuple(out), total
        compiled = compile_filters(filters)
        total = 0
        for t in self.tasks.values():
            if match_compiled(t, compiled):
                if offset <= total and (end is None or total < end):
                    out.append(t.record())
                total += 1
        return tuple(out), total

    def summary(self, filters: Any = ()) -> tuple:
        """((func_or_class_name, type, state, count), ...) over the records that pass."""
        compiled = compile_filters(filters)
        counts: dict = {}
        for t in self.tasks.values():
            if not compiled or match_compiled(t, compiled):
                k = (t.func_or_class_name, t.type, t.state)
                counts[k] = counts.get(k, 0) + 1
        return tuple((*k, n) for k, n in counts.items())

    def answer(self, filters: Any, limit: int, offset: int, summary: bool) -> tuple:
        """(rows, total, dropped, lost, max_per_job): a GetTaskEvents request's answer (limit
        -1: all; summary: counts by function, type and state), as TaskEventsReply's fields."""
        if summary:
            rows = self.summary(filters)
            total = sum(r[-1] for r in rows)
        else:
            rows, total = self.query(filters, None if limit < 0 else limit, offset)
        return rows, total, self.dropped(), self.lost, self.max_per_job

    def dropped(self) -> int:
        """Records pushed out by the bound, over every job."""
        return sum(j.dropped for j in self.jobs.values())

    def statistics(self) -> dict:
        return {"records": len(self.tasks), "jobs": len(self.jobs), "dropped": self.dropped(),
                "lost": self.lost, "ignored": self.ignored, "max_per_job": self.max_per_job}
