"""Task events: the bounded store that turns them into task records (pure; the vocabulary
and the reads are task_rows.py's, whole tasks' batches whole_tasks.py's).

    owners (a new attempt, a failure, a retry)          ─┐ batches of events, every ~0.5 s,
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

A task pushed with its opening (one with no arguments to wait for: nearly every short task)
whose run returns travels whole from its worker instead (whole_runs.py: TaskEvents.runs,
under its owner's address), and its owner sends its opening only when the task has not
ended by the owner's next batch, or failed. Any other task whose run returned before its
owner sent its opening travels whole from its owner, in the batch's whole tasks
(whole_tasks.py: a few objects for the lot), nothing from its worker. The store keeps such
a batch as it came and makes its rows when something reads them (add_whole). A task still
pending when its owner sent is its opening, then a DONE (or its worker's whole run). A run
that raised is a RUN then a FAILED (or a retry) from its owner; a worker tells a RAN only
when it has no reply to carry the times (an actor that exited in a call), and a RUNNING
for a task still running when it sends. An event costs its sender a clock read and a
tuple, and the GCS a few list stores: a row is a list, not an object, with no hex id or ms
time kept twice (made into a TaskEventRecord only for the rows a query returns). DONE is not a state: it brings a row to FINISHED; RUN, like RAN, only places
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
from itertools import repeat
from typing import Any

from .task_rows import (DONE, ERROR_TYPES, FAILED, FINISHED, MAX_PER_JOB, PENDING_ACTOR,
                        PENDING_ARGS, PENDING_NODE, RAN, RANK, RUN, RUNNING, STATES, USER_ERROR,
                        RowQueries, error_info)
from .task_rows import (_BLANK, ACTOR, CREATED, END_US, ERR_MSG, ERR_TYPE, JOB, KEY, NAME,
                        NODE, OWNER, PARENT, PID, RAN_, RANK_, START_US, STATE, T_ARGS, T_ENDED,
                        T_PENDING, TYPE, WORKER, WORKER_ADDR)
from .whole_tasks import WholeBatch

__all__ = ["DONE", "ERROR_TYPES", "FAILED", "FINISHED", "MAX_PER_JOB", "PENDING_ACTOR",
           "PENDING_ARGS", "PENDING_NODE", "PARENT", "RAN", "RANK", "RUN", "RUNNING", "STATES",
           "USER_ERROR", "TaskEventTable", "error_info"]  # the vocabulary is task_rows.py's

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
        self.finished: deque = deque()  # keys in the order they finished (some gone since),
                                        # a whole batch standing for its tasks in order
        self.dropped = 0


_NO_ONE = (None, None, None, None)


def _finished_row(key: tuple, shared: tuple, created: float, start: float, end: float) -> list:
    """A whole task's row (the layout of task_rows.py), from TaskEventTable._shared's parts."""
    head, tail, parent, args = shared
    ms = int(created * 1000)
    return [key, *head, ms, int(start * 1e6), int(end * 1e6), *tail, ms if args else None,
            None, None, parent]


class TaskEventTable(RowQueries):
    """Task records built from events, bounded per job (call with the shell's lock held)."""

    def __init__(self, max_per_job: int = MAX_PER_JOB):
        if max_per_job < 1:
            raise ValueError(f"max_per_job must be at least 1, not {max_per_job}")
        self.max_per_job = max_per_job
        self.tasks: dict[tuple, Any] = {}     # (task id, attempt) -> its row, oldest first
                                               # (or the WholeBatch it came in, until read)
        self.jobs: dict[str | None, _Job] = {}
        self.lost = 0                          # events dropped by their processes, unsent
        self.ignored = 0                       # events for no known attempt (pushed out, ...)
        self.max_attempt = 0                   # the highest attempt number seen
        self._job_hex: dict = {}               # job id -> its hex (the rows' job)
        self._hexes: dict = {}                 # actor or parent id -> its hex
        self._names: dict = {}                 # (class, method) -> "class.method"
        self._unfolded = False                 # whole tasks in the index, not rows yet
        self._fresh: deque = deque()           # WholeBatches not in the index yet

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
            if type(t) is WholeBatch:  # a whole task's later event: its row is made now
                t = self._made(key, t)
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
        """An owner's whole tasks, all finished, in the wire form of whole_tasks.py: kept as
        the batch came (a WholeBatch), counted in its job now, put in the index (`tasks`)
        when something reads the table or the bound pushes the batch's tasks out, each task
        made a row only when read. An actor's creation task never comes whole: its worker
        tells how its __init__ ran."""
        batch = WholeBatch(whole, address)
        self.max_attempt = max(self.max_attempt, max(whole[1]))
        jobs = batch.jobs()
        if len(jobs) > 1:  # tasks of several jobs (an owner working for more than one):
            self._index(batch, counted=False)  # indexed now, counted a task at a time
            return
        job = self.job_hex(jobs.pop())
        j = self.jobs.get(job) or self._job(job)
        j.count += batch.n
        j.finished.append(batch)
        self._fresh.append(batch)
        while j.count > self.max_per_job:
            self._push_out(j, job)

    def _index(self, batch: WholeBatch, counted: bool = True) -> None:
        """A batch's tasks (from its first not pushed out) put in the index. An attempt that
        has a row already (a worker's RUNNING came first) keeps it, and the whole task's
        times and place are added to it; one that comes twice is one record. `counted`: the
        batch was counted in its job when it came (else each new task is counted now)."""
        batch.indexed = True
        if batch.lo >= batch.n:
            return
        tasks = self.tasks
        keys = batch.key_list()[batch.lo:]
        before = len(tasks)
        got = list(map(tasks.setdefault, keys, repeat(batch)))
        self._unfolded = True
        if counted and len(tasks) - before == len(keys):
            return
        seen: set = set()
        for i, (key, t) in enumerate(zip(keys, got), batch.lo):
            kind, state, created, start, end, who = batch.task(i)
            if t is batch and key not in seen:
                seen.add(key)
                if not counted:
                    self._count(key, self.job_hex(kind[0]))
                continue
            if counted:  # counted twice: with the batch and by its row (or its first place)
                self.jobs[self.job_hex(kind[0])].count -= 1
            if t is batch:
                continue
            t = self._made(key, t)
            job, name, actor, cls, parent = kind
            self._apply(t, key, state, created, (job, self.name_of(cls, name), actor, parent),
                        batch.address, None, None, None)
            self._ran(t, key, start, end, who)

    def _count(self, key: tuple, job: str | None) -> None:
        """A new finished task of `job` (a whole task indexed a task at a time)."""
        j = self.jobs.get(job) or self._job(job)
        j.finished.append(key)
        j.count += 1
        while j.count > self.max_per_job:
            self._push_out(j, job)

    def _index_fresh(self) -> None:
        """Every batch not indexed yet, indexed (before a read)."""
        fresh = self._fresh
        while fresh:
            self._index(fresh.popleft())

    def _made(self, key: tuple, t: Any) -> list:
        """The row of `key` whose value in the index is `t` (a whole task's: made now)."""
        if type(t) is WholeBatch:
            t = self.tasks[key] = self._whole_row(key, t, t.place(key))
        return t

    def _whole_row(self, key: tuple, batch: WholeBatch, i: int) -> list:
        kind, state, created, start, end, who = batch.task(i)
        return _finished_row(key, self._shared(batch, kind, state, who), created, start, end)

    def _shared(self, batch: WholeBatch, kind: tuple, state: str, who: tuple | None) -> tuple:
        """What a whole task's row takes from its kind, opening state and who ran it:
        (the fields before its creation time, those after its end, its parent's hex, whether
        it waited for arguments)."""
        job_id, name, actor, cls, parent = kind
        node, worker, pid, address = who or _NO_ONE
        return ((self.name_of(cls, name), FINISHED, self.job_hex(job_id), self.hex_of(actor),
                 _kind(b"", actor), node, worker, pid, None, None),
                (batch.address, address, 4, True), self.hex_of(parent), state == PENDING_ARGS)

    def row(self, key: tuple) -> list | None:
        """The row of attempt `key` (a whole task's made now), or None."""
        if self._fresh:
            self._index_fresh()
        t = self.tasks.get(key)
        return None if t is None else self._made(key, t)

    def _fold(self) -> None:
        """Every whole task made a row (before a read that looks at every record)."""
        self._index_fresh()
        if self._unfolded:
            batches = {id(t): t for t in self.tasks.values() if type(t) is WholeBatch}
            for batch in batches.values():
                self._rows_of(batch)
                batch.forget()  # all its tasks are rows now: only its keys are kept (the
            self._unfolded = False  # bound pushes its tasks out by them)

    def _rows_of(self, batch: WholeBatch) -> None:
        """Each task of `batch` the index still holds under it, made a row: what is one
        for the whole batch (a kind, who ran it, the opening state) is read once."""
        tasks, keys, cols = self.tasks, batch.keys, batch.cols
        if len(cols[4]) > 1 or len(cols[7]) > 1 or len(cols[2]) > 1:  # not one for all
            for i in range(batch.lo, batch.n):
                if tasks.get(keys[i]) is batch:
                    tasks[keys[i]] = self._whole_row(keys[i], batch, i)
            return
        shared = self._shared(batch, cols[4][0], cols[2][0], cols[7][0])
        created, starts, ends = batch.times_all()
        get, row = tasks.get, _finished_row
        for i in range(batch.lo, batch.n):
            key = keys[i]
            if get(key) is batch:
                tasks[key] = row(key, shared, created[i], starts[i], ends[i])

    def job_hex(self, job: Any) -> str | None:
        """A job id as the records show it (hex; None for none), one string each."""
        return self._job_hex.get(job) or _hex_job(job, self._job_hex)

    def hex_of(self, id: bytes | None) -> str | None:
        """An actor's or parent task's id as the records show it (hex; None for none),
        one string per id (remembered)."""
        if id is None:
            return None
        text = self._hexes.get(id)
        if text is None:
            if len(self._hexes) > 4096:
                self._hexes.clear()
            text = self._hexes[id] = id.hex()
        return text

    def name_of(self, cls: str, name: str) -> str:
        """A task's or call's name: `Class.method` for an actor's calls, one string each."""
        if not cls:
            return name
        key = (cls, name)
        text = self._names.get(key)
        if text is None:
            if len(self._names) > 4096:
                self._names.clear()
            text = self._names[key] = f"{cls}.{name}"
        return text

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
        """The job's oldest finished record out (its oldest record when none has finished):
        `finished` holds keys, and whole batches, each standing for its tasks in order."""
        tasks, finished = self.tasks, j.finished
        while finished:
            key = finished[0]
            if type(key) is WholeBatch:
                batch = key
                if not batch.indexed:  # its tasks' places are known once it is indexed
                    self._fresh.remove(batch)
                    self._index(batch)
                if batch.lo >= batch.n:
                    finished.popleft()
                    continue
                key = batch.keys[batch.lo]
                batch.lo += 1
            else:
                finished.popleft()
            if key in tasks:
                break
        else:  # none finished: its oldest (the first of its rows in the table's order)
            key = next(k for k, row in tasks.items()  # (a whole task is in `finished`)
                       if type(row) is list and row[JOB] == job)
        del tasks[key]
        j.count -= 1
        j.dropped += 1
