"""Task records: the task-event vocabulary, a record's row, and the reads of the store (pure;
task_events.py says how events make rows and keeps them).

    TaskEventTable (task_events.py) ── rows: lists in the layout below ──► RowQueries:
        query(filters, limit, offset)  filters first, then the limit; a TaskEventRecord only
                                       for each row returned
        summary(filters)               counts by (name, type, state)
"""
from __future__ import annotations

from typing import Any

from .filters import compile_filters, match_compiled
from .records import TaskEventRecord

PENDING_ARGS = "PENDING_ARGS_AVAIL"
PENDING_NODE = "PENDING_NODE_ASSIGNMENT"
PENDING_ACTOR = "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY"
RUNNING = "RUNNING"
RAN = "RAN"
FINISHED = "FINISHED"
FAILED = "FAILED"
RANK = {PENDING_ARGS: 1, PENDING_NODE: 1, PENDING_ACTOR: 1, RUNNING: 3, FINISHED: 4, FAILED: 4}
DONE = "DONE"
RUN = "RUN"
STATES = (*RANK, RAN, DONE, RUN)
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


# A row is a list (no object per record, no hex id or ms time kept twice):
(KEY, NAME, STATE, JOB, ACTOR, TYPE, NODE, WORKER, PID, ERR_TYPE, ERR_MSG, CREATED, START_US,
 END_US, OWNER, WORKER_ADDR, RANK_, RAN_, T_ARGS, T_PENDING, T_ENDED, PARENT) = range(22)
_BLANK: list = [None] * 22
_BLANK[NAME], _BLANK[STATE], _BLANK[TYPE], _BLANK[RANK_], _BLANK[RAN_] = \
    "", PENDING_NODE, "NORMAL_TASK", 0, False
_INDEX = {"name": NAME, "func_or_class_name": NAME, "state": STATE, "job_id": JOB,
          "actor_id": ACTOR, "type": TYPE, "node_id": NODE, "worker_id": WORKER,
          "worker_pid": PID, "error_type": ERR_TYPE, "error_message": ERR_MSG,
          "creation_time_ms": CREATED, "owner_address": OWNER, "worker_address": WORKER_ADDR,
          "start_time_us": START_US, "end_time_us": END_US, "parent_task_id": PARENT}


def _ms(us: int | None) -> int | None:
    return None if us is None else us // 1000


_DERIVED = {"task_id": lambda r: r[KEY][0].hex(), "attempt_number": lambda r: r[KEY][1],
            "start_time_ms": lambda r: _ms(r[START_US]), "end_time_ms": lambda r: _ms(r[END_US]),
            "events": lambda r: _events(r)}


def _get(row: list, key: str) -> Any:
    """A row's field by the record's name (the filters' reader)."""
    i = _INDEX.get(key)
    return row[i] if i is not None else _DERIVED[key](row)


def _events(row: list) -> list:
    """((state, ms), ...) in time order, from the times a row keeps."""
    out = []
    if row[T_ARGS] is not None:
        out.append((PENDING_ARGS, row[T_ARGS]))
    pending = row[T_PENDING] if row[T_PENDING] is not None else \
        row[CREATED] if row[T_ARGS] is None else None
    if pending is not None:
        out.append((PENDING_ACTOR if row[TYPE] == "ACTOR_TASK" else PENDING_NODE, pending))
    if row[START_US] is not None:
        out.append((RUNNING, row[START_US] // 1000))
    if row[RANK_] == 4:
        ended = row[T_ENDED] if row[T_ENDED] is not None else _ms(row[END_US])
        if ended is not None:
            out.append((row[STATE], ended))
    out.sort(key=lambda e: (e[1], RANK[e[0]]))
    return out


def _record(row: list) -> TaskEventRecord:
    (key, name, state, job, actor, kind, node, worker, pid, err_type, err_msg, created, start,
     end, owner, worker_addr) = row[:WORKER_ADDR + 1]
    return TaskEventRecord(key[0].hex(), key[1], name, state, job, actor, kind, name, node,
                           worker, pid, err_type, err_msg, created, _ms(start), _ms(end), owner,
                           worker_addr, tuple(_events(row)), start, end, row[PARENT])


class RowQueries:
    """The reads of TaskEventTable (mixed into it: `tasks`, `jobs`, `lost`, `max_per_job`,
    `max_attempt`, `row()` and `_fold()` are the table's)."""
    tasks: dict
    jobs: dict
    lost: int
    max_per_job: int
    max_attempt: int
    row: Any
    _fold: Any
    _index_fresh: Any

    def query(self, filters: Any = (), limit: int | None = None, offset: int = 0
              ) -> tuple[tuple, int]:
        """(the records that pass every filter, from the `offset`-th match on, at most `limit`
        of them; how many matched in all). Filters apply to every record before the limit."""
        out = []
        end = None if limit is None else offset + limit
        if not filters:
            self._fold()
            total = len(self.tasks)
            if end is None or end > offset:
                for i, t in enumerate(self.tasks.values()):
                    if i >= offset:
                        if end is not None and i >= end:
                            break
                        out.append(_record(t))
            return tuple(out), total
        compiled = compile_filters(filters)
        total = 0
        for t in self._candidates(filters):
            if match_compiled(t, compiled, _get):
                if offset <= total and (end is None or total < end):
                    out.append(_record(t))
                total += 1
        return tuple(out), total

    def _candidates(self, filters: Any) -> Any:
        """The rows a query must look at: a task id asked for (get_task) needs only its
        attempts, looked up; anything else, every row."""
        for key, pred, want in filters:
            if key == "task_id" and pred == "=" and isinstance(want, str):
                try:
                    tid = bytes.fromhex(want)
                except ValueError:
                    return ()
                row = self.row
                return [r for r in (row((tid, a)) for a in range(self.max_attempt + 1)) if r]
        self._fold()
        return self.tasks.values()

    def summary(self, filters: Any = ()) -> tuple:
        """((func_or_class_name, type, state, count), ...) over the records that pass."""
        self._fold()
        compiled = compile_filters(filters)
        counts: dict = {}
        for t in self.tasks.values():
            if not compiled or match_compiled(t, compiled, _get):
                k = (t[NAME], t[TYPE], t[STATE])
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
        self._index_fresh()
        return {"records": len(self.tasks), "jobs": len(self.jobs), "dropped": self.dropped(),
                "lost": self.lost, "ignored": self.ignored, "max_per_job": self.max_per_job}
