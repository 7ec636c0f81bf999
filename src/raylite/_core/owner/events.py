"""The owner's task events: what it saw happen to its tasks, buffered until the shell sends
them (pure; the vocabulary is raylite._core.task_events).

    a new attempt (submit, retry, an actor call) ─► new(): its opening noted in this batch
        (`notes`) and on the task (task.opened)
    a task or call just submitted ─► later(): the same, its time read now, the note made
        by settle() once the shell has sent the task (while a worker runs it, off the
        caller's way to the send), or by whichever call here comes first
    a task pushed with its opening (PushTask.opened: no arguments to wait for) ─►
        later_run(): noted the same way, in `runs`; a run of it that returns is told whole
        by its worker (_core/whole_runs.py): its reply brings no times and costs nothing
        here; its opening goes only if it has not ended when the batch goes, or has another
        event in it (a failure, a retry)
    the worker's TaskDone, with its run's (start, end[, who]) ─► finished(): a run that
        returned while its opening was in this batch makes the attempt one whole record
        (`whole`; Owner.task_done makes the common one itself, saving the call); any other
        run, a DONE or a RUN event
    any other event (arguments ready, a failure, cancel, retry) ─► add() (`buffer`)
    a driver waiting in get() for a reply, PART or more whole records made ─► take_part(),
        part(): those packed early (`parts`), their openings out of `notes`
    the shell, every ~0.5 s (its maintenance thread) ─► take() = build(*swap()) ─► one
        TaskEvents message: the openings whose runs have not returned, as events, then the
        other events in order; and the whole records packed as columns
        (_core/whole_tasks.py)

Only events of tasks whose `events` flag is set (enable_task_events, per task and per init)
come here. A short task with no arguments to wait for costs its owner a clock read and a
tuple when it is submitted (the shell's, for PushTask.opened) and nothing when its reply
comes: its worker tells its run. Any other task costs a small tuple when its reply comes
(its worker sends no event of its own: its run's times come in the reply); packing those
records into columns is part()'s or take()'s work, off the caller's path, a few passes at C
speed. Nothing here holds a task past its send: a finished task's objects are freed at once.
A batch's openings go before its other events, so a task's later event (a failure, its
arguments ready) comes after its opening.

Time comes from `clock`, the function the shell hands in (time.time in a cluster; the core
itself never reads a clock), and a task's parent (the task or actor call that submitted it)
from `parent_of` (None in a driver, which runs no task), read once per task, when its first
attempt is recorded. The buffers are bounded: past `limit` openings or events one is
counted in `dropped` instead, and the count travels with the next batch.
"""
from __future__ import annotations

from math import isfinite
from operator import is_, itemgetter
from typing import Any

from ..task_events import DONE, FAILED, PENDING_NODE, RUN, error_info
from ..whole_tasks import join, kinds, pack

LIMIT = 200_000              # events buffered between two sends
_FAR = 1e15                  # seconds: no time of a run is this far from 1970
PART = 24                    # whole records a caller waiting for a reply packs at a time:
                             # ~14 us alone, about what a reply takes to come back in a
                             # one-at-a-time loop (48: the call that packed took 17-34 us
                             # longer; docs/performance.md)
_DROPPED = (-1,)             # task.opened of an attempt whose opening did not fit (counted)


def _no_clock() -> float:
    return 0.0


def _who_shaped(who: Any) -> bool:
    """(node id hex, worker id hex, pid, address), by its types."""
    return type(who) is tuple and len(who) == 4 and type(who[0]) is str \
        and type(who[1]) is str and type(who[2]) is int and type(who[3]) is str


def _timed(ran: Any) -> bool:
    """A run's (start, end, ...) as a worker sends it: two times first (floats, seconds
    since the epoch, well within what a batch's sum of times can hold)."""
    return type(ran) is tuple and len(ran) >= 2 and type(ran[0]) is float \
        and type(ran[1]) is float and -_FAR < ran[0] < _FAR and -_FAR < ran[1] < _FAR


def _unsent(notes: list, whole: list) -> list:
    """The notes no record of `whole` holds: a pass at C speed when the records hold the
    first notes, in order (tasks answered in the order they were opened), else one a note."""
    n = len(whole)
    if n <= len(notes) and all(map(is_, map(itemgetter(0), whole), notes)):
        return notes[n:]
    done = set(map(id, map(itemgetter(0), whole)))
    return [note for note in notes if id(note) not in done]


