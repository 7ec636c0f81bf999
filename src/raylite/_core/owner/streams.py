"""The owner's streaming generators: the items a generator task yields, as they come (pure).

    open(task, done id)  ─► a Stream; it waits on the task's completion object ("done")
    item(task, i, data)  ─► item i's entry (owned here, held by the stream) completed
    next(task)           ─► (ITEM, id): hand item `consumed` out    ─► taken(task): the stream's
                         │                                              hold goes, consumed += 1
                         ├► (WAIT, id): its entry is pending: wait on it (the same entry
                         │              wait() probes), then ask again
                         └► (END, id): the stream is over
    body_failed(task, e) ─► the body raised e: e is the last item's, done resolves to None
    done completes       ─► ended(): total = items received; a pending entry at index total
                            becomes the error item (the task failed) or the end marker
    drop(task)           ─► the generator went: every hold is released (unconsumed items freed)

Items are ordinary owned objects. Item i's id is derived from the task's id
(_ids.stream_item_id), so the worker that writes it and this owner agree, and a
retried task's items dedupe by index. Until the consumer takes an item, the
stream holds one reference to its entry (a count in ObjectTable.counts); the
ObjectRef next() makes is the consumer's, freed when dropped.

How a stream ends: its task's completion object (`done`, the one return id a
streaming task has) completes, by any path: the worker's TaskDone, a crash,
a cancel, an actor's death, shutdown. The stream waits on that entry like a
thread in get() (Owner.release hands it to `ended`). Items travel on the same
connection as the TaskDone, before it, so every item is in by then. If the
task failed, the consumer gets one more item after the last value, holding the
error (Ray: next() returns a ref whose get raises it), then the end. As in Ray,
the completion object itself holds the error only when the task failed outside
its body (a crash, a cancel, an actor's death); what the body raised is only
that last item's (body_failed), and completed() resolves to None.

Backpressure (`backpressure` > 0): the worker pauses after yielding while that
many items are unconsumed; `taken` says when to tell it how many were consumed,
and `acks` queues the count for a retried task's worker (it starts from 0: told
when its first, repeated, item comes).

Pure: no I/O, no threads, no clock.
"""
from __future__ import annotations

from typing import Any

from ..._ids import stream_item_id
from .objects import Obj

ITEM, WAIT, END = "ITEM", "WAIT", "END"


class Stream:
    __slots__ = ("task_id", "done_id", "received", "consumed", "total", "error", "backpressure",
                 "held", "body_error")

    def __init__(self, task_id: bytes, done_id: bytes, backpressure: int):
        self.task_id, self.done_id, self.backpressure = task_id, done_id, backpressure
        self.received = 0          # items in (the next index expected)
        self.consumed = 0          # items handed out (the next index next() gives)
        self.total: int | None = None  # items in all, once the task ended
        self.error: Any = None     # why the task failed, once it ended
        self.held: set = set()     # ids the stream holds a reference on
        self.body_error: Any = None  # what the body raised (body_failed): the last item's error


