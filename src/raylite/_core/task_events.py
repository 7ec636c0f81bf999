"""Task events: the vocabulary, and the bounded store that turns them into task records (pure).

    owners (a new attempt, a failure, a retry)          ─┐ batches of events, every ~100 ms,
    workers (a run's start and end)                    ─┴► TaskEventTable.add(batch, who)
                                                              one row per (task id, attempt),
                                                              at most `max_per_job` per job
    list_tasks / raylite list tasks / timeline ──────────► query(filters, limit, offset)
                                                              filters first, then the limit

An event is a plain tuple, cheap to make and to pickle:

    (task_id: bytes, attempt: int, state: str, time: float (s since the epoch), info)

    state                         made by   info
    PENDING_ARGS_AVAIL            owner     (job_id, name, actor_id or None, parent task id
                                            or None): a new attempt
    PENDING_NODE_ASSIGNMENT       owner     the same, or None once its arguments are ready
    PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY  owner  (job_id, name, actor_id, parent): a
                                            new call; an actor's creation (its __init__) is a
                                            task whose id is the actor's, pending as
                                            PENDING_NODE_ASSIGNMENT, one attempt per
                                            incarnation (the GCS adds the restarts' events:
                                            actor_attempts.py)
    RUNNING                       worker    (job_id, name): still running when the worker
                                            sent its last batch (time: when it started)
    FINISHED                      worker    (job_id, name, start): the body returned and its
                                            results were stored (time: when)
    RAN                           worker    (job_id, name, start): the body raised (not a
                                            state: the owner decides whether it is retried)
    FAILED                        owner     (error_type, error_message)
    DONE                          owner     (start, who): the run returned (time: its end;
                                            who: (node id hex, worker id hex, pid, address)
                                            of the worker, from its reply, or None)
    RUN                           owner     (start, who): the run raised (time: its end;
                                            not a state: the owner decides, FAILED or retry)

A task whose run returned before its owner sent its opening (nearly every short task)
travels whole instead, in a batch's columns of whole tasks (ids, attempts, ends, opening
infos, opening states, opening times, starts, who): one row from its owner, nothing from
its worker. A task still pending when its owner sent is its opening, then a DONE. A run
that raised is a RUN then a FAILED (or a retry) from its owner; a worker tells a RAN only
when it has no reply to carry the times (an actor that exited in a call), and a RUNNING
for a task still running when it sends. An event costs its sender a clock
read and a tuple, and the GCS a few list stores: a row is a list, not an object, with no
hex id or ms time kept twice (made into a TaskEventRecord only for the rows a query
returns). DONE is not a state: it brings a row to FINISHED; RUN, like RAN, only places
and times the run.

Events of one attempt come from two processes (its owner and its worker), so they may
arrive in any order: a record's state only moves forward (pending < running < finished or
failed), and the worker's times win over the owner's for start and end.

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


_OPENING = frozenset((PENDING_ARGS, PENDING_NODE, PENDING_ACTOR))


def _kind(task_id: bytes, actor_id: bytes | None) -> str:
    """A record's type: an actor's creation task has the actor's id (Ray's
    ACTOR_CREATION_TASK, its __init__), its calls have ids of their own."""
    if not actor_id:
        return "NORMAL_TASK"
    return "ACTOR_CREATION_TASK" if task_id == actor_id else "ACTOR_TASK"


def _hex_job(job: Any, cache: dict) -> str | None:
    """A job id as the records show it (hex; None for none), remembered in `cache`."""
    if len(cache) > 4096:
        cache.clear()
    text = cache[job] = job.hex() if type(job) is bytes and job else None
    return text


class _Job:
    __slots__ = ("count", "finished", "dropped")

    def __init__(self) -> None:
        self.count = 0                  # its rows
        self.finished: deque = deque()  # keys in the order they finished (some gone since)
        self.dropped = 0


class TaskEventTable:
    """Task records built from events, bounded per job (call with the shell's lock held)."""

    def __init__(self, max_per_job: int = MAX_PER_JOB):
        if max_per_job < 1:
            raise ValueError(f"max_per_job must be at least 1, not {max_per_job}")
        self.max_per_job = max_per_job
        self.tasks: dict[tuple, list] = {}    # (task id, attempt) -> its row, oldest first
        self.jobs: dict[str | None, _Job] = {}
        self.lost = 0                          # events dropped by their processes, unsent
        self.ignored = 0                       # events for no known attempt (pushed out, ...)
        self.max_attempt = 0                   # the highest attempt number seen
        self._job_hex: dict = {}               # job id -> its hex (the rows' job)

    # -- events ------------------------------------------------------------------
    def add(self, events: Any, address: str | None = None, node_id: str | None = None,
            worker_id: str | None = None, pid: int | None = None, lost: int = 0) -> None:
        """A batch of events from the process at `address` (a worker: `node_id`, `worker_id`
        and `pid` say which; its RUNNING and RAN events place the attempt there). The two
        events nearly every task makes, an owner's new attempt and a worker's FINISHED
        after it, take the short ways; the rest, the general one (_apply)."""
        self.lost += lost
        tasks, jobs = self.tasks, self.jobs
        get = tasks.get
        for event in events:
            task_id, attempt, state, at, info = event
            key = (task_id, attempt)
            t = get(key)
            if t is None:
                if info is None or state == FAILED or state == DONE or state == RUN:
                    self.ignored += 1  # a later event of an attempt pushed out (or unknown)
                    continue
                if state in _OPENING:  # an owner's new attempt: its row made whole at once
                    job = self._job_hex.get(info[0]) or _hex_job(info[0], self._job_hex)
                    actor = info[2]
                    ms = int(at * 1000)
                    parent = info[3]
                    tasks[key] = [key, info[1], state, job, actor and actor.hex(),
                                  _kind(task_id, actor), None, None, None,
                                  None, None, ms, None, None, address, None, 1, False,
                                  ms if state == PENDING_ARGS else None, None, None,
                                  parent and parent.hex()]
                    j = jobs.get(job) or self._job(job)
                    j.count += 1
                    if attempt > self.max_attempt:
                        self.max_attempt = attempt
                    if j.count > self.max_per_job:
                        self._push_out(j, job)
                    continue
                t = self._new(key, info)
            elif state == FINISHED and t[RANK_] < 4:  # its worker's end, after its owner's
                t[NAME] = info[1]
                t[NODE], t[WORKER], t[PID], t[WORKER_ADDR] = node_id, worker_id, pid, address
                t[START_US], t[END_US], t[RAN_] = int(info[2] * 1e6), int(at * 1e6), True
                jobs[t[JOB]].finished.append(key)
                t[RANK_], t[STATE] = 4, FINISHED
                continue
            elif state == DONE or state == RUN:  # the row was made by an earlier event
                self._ran(t, key, info[0], at, info[1], state == DONE)
                continue
            self._apply(t, key, state, at, info, address, node_id, worker_id, pid)

    def add_whole(self, whole: tuple, address: str | None) -> None:
        """An owner's whole tasks (columns: ids, attempts, ends, opening infos, opening
        states, opening times, starts, who): each row made finished at once (an actor's
        creation task never comes whole: its worker tells how its __init__ ran)."""
        tasks, job_hex = self.tasks, self._job_hex
        ids, attempts, ends, infos, states, created, starts, whos = whole
        derived = {}  # id(opening info) -> (its job's hex, name, actor hex, type, parent hex)
        for info in infos:
            if id(info) not in derived:
                job_id, name, actor, parent = info
                derived[id(info)] = (job_hex.get(job_id) or _hex_job(job_id, job_hex), name,
                                     actor and actor.hex(), _kind(b"", actor),
                                     parent and parent.hex())
        no_one = (None, None, None, None)
        counts: dict = {}  # job -> new rows
        for key, end, d, info, state, at, start, who in zip(
                zip(ids, attempts), ends, map(derived.__getitem__, map(id, infos)), infos,
                states, created, starts, whos):
            t = tasks.get(key)
            if t is not None:  # a worker's RUNNING came first
                self._apply(t, key, state, at, info, address, None, None, None)
                self._ran(t, key, start, end, who)
                continue
            job, name, actor, kind, parent = d
            ms = int(at * 1000)
            w = who or no_one
            tasks[key] = [key, name, FINISHED, job, actor, kind, w[0], w[1], w[2], None, None,
                          ms, int(start * 1e6), int(end * 1e6), address, w[3], 4, True,
                          ms if state == PENDING_ARGS else None, None, None, parent]
            fin = counts.get(job)
            if fin is None:
                fin = counts[job] = []
            fin.append(key)
        self.max_attempt = max(self.max_attempt, max(attempts))
        for job, keys in counts.items():  # then each job's bound
            j = self.jobs.get(job) or self._job(job)
            j.finished.extend(keys)
            j.count += len(keys)
            while j.count > self.max_per_job:
                self._push_out(j, job)

    def _ran(self, t: list, key: tuple, start: float, end: float, who: tuple | None,
             ok: bool = True) -> None:
        """An owner's word that the attempt's run ended: returned (DONE, or a whole task whose
        row an earlier event made: FINISHED), or raised (RUN: placed and timed only)."""
        if who is not None:
            t[NODE], t[WORKER], t[PID], t[WORKER_ADDR] = who
        t[START_US], t[END_US], t[RAN_] = int(start * 1e6), int(end * 1e6), True
        if ok and t[RANK_] < 4:
            self.jobs[t[JOB]].finished.append(key)
            t[RANK_], t[STATE] = 4, FINISHED

    def _apply(self, t: list, key: tuple, state: str, at: float, info: Any,
               address: str | None, node_id: str | None, worker_id: str | None,
               pid: int | None) -> None:
        """One event on its attempt's row `t`."""
        if state == FINISHED or state == RAN or state == RUNNING:  # the worker's
            t[NAME] = info[1]
            t[NODE], t[WORKER], t[PID], t[WORKER_ADDR] = node_id, worker_id, pid, address
            if state == RUNNING:
                t[START_US] = int(at * 1e6)
                rank = 3
            else:
                t[START_US], t[END_US], t[RAN_] = int(info[2] * 1e6), int(at * 1e6), True
                if state == RAN:
                    return
                rank = 4
        else:
            rank = RANK.get(state, 0)
            ms = int(at * 1000)
            if rank == 1:
                if info is not None:  # a new attempt (or call): who and what it is
                    if t[CREATED] is None:
                        t[NAME] = info[1]
                    if info[2] is not None:
                        t[ACTOR], t[TYPE] = info[2].hex(), _kind(key[0], info[2])
                    t[OWNER], t[CREATED] = address, ms
                    t[PARENT] = info[3] and info[3].hex()
                    if state == PENDING_ARGS:
                        t[T_ARGS] = ms
                elif state != PENDING_ARGS:
                    t[T_PENDING] = ms  # its arguments are ready now
            elif rank == 4:
                if state == FAILED:
                    t[ERR_TYPE], t[ERR_MSG] = info
                t[T_ENDED] = ms
                if not t[RAN_]:
                    t[END_US] = int(at * 1e6)
        if rank >= t[RANK_]:
            if rank == 4 and t[RANK_] < 4:
                self.jobs[t[JOB]].finished.append(key)
            elif rank == 4 and t[STATE] == FAILED and state == FINISHED \
                    and int(at * 1000) <= t[T_ENDED]:
                return  # an end heard after a later one: a worker's FINISHED of an __init__
                        # (sent in its last batch) after the GCS's FAILED for its death
            t[RANK_], t[STATE] = rank, state

    def _new(self, key: tuple, info: Any) -> list:
        """A blank row for an attempt first heard of from its worker (its owner's event
        comes later, or was pushed out)."""
        job = self._job_hex.get(info[0]) or _hex_job(info[0], self._job_hex)
        t = self.tasks[key] = _BLANK.copy()
        t[KEY], t[JOB] = key, job
        self._booked(key, job)
        return t

    def _job(self, job: str | None) -> _Job:
        j = self.jobs[job] = _Job()
        return j

    def _booked(self, key: tuple, job: str | None) -> None:
        """A new row of `job` was added: counted, and the job's oldest pushed out past the
        bound (the owner's short way in add() does the same inline)."""
        j = self.jobs.get(job) or self._job(job)
        if key[1] > self.max_attempt:
            self.max_attempt = key[1]
        j.count += 1
        if j.count > self.max_per_job:
            self._push_out(j, job)

    def _push_out(self, j: _Job, job: str | None) -> None:
        tasks, finished = self.tasks, j.finished
        while finished:
            key = finished.popleft()
            if key in tasks:
                break
        else:  # none finished: its oldest (the first of its rows in the table's order)
            key = next(k for k, row in tasks.items() if row[JOB] == job)
        del tasks[key]
        j.count -= 1
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
                get = self.tasks.get
                return [r for r in (get((tid, a)) for a in range(self.max_attempt + 1)) if r]
        return self.tasks.values()

    def summary(self, filters: Any = ()) -> tuple:
        """((func_or_class_name, type, state, count), ...) over the records that pass."""
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
        return {"records": len(self.tasks), "jobs": len(self.jobs), "dropped": self.dropped(),
                "lost": self.lost, "ignored": self.ignored, "max_per_job": self.max_per_job}
