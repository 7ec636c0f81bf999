"""Pool: the standard library's multiprocessing.Pool on raylite actors (Ray's ray.util.multiprocessing).

    with Pool(processes=4) as pool:
        pool.map(f, range(10_000))           # [f(0), f(1), ...]

    Pool ──chunks──► PoolWorker actors (one per process, num_cpus=1 each)
     │   map/starmap:      every chunk submitted at once, each worker's share in one
     │                     actor call; get() them all
     │   imap/imap_unordered: one chunk per call, at most `window` in flight, topped
     │                        up as taken (close() submits the rest, so join() waits)
     │   *_async:          AsyncResult, completed by the refs' futures
     └─ slots: actor, functions it holds, chunks in flight (the least loaded gets the next)

Items are cut into chunks (map's default: len / (4 * processes), as in the
standard library); a list, tuple or range is cut as it is, so a range's chunks
are ranges: no item of it is made or pickled by the caller, nor unpickled by a
worker (other iterables are read into a list first). A map deals its chunks out
as the standard library's workers would share them (each to the least loaded
worker) and sends each worker its share, contiguous chunks, in one actor call:
the calls, not the items, are what a map of tiny items pays for
(docs/performance.md). With
maxtasksperchild, which counts chunks, each chunk is a call of its own. The
function is pickled once per call of map and sent to each actor once.
Results and errors are the standard library's: results in order, an exception
raised by the function is re-raised as itself (its remote traceback as the
__cause__), AsyncResult.get(timeout) raises multiprocessing.TimeoutError.

`maxtasksperchild` counts chunks: after that many, the actor ends once its
queued chunks are done and a fresh one (initializer run again) takes its
place. `context` is accepted and unused (processes are raylite's workers).
`ray_address` is used to init() when raylite is not initialized yet;
`ray_remote_args` are the actors' options (default num_cpus=1).

Locks: `_submit_lock` orders submissions (so the call that carries a
function reaches an actor before the calls that only name it);
`_load_lock` guards the in-flight counts and is the only lock a runtime
callback takes, never held while calling into the runtime.
"""
from __future__ import annotations

import hashlib
import itertools
import numbers
import threading
import weakref
from typing import Any, Callable, Iterable, Iterator

from ... import _api, _serialization
from ._results import AsyncResult, IMapIterator, _Callbacks, unpack
from ._worker import APPLY, MAP, STAR, PoolWorker

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"
_SLICED = (list, tuple, range)  # sequences map() cuts into chunks without copying them first
_worker_class: Any = None


def _worker_actor() -> Any:
    global _worker_class
    if _worker_class is None:
        _worker_class = _api.remote(PoolWorker)
    return _worker_class


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {v!r}.")
    return int(v)


class _Slot:
    __slots__ = ("actor", "sent", "load", "chunks")

    def __init__(self, actor: Any):
        self.actor = actor
        self.sent: set = set()  # keys of the functions this actor was sent
        self.load = 0           # chunks in flight
        self.chunks = 0         # chunks ever given (for maxtasksperchild)