class StreamTable:
    """The streams this process consumes (call with the shell's lock held)."""

    def __init__(self, owner: Any):
        self.owner = owner
        self.objects = owner.objects
        self.log = owner.log
        self.streams: dict[bytes, Stream] = {}
        self.end_data: Any = None  # the shell's encoding of None: the end marker's value
        self.acks: list = []       # (task id, consumed): a retried task's worker to tell

    def open(self, task_id: bytes, done_id: bytes, backpressure: int = -1) -> list:
        """A streaming task was submitted (its done entry exists already)."""
        s = self.streams[task_id] = Stream(task_id, done_id, backpressure)
        self.log.append(("stream", task_id))
        o = self.objects.entries.get(done_id)
        out: list = []
        if o is None or o.ready:  # failed at submission (a dead actor, say)
            self.ended(s, out)
        elif o.waiters is None:
            o.waiters = [s]
        else:
            o.waiters.append(s)
        return out

    def _hold(self, s: Stream, id: bytes) -> Obj:
        o = self.objects.entries[id] = Obj(True, None, None, s.task_id)
        counts = self.objects.counts
        counts[id] = counts.get(id, 0) + 1
        s.held.add(id)
        return o

    def _release(self, s: Stream, id: bytes) -> None:
        if id in s.held:
            s.held.discard(id)
            self.objects.ref_deleted(id)

    # -- events from the task ----------------------------------------------------
    def item(self, task_id: bytes, index: int, data: Any) -> list:
        """Item `index` of the task's stream arrived (a retried task sends earlier ones again)."""
        s = self.streams.get(task_id)
        out: list = []
        id = stream_item_id(task_id, index)
        if s is None or index != s.received or s.total is not None:
            # nobody consumes it (the generator was dropped) or a retry's repeat: a value in
            # shared memory that no entry holds is freed (ObjectTable.complete)
            self.owner.complete(id, data, None, True, out)
            if s is not None and index == 0 and s.backpressure > 0 and s.consumed:
                self.acks.append((task_id, s.consumed))  # the retry's worker counts from 0
            return out
        if id not in self.objects.entries:
            self._hold(s, id)
        s.received = index + 1
        self.owner.complete(id, data, None, True, out)
        return out

    def body_failed(self, task_id: bytes, error: Any) -> bool:
        """The task's body raised `error` (not a crash, a cancel or an actor's death): as in
        Ray, it is the stream's last item, and the completion object (gen.completed())
        resolves to None; the shell completes it so when this says True. False when nobody
        consumes the stream: the completion object keeps the error."""
        s = self.streams.get(task_id)
        if s is None or s.total is not None:
            return False
        s.body_error = error
        return True

    def ended(self, s: Stream, out: list) -> None:
        """The task's done entry completed: the stream has all its items."""
        if s.total is not None:
            return
        done = self.objects.entries.get(s.done_id)
        s.total = s.received
        s.error = done.error if done is not None and done.error is not None else s.body_error
        self.log.append(("stream_end", s.task_id, s.total))
        id = stream_item_id(s.task_id, s.total)
        o = self.objects.entries.get(id)
        if o is not None and not o.ready:  # someone waits for the item after the last
            self._finish(s, id, out)

    def _finish(self, s: Stream, id: bytes, out: list) -> None:
        error = s.error if id == stream_item_id(s.task_id, s.total) else None
        self.owner.complete(id, None if error is not None else self.end_data, error, True, out)

    # -- the consumer --------------------------------------------------------------
    def next(self, task_id: bytes) -> tuple[str, bytes | None]:
        """What next(generator) finds: (ITEM, id), (WAIT, id) or (END, id)."""
        s = self.streams.get(task_id)
        if s is None:
            return END, None
        id = stream_item_id(task_id, s.consumed)
        o = self.objects.entries.get(id)
        if o is None:
            o = self._hold(s, id)
            if s.total is not None:
                out: list = []
                self._finish(s, id, out)  # nobody waits on a new entry: out stays empty
        if not o.ready:
            return WAIT, id
        if s.consumed < s.received or o.error is not None:
            return ITEM, id
        return END, id

    def taken(self, task_id: bytes) -> int | None:
        """The consumer made its ref to the item next() gave: the stream lets go of it.
        Returns the count consumed when the worker should be told (backpressure), else None."""
        s = self.streams.get(task_id)
        if s is None:
            return None
        self._release(s, stream_item_id(task_id, s.consumed))
        s.consumed += 1
        if s.backpressure > 0 and s.total is None:
            return s.consumed
        return None

    def drop(self, task_id: bytes) -> bool:
        """The generator is gone: unconsumed items are freed, later ones are never kept.
        True when the task still runs with backpressure (the worker must stop waiting)."""
        s = self.streams.pop(task_id, None)
        if s is None:
            return False
        self.log.append(("stream_drop", task_id))
        for id in list(s.held):
            self._release(s, id)
        done = self.objects.entries.get(s.done_id)
        if done is not None and done.waiters and s in done.waiters:
            done.waiters.remove(s)
        return s.backpressure > 0 and s.total is None

    def running_on(self, task_id: bytes) -> str | None:
        """The address of the worker running the stream's task, when it runs."""
        task = self.owner.tasks.tasks.get(task_id)
        return task.worker if task is not None and task.conn is not None else None

    def finished(self, task_id: bytes) -> bool:
        """True once the task ended and every item (and its error) was handed out."""
        s = self.streams.get(task_id)
        if s is None:
            return True
        return s.total is not None and s.consumed >= s.total + (1 if s.error is not None else 0)
