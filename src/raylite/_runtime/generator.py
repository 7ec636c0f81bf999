"""ObjectRefGenerator and DynamicObjectRefGenerator: what a generator task's .remote() gives.

    gen = f.remote()           f is a generator function: num_returns="streaming" (Ray's default)
    next(gen) / for r in gen   ─► runtime.stream_next: the ref of the next yielded value, as soon
                                  as the task yields it; StopIteration after the last one
    async for r in gen         ─► runtime.stream_future, then stream_next (the loop never blocks)
    ray.wait([gen])            ─► runtime.stream_probe: ready when the next item is in, or the
                                  stream is over
    gen.completed()            ─► the task's completion ref: resolves (to None) when the task
                                  ends, raising only when it failed outside its body (a worker's
                                  death, a cancel, an actor's death), as in Ray
    del gen                    ─► runtime.stream_dropped: items not taken are freed

A task that raises after yielding k values gives those k refs, then one ref
whose get() raises the error, then StopIteration; a worker crash, a cancel or
an actor's death end the stream the same way. The bookkeeping is the owner
core's (raylite._core.owner.streams); this class only holds the stream's task
id and its completion ref, and asks its runtime.

`num_returns="dynamic"` (deprecated in Ray) gives one ref whose value, once the
task ended, is a DynamicObjectRefGenerator: the refs of every yielded value (and,
when the body raised, a last ref holding that error, as in Ray).
"""
from __future__ import annotations

import os
from typing import Any


class ObjectRefGenerator:
    """The refs a streaming generator task yields, in order, as they come (Ray's class)."""
    __slots__ = ("_rt", "_task_id", "_done", "_pid", "__weakref__")

    def __init__(self, runtime: Any, task_id: bytes, done: Any):
        self._rt = runtime
        self._task_id = task_id
        self._done = done            # the completion ObjectRef (keeps its entry alive)
        self._pid = os.getpid()

    def __iter__(self) -> "ObjectRefGenerator":
        return self

    def __next__(self) -> Any:
        return self._rt.stream_next(self._task_id, None)

    def _next_sync(self, timeout_s: float | None = None) -> Any:
        """next(), waiting at most `timeout_s` seconds (GetTimeoutError after that)."""
        return self._rt.stream_next(self._task_id, timeout_s)

    def __aiter__(self) -> "ObjectRefGenerator":
        return self

    async def __anext__(self) -> Any:
        import asyncio

        await asyncio.wrap_future(self._rt.stream_future(self._task_id))
        try:
            return self._rt.stream_next(self._task_id, None)
        except StopIteration:
            raise StopAsyncIteration from None

    def completed(self) -> Any:
        """The ObjectRef that resolves (to None) when the task ends; its get() raises only
        when the task failed outside its body (a worker's death, a cancel): an error the body
        raised is the stream's last item, as in Ray."""
        self._rt.stream_completed(self._task_id)
        return self._done

    def next_ready(self) -> bool:
        """True when next() returns at once (an item is in, or the stream is over)."""
        return self._rt.stream_ready(self._task_id)

    def is_finished(self) -> bool:
        """True once the task ended and every item was handed out."""
        return self._rt.stream_finished(self._task_id)

    def task_id(self) -> Any:
        from .._ids import TaskID

        return TaskID(self._task_id)

    def __del__(self) -> None:
        rt = self._rt
        if rt is not None and self._pid == os.getpid():
            try:
                rt.stream_dropped(self._task_id)
            except Exception:  # interpreter shutdown: the runtime may be half torn down
                pass

    def __reduce__(self):
        raise TypeError("An ObjectRefGenerator cannot be pickled or passed to another task or "
                        "actor (as in Ray): pass the ObjectRefs it yields instead.")

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._task_id.hex()})"


class DynamicObjectRefGenerator:
    """The value of a num_returns="dynamic" task's one ref: the refs of every value it yielded."""

    def __init__(self, refs: list):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"


DYNAMIC_DEPRECATED = ("num_returns='dynamic' is deprecated (as in Ray); use "
                      "num_returns='streaming' (the default for generator functions), which "
                      "returns an ObjectRefGenerator of refs as the task yields them.")
