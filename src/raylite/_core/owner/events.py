"""The owner's task events: what it saw happen to its tasks, buffered until the shell sends
them (pure; the vocabulary is raylite._core.task_events).

    core event (submit, arguments ready, a failure, cancel, retry) ─► TaskEvents.add / new
         only for a task whose `events` flag is set (enable_task_events, per task and per init)
    a worker's TaskDone of a run that returned, with (start, end, who) ─► finished
    the shell, every ~100 ms (its maintenance thread) ─► take() ─► one TaskEvents message

A new attempt costs the caller's thread a clock read and a tuple: its event is made in
take(), off the caller's wait. A task that finished before its opening was sent is sent
whole (its opening and its run together, in the batch's columns of whole tasks), so a
short task is one row from its owner and nothing from its worker; one that was still
pending when the batch left ends with a DONE event instead.

Time comes from `clock`, the function the shell hands in (time.time in a cluster; the core
itself never reads a clock), and a task's parent (the task or actor call that submitted it)
from `parent_of`, read once per task, when its first attempt is recorded. The buffer is
bounded: past `limit` events an event is counted in `dropped` instead, and the count
travels with the next batch.
"""
from __future__ import annotations

from typing import Any

from ..task_events import DONE, FAILED, PENDING_NODE, RUN, error_info

LIMIT = 200_000              # events buffered between two sends


def _no_clock() -> float:
    return 0.0


def _no_parent() -> None:
    return None


class TaskEvents:
    __slots__ = ("clock", "buffer", "limit", "dropped", "_job_id", "decode_error", "_infos",
                 "parent_of", "_who")

    def __init__(self, clock: Any = _no_clock, decode_error: Any = None, limit: int = LIMIT,
                 parent_of: Any = None):
        self.clock = clock
        self.parent_of = parent_of or _no_parent
        self.decode_error = decode_error
        self.buffer: list = []
        self.limit = limit
        self.dropped = 0
        self._job_id: bytes = b""
        self._infos: dict = {}        # (job, name, actor id, class, parent) -> one info tuple
        self._who: dict = {}          # worker connection -> who is on it (one tuple: pickled
                                      # once per batch)

    @property
    def job_id(self) -> bytes:
        """The job this process works for now (the shell sets it)."""
        return self._job_id

    @job_id.setter
    def job_id(self, job_id: bytes) -> None:
        self._job_id = job_id

    def add(self, task_id: bytes, attempt: int, state: str, info: Any = None) -> None:
        b = self.buffer
        if len(b) < self.limit:
            b.append((task_id, attempt, state, self.clock(), info))
        else:
            self.dropped += 1

    def new(self, task: Any, state: str, class_name: str = "") -> None:
        """A new attempt of `task` (or a new call of an actor of `class_name`), in `state`:
        noted now, made an event in take()."""
        parent = task.parent
        if parent is False:  # its first attempt: the task running where it was submitted
            parent = task.parent = self.parent_of()
        b = self.buffer
        if len(b) < self.limit:
            task.ev_open = task.attempt
            b.append((task, task.attempt, state, self.clock(), self._job_id, class_name))
        else:
            self.dropped += 1

    def finished(self, task: Any, ran: Any, conn: Any = None, ok: bool = True) -> None:
        """The attempt's run ended, returning (`ok`) or raising: `ran` is (start, end) from
        its worker's reply on `conn`, and who ran it (node id hex, worker id hex, pid,
        address) the first time on that connection (checked by the GCS's daemon; here only
        enough to use it safely). A run that raised is a RUN event: its state is the
        owner's to decide (FAILED, or a retry)."""
        if type(ran) is not tuple or len(ran) < 2:
            return
        if len(ran) == 3:
            who = self._who[conn] = ran[2]
            if len(self._who) > 4096:  # connections come and go (forget() drops them)
                self._who.clear()
                self._who[conn] = who
        else:
            who = self._who.get(conn)
        if ok and task.ev_open == task.attempt:  # its opening is still here: whole, in take()
            task.ev_ran = (ran[0], ran[1], who)
        elif len(self.buffer) < self.limit:  # the run's end (time: when)
            self.buffer.append((task.task_id, task.attempt, DONE if ok else RUN, ran[1],
                                (ran[0], who)))
        else:
            self.dropped += 1

    def forget(self, conn: Any) -> None:
        """A worker connection closed: who was on it is not needed any more."""
        self._who.pop(conn, None)

    def actor_created(self, actor_id: bytes, class_name: str) -> None:
        """An actor's creation task (Ray's ACTOR_CREATION_TASK: its __init__; its id is the
        actor's) was submitted: its attempt 0, waiting for the GCS to place it (Ray's
        PENDING_NODE_ASSIGNMENT); its worker tells when __init__ ran, the GCS of restarts."""
        self.add(actor_id, 0, PENDING_NODE,
                 (self._job_id, f"{class_name}.__init__", actor_id, self.parent_of()))

    def ended(self, task: Any, error: Any, attempt: int | None = None) -> None:
        """The attempt failed with `error` (as the runtime stores it: the core's decode_error
        reads it). A success comes with its run's times (finished)."""
        a = task.attempt if attempt is None else attempt
        try:
            exc = self.decode_error(error) if self.decode_error is not None else error
            info = error_info(exc)
        except Exception:  # an error that does not unpickle here still ended the task
            info = ("TASK_EXECUTION_EXCEPTION", "")
        self.add(task.task_id, a, FAILED, info)

    def take(self) -> tuple[list, int, tuple]:
        """(events since the last take, how many were dropped since, the whole tasks since as
        columns: ids, attempts, ends, opening infos, opening states, opening times, starts,
        who ran them; () for none)."""
        out, self.buffer = self.buffer, []
        dropped, self.dropped = self.dropped, 0
        infos = self._infos
        events: list = []
        whole: list = []
        for e in out:
            task = e[0]
            if type(task) is bytes:
                events.append(e)
                continue
            _, attempt, state, at, job, cls = e  # an opening: made an event now
            ikey = (job, task.name, task.actor_id, cls, task.parent)
            info = infos.get(ikey)
            if info is None:  # one tuple per function (and parent): pickled once
                if len(infos) > 4096:
                    infos.clear()
                info = infos[ikey] = (job, f"{cls}.{task.name}" if cls else task.name,
                                      task.actor_id, task.parent)
            r = task.ev_ran
            if task.ev_open == attempt:
                task.ev_open = -1
            if r is None or task.attempt != attempt:
                events.append((task.task_id, attempt, state, at, info))
            else:
                task.ev_ran = None
                whole.append((task.task_id, attempt, r[1], info, state, at, r[0], r[2]))
        return events, dropped, tuple(zip(*whole))
