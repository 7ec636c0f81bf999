"""The owner's task events: what it saw happen to its tasks, buffered until the shell sends
them (pure; the vocabulary is raylite._core.task_events).

    core event (submit, arguments ready, a failure, cancel, retry) ─► TaskEvents.add / new
         only for a task whose `events` flag is set (enable_task_events, per task and per init)
    a worker's TaskDone, with its run's (start, end[, who]) ─► finished (noted; take() decides)
    the shell, every ~100 ms (its maintenance thread) ─► take() ─► one TaskEvents message

A new attempt costs the caller's thread a clock read and a tuple: its event is made in
take(), off the caller's wait. A task that finished before its opening was sent is sent
whole (its opening and its run together, packed with the batch's other whole tasks:
_core/whole_tasks.py), so a short task is one record from its owner and nothing from its
worker; one that was still pending when the batch left ends with a DONE event instead.
take() cuts the common batch (tasks answered in the order they were opened) into columns
with a few passes at C speed; any other batch is read an event at a time.

Time comes from `clock`, the function the shell hands in (time.time in a cluster; the core
itself never reads a clock), and a task's parent (the task or actor call that submitted it)
from `parent_of` (None in a driver, which runs no task), read once per task, when its first
attempt is recorded. The buffer is
bounded: past `limit` events an event is counted in `dropped` instead, and the count
travels with the next batch.
"""
from __future__ import annotations

from array import array
from math import fsum, isfinite
from operator import itemgetter
from typing import Any

from ..task_events import DONE, FAILED, PENDING_NODE, RUN, error_info
from ..whole_tasks import pack

LIMIT = 200_000              # events buffered between two sends
_KIND = itemgetter(4, 5, 6, 7, 8)  # what a task is: (job id, name, actor id, class name,
                                   # parent task id)
_TWO = {2}


def _no_clock() -> float:
    return 0.0


def _who_shaped(who: Any) -> bool:
    """(node id hex, worker id hex, pid, address), by its types."""
    return type(who) is tuple and len(who) == 4 and type(who[0]) is str \
        and type(who[1]) is str and type(who[2]) is int and type(who[3]) is str


