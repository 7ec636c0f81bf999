"""Streaming generators on Ray (RAYLITE_RUNTIME=ray): raylite's ObjectRefGenerator over Ray's.

    f.remote() (a generator)  ─► submit_stream ─► Ray: rf.options(num_returns="streaming")
                                                   ─► Ray's ObjectRefGenerator, kept in _streams
                                                      under its completion ref's id
    raylite ObjectRefGenerator(rt, that id, completion ref)
       next / for              ─► stream_next: Ray's _next_sync; each Ray ref wrapped as raylite's
       ray.wait([gen])         ─► stream_probe: the ref of the next position (Ray's peek), ready
                                  when the item is in or the stream is over
       async for               ─► stream_future: that ref's Ray future
       completed()             ─► the completion ref (Ray's generator ref)
       del gen                 ─► stream_dropped: Ray's generator goes, and Ray frees the rest

Ray's stream gives the refs of the values yielded and, when the task raised, one more
whose get() raises the error; after that, StopIteration, as raylite's own.

num_returns="dynamic" (deprecated in Ray as in raylite) is Ray's own; its one ref is passed
to a small Ray task that gives raylite's DynamicObjectRefGenerator of the same refs (the
task's error, if it raised, is that ref's error): one more task per call, for a form
Ray deprecates.
"""
from __future__ import annotations

import concurrent.futures
import threading
import warnings
from typing import Any

from .generator import DYNAMIC_DEPRECATED, ObjectRefGenerator
from .object_ref import ObjectRef
from .ray_errors import translate


class RayStreams:
    """RayRuntime's generator calls (the runtime has _ray, _call_task, _call_method and
    _dynamic_of)."""

    _streams: dict
    _streams_lock: threading.Lock

    def _stream_init(self) -> None:
        self._streams = {}  # completion ref id -> Ray's ObjectRefGenerator
        self._streams_lock = threading.Lock()

    def submit_stream(self, function: Any, args: tuple, kwargs: dict, options: Any) -> Any:
        if options.num_returns == "dynamic":
            warnings.warn(DYNAMIC_DEPRECATED, DeprecationWarning, stacklevel=3)
            return self._dynamic_of(self._call_task(function, args, kwargs, options))
        return self._stream_of(self._call_task(function, args, kwargs, options))

    def submit_actor_stream(self, actor_id: bytes, method: str, args: tuple, kwargs: dict,
                            options: Any) -> Any:
        if options.num_returns == "dynamic":
            warnings.warn(DYNAMIC_DEPRECATED, DeprecationWarning, stacklevel=3)
            return self._dynamic_of(self._call_method(actor_id, method, args, kwargs, options))
        return self._stream_of(self._call_method(actor_id, method, args, kwargs, options))

    def _stream_of(self, gen: Any) -> ObjectRefGenerator:
        done = gen.completed()
        key = done.binary()
        with self._streams_lock:
            self._streams[key] = gen
        return ObjectRefGenerator(self, key, ObjectRef(key, done, self))

    def _stream(self, task_id: bytes) -> Any:
        gen = self._streams.get(task_id)
        if gen is None:
            raise ValueError("This ObjectRefGenerator was dropped or belongs to another runtime.")
        return gen

    # -- the generator's calls --------------------------------------------------------
    def stream_next(self, task_id: bytes, timeout: float | None) -> ObjectRef:
        from .. import exceptions as rl_exc

        gen = self._stream(task_id)
        try:
            r = gen._next_sync(timeout)
        except StopIteration:
            raise
        except Exception as e:
            raise translate(e)
        if r.is_nil():
            raise rl_exc.GetTimeoutError(f"The generator's next item did not come in {timeout} s.")
        return ObjectRef(r.binary(), r, self)

    def _peek(self, task_id: bytes) -> tuple[Any, bool]:
        """(Ray's ref of the stream's next position, whether it is in already)."""
        gen = self._stream(task_id)
        return gen.worker.core_worker.peek_object_ref_stream(gen._generator_ref)

    def stream_probe(self, task_id: bytes) -> ObjectRef:
        r, _ = self._peek(task_id)  # past the end: a position Ray makes ready when the stream ends
        return ObjectRef(r.binary(), r, self)

    def stream_future(self, task_id: bytes) -> concurrent.futures.Future:
        out: concurrent.futures.Future = concurrent.futures.Future()
        r, ready = self._peek(task_id)
        if ready or self.stream_finished(task_id):
            out.set_result(None)
        else:
            r.future().add_done_callback(lambda _: out.set_result(None))
        return out

    def stream_ready(self, task_id: bytes) -> bool:
        gen = self._stream(task_id)
        return gen.next_ready() or gen.is_finished()

    def stream_finished(self, task_id: bytes) -> bool:
        return self._stream(task_id).is_finished()

    def stream_completed(self, task_id: bytes) -> None:
        """Nothing to do: the completion ref is Ray's generator ref."""

    def stream_dropped(self, task_id: bytes) -> None:
        with self._streams_lock:
            self._streams.pop(task_id, None)