class TaskEvents:
    __slots__ = ("clock", "buffer", "limit", "dropped", "_job_id", "decode_error", "_infos",
                 "_kinds", "parent_of", "_who", "notes", "whole", "gen", "_gone", "parts",
                 "late", "runs", "live")

    def __init__(self, clock: Any = _no_clock, decode_error: Any = None, limit: int = LIMIT,
                 parent_of: Any = None):
        self.clock = clock
        self.parent_of = parent_of    # None: nothing this process submits has a parent
        self.decode_error = decode_error
        self.notes: list = []         # the openings of this batch (as new() lays them out),
                                      # in order; each also on its task (task.opened)
        self.whole: list = []         # (opening, start, end, conn): attempts of this batch
                                      # whose run returned
        self.buffer: list = []        # any other event, in the order it happened
        self.gen = 0                  # this batch's number (an opening's first field)
        self.parts: list = []         # (packed, events) of whole records packed early (part())
        self.late: Any = None         # (task, state, class name, time, attempt): an opening
                                      # later() left for settle(); or a task later_run() left
        self.runs: list = []          # the openings of this batch of tasks whose workers
                                      # report their runs whole (later_run)
        self.live: Any = {}           # task id -> task: the owner's tasks not ended (the
                                      # core sets it)
        self.limit = limit
        self.dropped = 0
        self._job_id: bytes = b""
        self._infos: dict = {}        # (job, name, actor id, class, parent) -> one info tuple
        self._kinds: dict = {}        # the same key -> itself (a whole task's: one per kind)
        self._who: dict = {}          # worker connection -> who is on it (one tuple: pickled
                                      # once per batch)
        self._gone: list = []         # connections closed since: forgotten after that take

    @property
    def job_id(self) -> bytes:
        """The job this process works for now (the shell sets it)."""
        return self._job_id

    @job_id.setter
    def job_id(self, job_id: bytes) -> None:
        self._job_id = job_id

    def waiting(self) -> bool:
        """True when take() has something to send."""
        return bool(self.notes or self.buffer or self.dropped or self.parts or self.late
                    or self.runs)

    def add(self, task_id: bytes, attempt: int, state: str, info: Any = None) -> None:
        """An event of the task's (its opening, if it is in this batch, goes before it)."""
        if self.late is not None:
            self.settle()
        b = self.buffer
        if len(b) < self.limit:
            b.append((task_id, attempt, state, self.clock(), info))
        else:
            self.dropped += 1

    def new(self, task: Any, state: str, class_name: str = "") -> None:
        """A new attempt of `task` (or a new call of an actor of `class_name`), in `state`:
        its opening, noted in this batch and on the task until its run returns."""
        if self.late is not None:
            self.settle()
        self._note(task, state, class_name, self.clock(), task.attempt)

    def later(self, task: Any, state: str, class_name: str = "") -> None:
        """new() for a task or call just submitted, its time now; the note is made by
        settle(), which the shell calls once it has sent the task: while a worker runs it
        rather than on the caller's way to the send (docs/performance.md). Every other call
        here settles first, so the opening keeps its place before the task's other events;
        a second later() settles the first."""
        if self.late is not None:
            self.settle()
        self.late = (task, state, class_name, self.clock(), task.attempt)

    def later_run(self, task: Any) -> None:
        """later() for a task pushed with its opening (task.msg.opened: its time, read by the
        shell, and its parent): a run of it that returns is reported whole by its worker
        (task_executor.py), so its owner does nothing when the reply comes. Its note goes in
        `runs`, sent only for a task that has not ended when the batch goes, or that has
        another event in it (a failure, a retry): swap()."""
        if self.late is not None:
            self.settle()
        self.late = task

    def settle(self) -> None:
        """Notes the opening later() or later_run() left, if any."""
        late = self.late
        if late is not None:
            self.late = None
            if type(late) is tuple:
                self._note(*late)
            else:
                msg = late.msg  # as submitted (a retry before this is noted after it)
                self._note(late, PENDING_NODE, "", msg.opened[0], msg.attempt, self.runs)

    def _note(self, task: Any, state: str, class_name: str, at: float, attempt: int,
              into: list | None = None) -> None:
        parent = task.parent
        if parent is False:  # its first attempt: the task running where it was submitted
            parent_of = self.parent_of
            parent = task.parent = None if parent_of is None else parent_of()
        b = self.notes if into is None else into
        if len(b) < self.limit:
            task.opened = note = (self.gen, task.task_id, attempt, state, at, self._job_id,
                                  task.name, task.actor_id, class_name, parent)
            b.append(note)
        else:
            task.opened = _DROPPED
            self.dropped += 1

    def finished(self, task: Any, ran: Any, conn: Any = None, ok: bool = True) -> None:
        """The attempt's run ended, returning (`ok`) or raising: `ran` is (start, end) from
        its worker's reply on `conn`, and who ran it (node id hex, worker id hex, pid,
        address) the first time on that connection. A run that returned while its opening
        was in this batch makes the attempt one whole record (its times are checked when
        packed); any other, a DONE or a RUN event."""
        if self.late is not None:
            self.settle()
        op = task.opened
        if op is not None:
            task.opened = None
        if type(ran) is not tuple or len(ran) < 2 or op is _DROPPED:
            return  # not a worker's, or an attempt whose opening was dropped: nothing to tell
        if len(ran) > 2:  # checked in full by the daemon; here, only its shape, so one bad
            self._who[conn] = ran[2] if _who_shaped(ran[2]) else None  # reply cannot spoil
        if op is not None and op[0] == self.gen and ok and op[2] == task.attempt:  # the batch
            self.whole.append((op, ran[0], ran[1], conn))  # (Owner.task_done inlines this
            return                                          # for a 2-tuple `ran`)
        if not _timed(ran):
            return  # not a worker's: nothing to tell
        b = self.buffer
        if len(b) < self.limit:
            b.append((task.task_id, task.attempt, DONE if ok else RUN, ran[1],
                      (ran[0], self._who.get(conn))))
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

    def take_part(self) -> list | None:
        """The whole records so far (None for none), taken out with their openings (_unsent).
        Call it with the lock swap() needs."""
        whole = self.whole
        if not whole:
            return None
        self.whole = []
        self.notes = _unsent(self.notes, whole)
        return whole

    def part(self, whole: list) -> None:
        """Packs records take_part() took, early (the caller's thread has nothing better to
        do: it waits for a reply); take() sends them with the rest (one call at a time,
        as build())."""
        events: list = []
        self.parts.append((self._pack(whole, events), events))

    def take(self) -> tuple[list, int, tuple]:
        """(events since the last take, how many were dropped since, the whole tasks since
        packed as columns: _core/whole_tasks.py; () for none). An opening whose run has not
        returned goes as an event, first."""
        return self.build(*self.swap())

    def swap(self) -> tuple:
        """What take() reads, taken out of the buffers (the one step that must hold the lock
        the core's other calls hold; build() may then run without it, one call at a time).
        The openings taken are this batch's: a run that returns later is a DONE event."""
        if self.late is not None:
            self.settle()
        notes, self.notes = self.notes, []
        self.gen += 1
        out, self.buffer = self.buffer, []
        if self.runs:  # those whose runs returned are their workers' to tell
            runs, self.runs, live = self.runs, [], self.live
            told = {e[0] for e in out}
            notes += [n for n in runs if n[1] in live or n[1] in told]
        dropped, self.dropped = self.dropped, 0
        whole, self.whole = self.whole, []
        gone, self._gone = self._gone, []
        return notes, out, dropped, whole, gone

    def build(self, notes: list, out: list, dropped: int, whole: list,
              gone: list) -> tuple[list, int, tuple]:
        """take()'s result from what swap() took."""
        events = list(map(self._opening, _unsent(notes, whole)))  # still running
        events += out
        packed = self._pack(whole, events) if whole else ()
        if self.parts:  # packed early (part()), the records before these
            parts, self.parts = self.parts, []
            for _, early in parts:
                events += early
            packed = join([p for p, _ in parts if p] + ([packed] if packed else []))
        for conn in gone:  # after this batch's runs found who replied on them
            self._who.pop(conn, None)
        if len(self._who) > 4096:  # connections that closed without a word
            self._who.clear()
        return events, dropped, packed

    def _pack(self, whole: list, events: list, checked: bool = False) -> tuple:
        """The whole records as the wire's columns, a pass or two per column at C speed; one
        whose times are not a worker's (a bad reply) goes as its opening alone."""
        notes, starts, ends, conns = zip(*whole)
        try:  # a time that is no number: TypeError; a NaN, an infinity, a huge time: not finite
            good = checked or isfinite(sum(starts) + sum(ends))
        except (TypeError, ArithmeticError):
            good = False
        if not good:
            events += [self._opening(r[0]) for r in whole if not _timed(r[1:3])]
            kept = [r for r in whole if _timed(r[1:3])]
            return self._pack(kept, events, True) if kept else ()
        n = len(notes)
        _, ids, attempts, states, created, jobs, names, actors, classes, parents = zip(*notes)
        kind = kinds(jobs, names, actors, classes, parents, self._kinds)
        who = self._who.get
        whos = (who(conns[0]),) if conns.count(conns[0]) == n else tuple(map(who, conns))
        return pack(ids, attempts, states, created, kind, ends, starts, whos)

    def _opening(self, note: tuple) -> tuple:
        """An opening as new() noted it, as the event it is sent as."""
        _, task_id, attempt, state, at, job, name, actor, cls, parent = note
        ikey = note[5:]
        info = self._infos.get(ikey)
        if info is None:  # one tuple per function (and parent): pickled once
            if len(self._infos) > 4096:
                self._infos.clear()
            info = self._infos[ikey] = (job, f"{cls}.{name}" if cls else name, actor, parent)
        return task_id, attempt, state, at, info
