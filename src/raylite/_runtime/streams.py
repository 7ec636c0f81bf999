"""The consumer side of streaming generators, shared by ClusterRuntime and LocalRuntime.

    ObjectRefGenerator ─► stream_next ─► with _lock: core.streams.next
                                            ITEM ─► ObjectRef (the consumer's) ─► taken ─► ack?
                                            END  ─► StopIteration
                                            WAIT ─► _stream_wait(...) then ask again
    ray.wait([gen])    ─► stream_probe: the ref of the next item's entry (the end marker once over)
    async for          ─► stream_future: done when next() would not wait

The two shells differ only in how an item comes: a cluster waits for the
worker's StreamItem (`_stream_wait` sleeps on the entry, `_stream_poke` does
nothing); local mode runs the generator's body one step on the caller's thread
(local_streams.py). Acks (backpressure) are the cluster's: `_stream_ack`.
"""
from __future__ import annotations

from typing import Any

from .._core.owner import ITEM, WAIT
from .generator import DYNAMIC_DEPRECATED, DynamicObjectRefGenerator, ObjectRefGenerator
from .object_ref import ObjectRef


class StreamConsumer:
    """Methods of a runtime that hand out a stream's items (the runtime has `_lock`, `_core`)."""

    # -- hooks of the shells ----------------------------------------------------
    def _stream_wait(self, task_id: bytes, id: bytes, timeout: float | None) -> None:
        raise NotImplementedError

    def _stream_poke(self, task_id: bytes) -> None:
        """Local mode makes the next item now; a cluster has nothing to do."""

    def _stream_ack(self, task_id: bytes, consumed: int) -> None:
        """Tells the worker how many items were consumed (backpressure); a cluster's."""

    def _stream_closed(self, task_id: bytes, worker: str | None) -> None:
        """The generator was dropped (local mode lets go of the body; a cluster tells the
        `worker` still running it with backpressure to stop waiting)."""

    def stream_completed(self, task_id: bytes) -> None:
        """gen.completed() was asked for (local mode runs the body to its end)."""

    def _fulfil(self, id: bytes, value: Any, error: Any) -> None:
        raise NotImplementedError

    # -- the generator's calls ------------------------------------------------------
    def stream_next(self, task_id: bytes, timeout: float | None) -> ObjectRef:
        streams = self._core.streams
        while True:
            with self._lock:
                kind, id = streams.next(task_id)
                if kind is ITEM:
                    ref = ObjectRef(id, self._core.address, self)
                    consumed = streams.taken(task_id)
            if kind is ITEM:
                if consumed is not None:
                    self._stream_ack(task_id, consumed)
                return ref
            if kind is not WAIT:
                raise StopIteration
            self._stream_wait(task_id, id, timeout)

    def stream_probe(self, task_id: bytes) -> ObjectRef:
        """A ref that is ready when next() would not wait (what wait() looks at)."""
        self._stream_poke(task_id)
        with self._lock:
            _, id = self._core.streams.next(task_id)
            return ObjectRef(id, self._core.address, self)

    def stream_future(self, task_id: bytes) -> Any:
        import concurrent.futures  # only for a stream awaited in asyncio

        fut = concurrent.futures.Future()
        self._stream_poke(task_id)
        with self._lock:
            kind, id = self._core.streams.next(task_id)
            ready = kind is not WAIT or self._core.objects.on_ready(
                self._core.objects.entries[id], lambda: fut.set_result(None))
        if ready:
            fut.set_result(None)
        return fut

    def stream_ready(self, task_id: bytes) -> bool:
        with self._lock:
            return self._core.streams.next(task_id)[0] is not WAIT

    def stream_finished(self, task_id: bytes) -> bool:
        with self._lock:
            return self._core.streams.finished(task_id)

    def stream_dropped(self, task_id: bytes) -> None:
        with self._lock:
            streams = self._core.streams
            worker = streams.running_on(task_id) if streams.drop(task_id) else None
        self._stream_closed(task_id, worker)

    def stream_dynamic(self, gen: ObjectRefGenerator) -> ObjectRef:
        """num_returns="dynamic": one ref whose value, once the task ended, is a
        DynamicObjectRefGenerator of every yielded ref (and the ref of the body's error, if
        it raised, as in Ray); the task's error when it failed outside its body."""
        import warnings

        warnings.warn(DYNAMIC_DEPRECATED, DeprecationWarning, stacklevel=5)
        from .. import _ids

        id = _ids.new_id()
        with self._lock:
            self._core.objects.expect(id)
            ref = ObjectRef(id, self._core.address, self)
        done = gen.completed()  # local mode: the body runs to its end here

        def finish() -> None:
            refs = []
            error = None
            for r in gen:  # the task ended: every item is in, next() never waits
                refs.append(r)
            with self._lock:
                d = self._core.objects.entries.get(done._id)
                error = d.error if d is not None else None
            if error is not None:
                refs = refs[:-1]  # the last one holds the error
            self._fulfil(id, DynamicObjectRefGenerator(refs), error)
        with self._lock:
            o = self._core.objects.entries[done._id]
            ready = self._core.objects.on_ready(o, finish)
        if ready:
            finish()
        return ref
