"""AsyncResult (apply_async, map_async, starmap_async) and the imap iterators.

    chunk refs ──future done──► AsyncResult._chunk_done (on the runtime's thread)
                                  └─ last chunk: with callbacks ─► _Callbacks thread ─► callback
                                                 without       ─► ready at once

An AsyncResult is ready once every chunk's ref is; when it has a callback,
only after the callback ran (as in the standard library: get() returns after
it). Callbacks run on one thread per Pool, started when a result with a
callback is pending and gone when none is, so a user callback never runs on
the runtime's I/O thread. get(timeout) raises multiprocessing.TimeoutError.

The imap iterators submit chunks lazily: at most `window` chunks are in
flight, and each chunk taken tops the window up again.
"""
from __future__ import annotations

import collections
import multiprocessing
import queue
import threading
from typing import Any, Callable, Iterator

from ... import _api
from ._worker import _Failure


def unpack(calls: list) -> list:
    """The items of the calls' results (each a list of chunk results, the calls and their
    chunks in the input's order), raising the first failure in order."""
    out: list = []
    for chunks in calls:
        for c in chunks:
            if type(c) is _Failure:
                c.reraise()
            out.extend(c)
    return out


class _Callbacks:
    """The Pool's callback thread: alive while a result with a callback is pending."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def expect(self) -> None:
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="raylite-pool-callbacks")
                self._thread.start()

    def post(self, result: "AsyncResult") -> None:
        self._queue.put(result)

    def _run(self) -> None:
        while True:
            result = self._queue.get()
            try:
                result._finish()
            except BaseException:  # the thread must outlive anything a callback raises
                import logging

                logging.getLogger("raylite").exception("A Pool callback failed")
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._thread = None
                    return

    def join(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)


class AsyncResult:
    """The future result of apply_async / map_async / starmap_async."""

    def __init__(self, refs: list, single: bool, callback: Callable | None,
                 error_callback: Callable | None, callbacks: _Callbacks,
                 on_done: Callable[["AsyncResult"], None]):
        self._refs = refs
        self._single = single
        self._callback, self._error_callback = callback, error_callback
        self._callbacks = callbacks if (callback or error_callback) else None
        self._on_done = on_done
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._left = len(refs)
        self._futures: list = []
        self._outcome: tuple | None = None  # (True, value) or (False, exception)
        if self._callbacks is not None:
            self._callbacks.expect()
        if not refs:
            self._finish() if self._callbacks is None else self._callbacks.post(self)
            return
        self._futures = [r.future() for r in refs]
        for f in self._futures:
            f.add_done_callback(self._chunk_done)

    def _chunk_done(self, _fut: Any) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            if self._callbacks is None:
                self._finish(run_callbacks=False)
            else:
                self._callbacks.post(self)

    def _finish(self, run_callbacks: bool = True) -> None:
        if run_callbacks:
            ok, value = self._compute()
            try:
                if ok and self._callback is not None:
                    self._callback(value)
                elif not ok and self._error_callback is not None:
                    self._error_callback(value)
            finally:  # a failing callback is logged by the thread; the result is still ready
                self._event.set()
                self._on_done(self)
            return
        self._event.set()
        self._on_done(self)

    def _compute(self) -> tuple:
        with self._lock:
            if self._outcome is None:
                try:
                    values = unpack([f.result() for f in self._futures])
                    self._outcome = (True, values[0] if self._single else values)
                except Exception as e:
                    self._outcome = (False, e)
            return self._outcome

    def ready(self) -> bool:
        return self._event.is_set()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._compute()[0]

    def wait(self, timeout: float | None = None) -> None:
        self._event.wait(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """The result; raises the task's exception, or multiprocessing.TimeoutError."""
        if not self._event.wait(timeout):
            raise multiprocessing.TimeoutError(f"The result was not ready within {timeout} s.")
        ok, value = self._compute()
        if ok:
            return value
        raise value


ApplyResult = MapResult = AsyncResult


class IMapIterator:
    """Results of imap (in order) or imap_unordered (as chunks finish), submitted lazily."""

    def __init__(self, submit: Callable[[list], Any], chunks: Iterator[list], window: int,
                 ordered: bool, on_taken: Callable[[Any], None]):
        self._submit = submit
        self._chunks = chunks
        self._window = window
        self._ordered = ordered
        self._on_taken = on_taken
        self._inflight: collections.deque = collections.deque()
        self._buffer: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._fill()

    def submit_rest(self) -> None:
        """Submits every chunk left (the Pool is closing: the work given must all run)."""
        with self._lock:
            self._window = float("inf")
            self._fill()

    def _fill(self) -> None:
        while self._chunks is not None and len(self._inflight) < self._window:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._chunks = None
                return
            self._inflight.append(self._submit(chunk))

    def __iter__(self) -> "IMapIterator":
        return self

    def next(self, timeout: float | None = None) -> Any:
        """The next result; raises StopIteration at the end, multiprocessing.TimeoutError on timeout."""
        with self._lock:
            if self._buffer:
                return self._buffer.popleft()
            if not self._inflight:
                raise StopIteration
            if self._ordered:
                ref = self._inflight[0]
                ready, _ = _api.wait([ref], timeout=timeout)
            else:
                ready, _ = _api.wait(list(self._inflight), num_returns=1, timeout=timeout)
            if not ready:
                raise multiprocessing.TimeoutError(f"No result within {timeout} s.")
            ref = ready[0]
            self._inflight.remove(ref) if not self._ordered else self._inflight.popleft()
            self._fill()
            self._on_taken(ref)
            self._buffer.extend(unpack([_api.get(ref)]))
            return self._buffer.popleft()

    __next__ = next