class Pool:
    """A pool of worker actors with the standard library's Pool API."""

    def __init__(self, processes: int | None = None, initializer: Callable | None = None,
                 initargs: Iterable | None = None, maxtasksperchild: int | None = None,
                 context: Any = None, ray_address: str | None = None,
                 ray_remote_args: dict | None = None):
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if maxtasksperchild is not None:
            maxtasksperchild = _positive_int("maxtasksperchild", maxtasksperchild)
        if processes is not None:
            processes = _positive_int("processes", processes)
        if ray_address is not None and not _api.is_initialized():
            _api.init(address=ray_address)
        options = dict(ray_remote_args or {})
        options.setdefault("num_cpus", 1)
        cpus = _api.cluster_resources().get("CPU", 0)
        per = options["num_cpus"]
        if processes is None:
            processes = max(int(cpus // per) if per else int(cpus), 1)
        elif per and processes * per > cpus:
            raise ValueError(f"Tried to start a pool with {processes} processes of {per} CPU each "
                             f"on a cluster with {cpus:g} CPUs: ask for fewer processes, or "
                             "start the cluster with more CPUs.")
        self._processes = processes
        self._initializer = initializer
        self._initargs = tuple(initargs or ())
        self._maxtasks = maxtasksperchild
        self._options = options
        self._state = RUN
        self._submit_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._ref_slot: dict = {}    # chunk ref in flight -> its slot
        self._pending: set = set()   # AsyncResults that may not be ready
        self._retired: list = []     # (actor, its end's ref): ending after their queued chunks
        self._callbacks = _Callbacks()
        self._iterators: weakref.WeakSet = weakref.WeakSet()  # imaps that may have input left
        self._slots = [_Slot(self._new_actor()) for _ in range(processes)]

    def _new_actor(self) -> Any:
        return _worker_actor().options(**self._options).remote(self._initializer, self._initargs)

    def __repr__(self) -> str:
        return f"<raylite.util.multiprocessing.Pool state={self._state} pool_size={self._processes}>"

    def __enter__(self) -> "Pool":
        self._check_running()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()

    def _check_running(self) -> None:
        if self._state != RUN:
            raise ValueError("Pool not running")

    # -- submission ---------------------------------------------------------------
    def _submit(self, key: bytes | None, fn: Any, mode: int, chunks: list,
                slot: _Slot | None = None) -> Any:
        """Sends chunks in one call to `slot` (default: the least loaded actor); the caller
        holds _submit_lock."""
        with self._load_lock:
            if slot is None:
                slot = min(self._slots, key=lambda s: s.load)
            slot.load += len(chunks)
        if key is not None:
            fn = None if key in slot.sent else fn
            slot.sent.add(key)
        ref = slot.actor.run.remote(key, fn, mode, chunks)
        with self._load_lock:
            self._ref_slot[ref] = (slot, len(chunks))
        slot.chunks += len(chunks)
        if self._maxtasks is not None and slot.chunks >= self._maxtasks:
            end = slot.actor.__ray_terminate__.remote()  # runs after its queued chunks
            self._retired.append((slot.actor, end))
            self._slots[self._slots.index(slot)] = _Slot(self._new_actor())
        return ref

    def _taken(self, refs: Iterable) -> None:
        with self._load_lock:
            for r in refs:
                slot, n = self._ref_slot.pop(r, (None, 0))
                if slot is not None:
                    slot.load -= n

    def _result_done(self, result: AsyncResult) -> None:
        self._taken(result._refs)
        with self._load_lock:
            self._pending.discard(result)

    @staticmethod
    def _pickled(func: Callable) -> tuple[bytes, bytes]:
        if not callable(func):
            raise TypeError(f"The Pool's function must be callable, got {type(func).__name__}.")
        blob = _serialization.dumps(func)
        return hashlib.blake2b(blob, digest_size=16).digest(), blob

    def _chunksize(self, n: int, chunksize: int | None) -> int:
        if chunksize is not None:
            return _positive_int("chunksize", chunksize)
        size, extra = divmod(n, self._processes * 4)
        return size + 1 if extra else max(size, 1)

    def _submit_all(self, func: Callable, mode: int, iterable: Iterable,
                    chunksize: int | None) -> list:
        self._check_running()
        # a list, tuple or range is cut as it is (a range's chunks are ranges: no item is made
        # or pickled here, nor unpickled there); anything else is read into a list first
        items = iterable if type(iterable) in _SLICED else list(iterable)
        key, blob = self._pickled(func)
        size = self._chunksize(len(items), chunksize)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        with self._submit_lock:
            if self._maxtasks is not None:
                return [self._submit(key, blob, mode, [c]) for c in chunks]
            refs, start = [], 0
            for slot, n in self._shares(len(chunks)):
                refs.append(self._submit(key, blob, mode, chunks[start:start + n], slot))
                start += n
            return refs

    def _shares(self, n: int) -> list:
        """(slot, how many chunks) for n chunks, each dealt to the least loaded slot."""
        with self._load_lock:
            loads = [s.load for s in self._slots]
        counts = [0] * len(loads)
        for _ in range(n):
            i = min(range(len(loads)), key=lambda j: loads[j] + counts[j])
            counts[i] += 1
        return [(slot, k) for slot, k in zip(self._slots, counts) if k]

    def _async(self, refs: list, single: bool, callback: Callable | None,
               error_callback: Callable | None) -> AsyncResult:
        result = AsyncResult(refs, single, callback, error_callback, self._callbacks,
                             self._result_done)
        with self._load_lock:
            if not result.ready():
                self._pending.add(result)
        return result

    # -- the standard library's API -----------------------------------------------
    def apply(self, func: Callable, args: tuple = (), kwds: dict | None = None, *,
              kwargs: dict | None = None) -> Any:
        """func(*args, **kwds) in a worker; waits for the result."""
        return self.apply_async(func, args, kwds, kwargs=kwargs).get()

    def apply_async(self, func: Callable, args: tuple = (), kwds: dict | None = None,
                    callback: Callable | None = None, error_callback: Callable | None = None,
                    *, kwargs: dict | None = None) -> AsyncResult:
        """func(*args, **kwds) in a worker; returns an AsyncResult at once."""
        self._check_running()
        if not callable(func):
            raise TypeError(f"apply_async() takes a callable, got {type(func).__name__}.")
        call = (tuple(args or ()), dict(kwds or kwargs or {}))
        with self._submit_lock:
            ref = self._submit(None, func, APPLY, [[call]])
        return self._async([ref], True, callback, error_callback)

    def map(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        """[func(x) for x in iterable], computed in chunks across the workers."""
        return self._get_all(self._submit_all(func, MAP, iterable, chunksize))

    def starmap(self, func: Callable, iterable: Iterable, chunksize: int | None = None) -> list:
        """[func(*args) for args in iterable], computed in chunks across the workers."""
        return self._get_all(self._submit_all(func, STAR, iterable, chunksize))

    def _get_all(self, refs: list) -> list:
        try:
            chunks = _api.get(refs)
        finally:
            self._taken(refs)
        return unpack(chunks)

    def map_async(self, func: Callable, iterable: Iterable, chunksize: int | None = None,
                  callback: Callable | None = None,
                  error_callback: Callable | None = None) -> AsyncResult:
        refs = self._submit_all(func, MAP, iterable, chunksize)
        return self._async(refs, False, callback, error_callback)

    def starmap_async(self, func: Callable, iterable: Iterable, chunksize: int | None = None,
                      callback: Callable | None = None,
                      error_callback: Callable | None = None) -> AsyncResult:
        refs = self._submit_all(func, STAR, iterable, chunksize)
        return self._async(refs, False, callback, error_callback)

    def imap(self, func: Callable, iterable: Iterable, chunksize: int = 1) -> IMapIterator:
        """func(x) for each x, in order, as an iterator; the iterable is read lazily."""
        return self._imap(func, iterable, chunksize, True)

    def imap_unordered(self, func: Callable, iterable: Iterable,
                       chunksize: int = 1) -> IMapIterator:
        """func(x) for each x, in the order they finish."""
        return self._imap(func, iterable, chunksize, False)

    def _imap(self, func: Callable, iterable: Iterable, chunksize: int,
              ordered: bool) -> IMapIterator:
        self._check_running()
        size = _positive_int("chunksize", chunksize)
        key, blob = self._pickled(func)

        def submit(chunk: list) -> Any:
            if self._state == TERMINATE:
                raise ValueError("Pool not running")
            with self._submit_lock:
                return self._submit(key, blob, MAP, [chunk])

        it = IMapIterator(submit, _chunks(iter(iterable), size), 8 * self._processes,
                          ordered, lambda ref: self._taken((ref,)))
        self._iterators.add(it)
        return it

    # -- lifetime -----------------------------------------------------------------
    def close(self) -> None:
        """Takes no more work; join() then waits for the work given (an imap's whole input too)."""
        if self._state == RUN:
            self._state = CLOSE
            for it in list(self._iterators):
                it.submit_rest()

    def terminate(self) -> None:
        """Stops the workers now; work in flight fails."""
        self._state = TERMINATE
        for actor in [s.actor for s in self._slots] + [a for a, _ in self._retired]:
            _api.kill(actor)
        self._retired.clear()
        self._callbacks.join(timeout=10)

    def join(self) -> None:
        """Waits for the work given and ends the workers (after close() or terminate())."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state == CLOSE:
            with self._load_lock:
                pending = list(self._pending)
            for r in pending:
                r.wait()
            ends = [s.actor.__ray_terminate__.remote() for s in self._slots]
            ends += [ref for _, ref in self._retired]
            _api.wait(ends, num_returns=len(ends))
            self._retired.clear()
        self._callbacks.join()


def _chunks(it: Iterator, size: int) -> Iterator[list]:
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk
