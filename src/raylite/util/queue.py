"""Queue: a first-in, first-out queue shared by drivers, tasks and actors (Ray's ray.util.queue).

    q = Queue(maxsize=100)
    producer.remote(q)          # a Queue pickles into tasks and actors
    item = q.get(timeout=5)     # raises Empty if nothing arrives in 5 s

    Queue (plain data: maxsize + actor handle) ──call──► _QueueActor (async actor)
                                                         └─ asyncio.Queue(maxsize)

The items live in one async actor (it holds no CPU while alive, Ray's rule for
actors). A blocking put or get is one actor call that awaits room or an item
inside the actor, bounded by `timeout` there, so many callers can block at
once without holding a thread each. The actor answers with a status instead
of raising, and the caller raises `Full` or `Empty` itself, exactly those
classes (subclasses of the standard library's `queue.Full`/`queue.Empty`).
Order is first-in first-out for one producer; blocked producers or consumers
are served in arrival order at the actor.

`shutdown()` ends the actor; calls through other copies of the Queue then
fail with ActorDiedError.
"""
from __future__ import annotations

import asyncio
import numbers
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

from .. import _api


class Empty(_stdlib_queue.Empty):
    """Raised by get() when the queue is empty (at once, or when the timeout passes)."""


class Full(_stdlib_queue.Full):
    """Raised by put() when the queue is full (at once, or when the timeout passes)."""


class _QueueActor:
    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.queue.qsize()

    async def empty(self) -> bool:
        return self.queue.empty()

    async def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None) -> bool:
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def get(self, timeout: float | None) -> tuple[bool, Any]:
        try:
            return True, await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return False, None

    async def put_nowait(self, item: Any) -> bool:
        try:
            self.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            return False

    async def put_nowait_batch(self, items: list) -> bool:
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            return False
        for item in items:
            self.queue.put_nowait(item)
        return True

    async def get_nowait(self) -> tuple[bool, Any]:
        try:
            return True, self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return False, None

    async def get_nowait_batch(self, num_items: int) -> tuple[bool, Any]:
        if num_items > self.queue.qsize():
            return False, self.queue.qsize()
        return True, [self.queue.get_nowait() for _ in range(num_items)]


_actor_class: Any = None


def _queue_actor() -> Any:
    global _actor_class
    if _actor_class is None:
        _actor_class = _api.remote(_QueueActor)
    return _actor_class


def _check_timeout(timeout: Any) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
                                or timeout < 0):
        raise ValueError(f"'timeout' must be a non-negative number or None, got {timeout!r}.")


class Queue:
    """A first-in, first-out queue backed by an actor; usable from drivers, tasks and actors.

    maxsize: the most items it holds (0: no limit). actor_options: passed to the
    actor's .options() (resources, a name, a lifetime...).
    """

    def __init__(self, maxsize: int = 0, actor_options: dict | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, numbers.Integral):
            raise TypeError(f"maxsize must be an int, got {type(maxsize).__name__}.")
        self.maxsize = max(int(maxsize), 0)
        self.actor = _queue_actor().options(**(actor_options or {})).remote(self.maxsize)

    def _handle(self) -> Any:
        if self.actor is None:
            raise RuntimeError("This Queue has been shut down: make a new Queue.")
        return self.actor

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return _api.get(self._handle().qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self.size()

    def empty(self) -> bool:
        return _api.get(self._handle().empty.remote())

    def full(self) -> bool:
        return _api.get(self._handle().full.remote())

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Adds an item; waits for room (up to `timeout` s) if `block`, else raises Full at once."""
        if not block:
            return self.put_nowait(item)
        _check_timeout(timeout)
        if not _api.get(self._handle().put.remote(item, timeout)):
            raise Full(f"The queue stayed full for {timeout} s.")

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """put() for asyncio code: awaits instead of blocking the thread."""
        if not block:
            ok = await self._handle().put_nowait.remote(item)
        else:
            _check_timeout(timeout)
            ok = await self._handle().put.remote(item, timeout)
        if not ok:
            raise Full("The queue is full." if not block else
                       f"The queue stayed full for {timeout} s.")

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Removes and returns the next item; waits (up to `timeout` s) if `block`, else raises Empty."""
        if not block:
            return self.get_nowait()
        _check_timeout(timeout)
        ok, item = _api.get(self._handle().get.remote(timeout))
        if not ok:
            raise Empty(f"The queue stayed empty for {timeout} s.")
        return item

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """get() for asyncio code: awaits instead of blocking the thread."""
        if not block:
            ok, item = await self._handle().get_nowait.remote()
        else:
            _check_timeout(timeout)
            ok, item = await self._handle().get.remote(timeout)
        if not ok:
            raise Empty("The queue is empty." if not block else
                        f"The queue stayed empty for {timeout} s.")
        return item

    def put_nowait(self, item: Any) -> None:
        """Adds an item, or raises Full at once."""
        if not _api.get(self._handle().put_nowait.remote(item)):
            raise Full("The queue is full.")

    def put_nowait_batch(self, items: Iterable) -> None:
        """Adds all the items in one call, or none of them and raises Full if they do not fit."""
        if not isinstance(items, Iterable):
            raise TypeError(f"put_nowait_batch() takes an iterable of items, got "
                            f"{type(items).__name__}.")
        items = list(items)
        if not _api.get(self._handle().put_nowait_batch.remote(items)):
            raise Full(f"Cannot add {len(items)} items to the queue: it holds at most "
                       f"{self.maxsize}.")

    def get_nowait(self) -> Any:
        """Removes and returns the next item, or raises Empty at once."""
        ok, item = _api.get(self._handle().get_nowait.remote())
        if not ok:
            raise Empty("The queue is empty.")
        return item

    def get_nowait_batch(self, num_items: int) -> list:
        """Removes and returns `num_items` items in order, or none and raises Empty if fewer are there."""
        if isinstance(num_items, bool) or not isinstance(num_items, numbers.Integral) \
                or num_items < 0:
            raise ValueError(f"'num_items' must be an int >= 0, got {num_items!r}.")
        ok, out = _api.get(self._handle().get_nowait_batch.remote(int(num_items)))
        if not ok:
            raise Empty(f"Cannot get {num_items} items from the queue: it holds {out}.")
        return out

    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """Ends the queue's actor: at once if `force`, else after its pending calls
        (killed anyway after `grace_period_s` seconds). Its items are dropped."""
        actor, self.actor = self.actor, None
        if actor is None:
            return
        if not force:
            done = actor.__ray_terminate__.remote()
            ready, _ = _api.wait([done], timeout=grace_period_s)
            if ready:
                return
        _api.kill(actor)
