"""ActorPool: spread work over a fixed set of actors (Ray's ray.util.ActorPool API).

    pool = ActorPool([A.remote(), A.remote()])
    list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3]))   # in order

Built only on the public API: remote calls, get() and wait().
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from .. import _api
from ..exceptions import GetTimeoutError


class ActorPool:
    def __init__(self, actors: list):
        self._idle = list(actors)
        self._future_to_actor: dict = {}   # ref -> (index, actor)
        self._index_to_future: dict = {}   # submission index -> ref
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending: list = []           # (fn, value) waiting for an idle actor

    def map(self, fn: Callable[[Any, Any], Any], values: Iterable) -> Iterator:
        """Results in the order of `values`."""
        while self.has_next():  # drain earlier work so results do not mix
            self.get_next_unordered()
        for v in values:
            self.submit(fn, v)
        while self.has_next():
            yield self.get_next()

    def map_unordered(self, fn: Callable[[Any, Any], Any], values: Iterable) -> Iterator:
        """Results as they finish."""
        while self.has_next():
            self.get_next_unordered()
        for v in values:
            self.submit(fn, v)
        while self.has_next():
            yield self.get_next_unordered()

    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Runs fn(actor, value) on an idle actor, or queues it until one is free."""
        if self._idle:
            actor = self._idle.pop()
            ref = fn(actor, value)
            self._future_to_actor[ref] = (self._next_task_index, actor)
            self._index_to_future[self._next_task_index] = ref
            self._next_task_index += 1
        else:
            self._pending.append((fn, value))

    def has_next(self) -> bool:
        return bool(self._future_to_actor)

    def has_free(self) -> bool:
        return bool(self._idle) and not self._pending

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        ref = self._index_to_future[self._next_return_index]
        if timeout is not None:
            ready, _ = _api.wait([ref], timeout=timeout)
            if not ready:
                if ignore_if_timedout:
                    del self._index_to_future[self._next_return_index]
                    self._next_return_index += 1
                raise GetTimeoutError("Timed out waiting for the next result.")
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(ref)
        self._return_actor(actor)
        return _api.get(ref)

    def get_next_unordered(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """Whichever result finishes first."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = _api.wait(list(self._future_to_actor), num_returns=1, timeout=timeout)
        if not ready:
            raise GetTimeoutError("Timed out waiting for the next result.")
        ref = ready[0]
        index, actor = self._future_to_actor.pop(ref)
        self._index_to_future.pop(index, None)
        self._next_return_index = max(self._next_return_index, index + 1)
        self._return_actor(actor)
        return _api.get(ref)

    def _return_actor(self, actor: Any) -> None:
        self._idle.append(actor)
        if self._pending:
            self.submit(*self._pending.pop(0))

    def pop_idle(self) -> Any:
        """Removes and returns an idle actor, or None."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Adds an actor to the pool."""
        busy = {a for _, a in self._future_to_actor.values()}
        if actor in self._idle or actor in busy:
            raise ValueError("Actor already belongs to this pool.")
        self._return_actor(actor)