class TaskEvents:
    __slots__ = ("clock", "buffer", "limit", "dropped", "_job_id", "decode_error", "_infos",
                 "_kinds", "parent_of", "_who", "ran", "_gone")

    def __init__(self, clock: Any = _no_clock, decode_error: Any = None, limit: int = LIMIT,
                 parent_of: Any = None):
        self.clock = clock
        self.parent_of = parent_of    # None: nothing this process submits has a parent
        self.decode_error = decode_error
        self.buffer: list = []
        self.limit = limit
        self.dropped = 0
        self._job_id: bytes = b""
        self._infos: dict = {}        # (job, name, actor id, class, parent) -> one info tuple
        self._kinds: dict = {}        # the same key -> itself (a whole task's: one per kind)
        self._who: dict = {}          # worker connection -> who is on it (one tuple: pickled
                                      # once per batch)
        self.ran: list = []           # (task id, attempt, (start, end[, who]), conn, ok) of the
                                      # runs whose replies came since the last take
        self._gone: list = []         # connections closed since: forgotten after that take

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
        noted now (a tuple of what it is, not the task: a finished task's objects are freed
        at once), made an event in take()."""
        parent = task.parent
        if parent is False:  # its first attempt: the task running where it was submitted
            parent_of = self.parent_of
            parent = task.parent = None if parent_of is None else parent_of()
        b = self.buffer
        if len(b) < self.limit:
            b.append((task.task_id, task.attempt, state, self.clock(), self._job_id, task.name,
                      task.actor_id, class_name, parent))
        else:
            self.dropped += 1

    def finished(self, task: Any, ran: Any, conn: Any = None, ok: bool = True) -> None:
        """The attempt's run ended, returning (`ok`) or raising: `ran` is (start, end) from
        its worker's reply on `conn`, and who ran it (node id hex, worker id hex, pid,
        address) the first time on that connection. Noted only (a reply's path): take()
        makes it part of a whole task, a DONE or a RUN event."""
        if len(self.ran) < self.limit:
            self.ran.append((task.task_id, task.attempt, ran, conn, ok))
        else:
            self.dropped += 1

    def forget(self, conn: Any) -> None:
        """A worker connection closed: who was on it is forgotten after the next take (runs
        it replied to may still be waiting there)."""
        self._gone.append(conn)

    def actor_created(self, actor_id: bytes, class_name: str) -> None:
        """An actor's creation task (Ray's ACTOR_CREATION_TASK: its __init__; its id is the
        actor's) was submitted: its attempt 0, waiting for the GCS to place it (Ray's
        PENDING_NODE_ASSIGNMENT); its worker tells when __init__ ran, the GCS of restarts."""
        self.add(actor_id, 0, PENDING_NODE,
                 (self._job_id, f"{class_name}.__init__", actor_id,
                  None if self.parent_of is None else self.parent_of()))

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
        who ran them; () for none). A run that returned whose opening is in the same batch
        makes the task whole; one whose opening went earlier, a DONE; one that raised, a RUN
        (its state is the owner's to decide: FAILED, or a retry)."""
        return self.build(*self.swap())

    def swap(self) -> tuple:
        """What take() reads, taken out of the buffers (the one step that must hold the lock
        the core's other calls hold; build() may then run without it, one call at a time)."""
        out, self.buffer = self.buffer, []
        dropped, self.dropped = self.dropped, 0
        ran, self.ran = self.ran, []
        gone, self._gone = self._gone, []
        return out, dropped, ran, gone

    def build(self, out: list, dropped: int, ran: list, gone: list) -> tuple[list, int, tuple]:
        """take()'s result from what swap() took: the common batch cut into columns at C
        speed (_match), any other read an event at a time (_build)."""
        result = self._match(out, dropped, ran) or self._build(out, dropped, ran)
        for conn in gone:  # after this batch's runs found who replied on them
            self._who.pop(conn, None)
        if len(self._who) > 4096:  # connections that closed without a word
            self._who.clear()
        return result

    def _match(self, out: list, dropped: int, ran: list) -> tuple[list, int, tuple] | None:
        """The common batch's result, or None for another batch: runs that all returned,
        none the first reply on its connection, heard in the order their tasks were opened;
        the first runs may be of tasks opened in an earlier batch (DONE events) and the last
        openings of tasks still running (sent as openings). A pass or two per column, at C
        speed."""
        if not ran or not out:
            return None
        try:
            ids, attempts, states, created, *kind = zip(*out)  # (an event that is no
            if len(kind) != 5:                                 # opening: fewer columns)
                return None
            run_ids, run_attempts, rs, conns, oks = zip(*ran)
            if not all(oks) or set(map(len, rs)) != _TWO:
                return None  # a run that raised, a first reply (who ran it)
            first = run_ids.index(ids[0])  # runs before it: of tasks opened earlier
            n = len(ran) - first           # runs of tasks opened here
            if n > len(ids) or run_ids[first:] != ids[:n] or run_attempts[first:] != attempts[:n]:
                return None  # heard in another order
            starts, ends = zip(*rs)
            times = array("d", starts)
            times.extend(ends)  # (a time that is no number: TypeError)
            if not isfinite(fsum(times)):
                return None
        except (TypeError, ValueError):
            return None
        who = self._who.get
        events = list(map(self._opening, out[n:]))  # still running (or heard out of order)
        events += [(e[0], e[1], DONE, ends[i], (starts[i], who(e[3])))  # after: an opening
                   for i, e in enumerate(ran[:first])]                 # comes first
        if n < len(ids):
            ids, attempts, states, created = ids[:n], attempts[:n], states[:n], created[:n]
            kind = [c[:n] for c in kind]
        kinds = self._kinds
        if len(kinds) > 4096:
            kinds.clear()
        if all(c.count(c[0]) == n for c in kind):  # one function (count sees one object n
            first_kind = out[0][4:]                # times: fast)
            kind = (kinds.setdefault(first_kind, first_kind),)
        else:
            mine = list(map(_KIND, out[:n]))
            kind = tuple(map(kinds.setdefault, mine, mine))  # one tuple per kind
        conns = conns[first:]
        whos = (who(conns[0]),) if conns.count(conns[0]) == n else tuple(map(who, conns))
        return events, dropped, pack(ids, attempts, states, created, kind, times[len(ran) + first:],
                                     times[first:len(ran)], whos)

    def _opening(self, e: tuple) -> tuple:
        """An opening noted by new(), as the event it is sent as."""
        task_id, attempt, state, at, job, name, actor, cls, parent = e
        ikey = e[4:]
        info = self._infos.get(ikey)
        if info is None:  # one tuple per function (and parent): pickled once
            if len(self._infos) > 4096:
                self._infos.clear()
            info = self._infos[ikey] = (job, f"{cls}.{name}" if cls else name, actor, parent)
        return task_id, attempt, state, at, info

    def _build(self, out: list, dropped: int, ran: list) -> tuple[list, int, tuple]:
        """build() one event and one run at a time."""
        ends: dict = {}  # task id -> (attempt, start, end, who) of a run that returned
        if ran:
            known = self._who
            for task_id, attempt, r, conn, ok in ran:
                if type(r) is not tuple or len(r) < 2 or type(r[0]) is not float \
                        or type(r[1]) is not float:  # not a worker's: nothing to tell
                    continue
                if len(r) > 2:  # checked in full by the daemon; here, only its shape, so one
                    who = known[conn] = r[2] if _who_shaped(r[2]) else None  # bad reply
                else:                                          # cannot spoil the batch
                    who = known.get(conn)
                if ok:
                    ends[task_id] = (attempt, r[0], r[1], who)
                else:
                    out.append((task_id, attempt, RUN, r[1], (r[0], who)))
        events: list = []
        whole: list = []
        for e in out:
            if len(e) == 5:
                events.append(e)
                continue
            task_id, attempt, state, at = e[:4]  # an opening
            r = ends.get(task_id) if ends else None
            if r is None or r[0] != attempt:  # not run yet (or an earlier attempt's opening)
                events.append(self._opening(e))
            else:
                del ends[task_id]
                kind = e[4:]
                whole.append((task_id, attempt, state, at, self._kinds.setdefault(kind, kind),
                              r[2], r[1], r[3]))
        for task_id, (attempt, start, end, who) in ends.items():  # openings sent earlier
            events.append((task_id, attempt, DONE, end, (start, who)))
        return events, dropped, pack(*zip(*whole)) if whole else ()
