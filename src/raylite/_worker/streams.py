"""Running a streaming generator task in a worker: each yielded value goes to the owner at once.

    PushTask / PushActorTask with stream=backpressure
      body(*args) ─► a generator ─► for each value v (index i):
          encode(v) under the item's id (_ids.stream_item_id: inline, or shared memory)
          ──StreamItem(task, i, data)──► owner, on the task's connection
          backpressure and i+1 - consumed >= backpressure ─► wait for StreamConsumed
      end ─► the task's TaskDone (its one result: None; or the error, raised at the yield
             where it happened) follows the items on the same connection

Backpressure: the owner sends StreamConsumed on the general channel (the task
connection's reader is this thread, busy here); its reader thread records the
count in `Gates` and wakes the waiting generator. The wait is interruptible
(cancel's SIGINT on the main thread, `cancelled` checked between slices on an
actor's threads) and ends if the owner's connection closes (nobody will consume); a
value the owner can no longer receive (its connection broke) stops the body too.
"""
from __future__ import annotations

import select
import socket
import threading
from typing import Any

from .._ids import stream_item_id
from .._protocol.messages_streams import StreamItem
from .._runtime import execution

_SLICE = 0.5  # seconds between checks of cancel and of the owner while paused


class Gates:
    """How many items of each running stream the owner consumed (for backpressure)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.consumed: dict[bytes, int] = {}

    def on_consumed(self, conn: Any, msg: Any) -> None:
        if type(msg.task_id) is not bytes or type(msg.consumed) is not int:
            return  # malformed: nothing changes
        with self.cond:
            if msg.task_id in self.consumed:
                n = msg.consumed
                self.consumed[msg.task_id] = n if n < 0 else max(n, self.consumed[msg.task_id])
                self.cond.notify_all()

    def open(self, task_id: bytes) -> None:
        with self.cond:
            self.consumed[task_id] = 0

    def close(self, task_id: bytes) -> None:
        with self.cond:
            self.consumed.pop(task_id, None)

    def paused(self, task_id: bytes, produced: int, limit: int) -> bool:
        n = self.consumed.get(task_id, -1)
        return n >= 0 and produced - n >= limit

    def wait(self, ex: Any, conn: Any, task_id: bytes, produced: int, limit: int) -> None:
        with self.cond:
            while self.paused(task_id, produced, limit):
                if task_id in ex.cancelled:
                    raise KeyboardInterrupt
                if _closed(conn):
                    raise ConnectionError("The owner of this generator task is gone.")
                self.cond.wait(_SLICE)


def _closed(conn: Any) -> bool:
    """True when the owner closed the task connection (it can no longer consume)."""
    sock = getattr(conn, "sock", None)
    if sock is None:
        return False
    try:
        if not select.select([sock], [], [], 0)[0]:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _item(ex: Any, conn: Any, t: Any, i: int, value: Any) -> None:
    rid = stream_item_id(t.task_id, i)
    data, refs = ex.rt.encode(value, rid, t.owner)
    ex.rt.pin(refs)
    try:
        conn.send(StreamItem(t.task_id, i, data))
    except OSError:  # nobody to deliver to: the body stops here (its reply is dropped too)
        raise ConnectionError("The owner of this generator task is gone.") from None


def run_stream(ex: Any, conn: Any, t: Any, gen: Any, name: str) -> None:
    """Iterates a generator task's body, sending each value as it comes; its exception
    propagates (the task's TaskDone carries it)."""
    if type(gen) is not execution.GENERATOR:
        raise execution.stream_refused(name, gen)
    limit = t.stream
    gates = ex.gates
    if limit > 0:
        gates.open(t.task_id)
    try:
        for i, value in enumerate(gen):
            if t.task_id in ex.cancelled:  # an actor's call (the main thread gets SIGINT)
                raise KeyboardInterrupt
            _item(ex, conn, t, i, value)
            if limit > 0 and gates.paused(t.task_id, i + 1, limit):
                gates.wait(ex, conn, t.task_id, i + 1, limit)
    finally:
        if limit > 0:
            gates.close(t.task_id)


async def run_stream_async(ex: Any, conn: Any, t: Any, gen: Any, name: str) -> None:
    """As run_stream, for an async actor's method: an async generator (or a plain one)."""
    import asyncio
    import inspect

    if not inspect.isasyncgen(gen):
        run_stream(ex, conn, t, gen, name)
        return
    limit = t.stream
    gates = ex.gates
    if limit > 0:
        gates.open(t.task_id)
    try:
        i = 0
        async for value in gen:
            _item(ex, conn, t, i, value)
            i += 1
            while limit > 0 and gates.paused(t.task_id, i, limit):
                if _closed(conn):
                    raise ConnectionError("The owner of this generator task is gone.")
                await asyncio.sleep(0.01)  # paused: the loop runs the actor's other calls
    finally:
        if limit > 0:
            gates.close(t.task_id)
