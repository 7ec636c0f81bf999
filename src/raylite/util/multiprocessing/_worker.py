"""The actor behind each Pool process, and how a chunk's failure travels back.

One actor call carries one or more chunks: run(key, fn, mode, chunks) applies
the function to every item of each chunk and returns one result per chunk (the
list of its results, or a _Failure). map and starmap send each worker all its
chunks of a call in one actor call; imap and apply_async send one. For map, imap and starmap the
function travels pickled (`fn` is its bytes) only in the first chunk an actor
gets for it; the actor keeps it under `key` (the last _KEEP functions), so
later chunks carry just the key (`fn` is None). apply_async passes the
function itself with no key: it is used once and not kept.
An exception in the function ends its chunk (the next chunks still run, as
separate calls would) and comes back as a _Failure
(the exception and its remote traceback text), so the caller re-raises the
very exception the function raised, as the standard library's Pool does.
"""
from __future__ import annotations

import pickle
import traceback
from typing import Any

from ... import _serialization

MAP, STAR, APPLY = 0, 1, 2
_KEEP = 32


class RemoteTraceback(Exception):
    """The __cause__ of an exception re-raised from a Pool worker: the traceback there."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class _Failure:
    __slots__ = ("error", "tb")

    def __init__(self, error: BaseException, tb: str):
        self.error = error
        self.tb = tb

    def __reduce__(self):
        return _Failure, (self.error, self.tb)

    def reraise(self) -> None:
        err = self.error
        err.__cause__ = RemoteTraceback(f'\n"""\n{self.tb}"""')
        raise err


class PoolWorker:
    """One Pool process: runs the initializer once, then chunk after chunk."""

    def __init__(self, initializer: Any, initargs: tuple):
        self.functions: dict = {}
        if initializer is not None:
            initializer(*initargs)

    def run(self, key: bytes | None, fn: Any, mode: int, chunks: list) -> list:
        if key is not None:
            fn = self._function(key, fn)
        return [_run_chunk(fn, mode, items) for items in chunks]

    def _function(self, key: bytes, blob: bytes | None) -> Any:
        fn = self.functions.get(key)
        if fn is None:
            if blob is None:
                raise RuntimeError("The Pool's function never reached this worker: loading it "
                                   "failed in an earlier chunk (that chunk raised the reason).")
            fn = pickle.loads(blob)
            if len(self.functions) >= _KEEP:
                del self.functions[next(iter(self.functions))]
            self.functions[key] = fn
        return fn


def _run_chunk(fn: Any, mode: int, items: list) -> Any:
    try:
        if mode == MAP:
            return list(map(fn, items))
        if mode == STAR:
            return [fn(*a) for a in items]
        return [fn(*a, **k) for a, k in items]
    except Exception as e:
        return _failure(e)


def _failure(e: Exception) -> _Failure:
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next))
    e.__traceback__ = None
    try:
        _serialization.dumps(e)
    except TypeError:  # an exception that cannot travel: its type name and text do
        e = RuntimeError(f"{type(e).__name__}: {e} (the original exception could not be pickled)")
    return _Failure(e, tb)
