"""Serialization of values, functions and errors (a leaf module).

Values go through cloudpickle (so lambdas and classes defined in __main__
travel by value) with pickle protocol 5. Plain scalars take a fast path.

While a value is being serialized, every ObjectRef pickled inside it is
recorded (`note_ref`), so the runtime knows which refs the value contains:
a ref inside an object is a borrow, not a copy of the value.

Custom serializers (`raylite.util.register_serializer`) are this process's
own, as in Ray: `add_reducer` swaps `_cloudpickle_dumps` for a pickler whose
dispatch table consults them first, and the last `remove_reducer` swaps the
plain one back, so a process that registers nothing pays nothing per value.
The deserializer travels by value inside the pickle, so the receiving process
needs no registration to read what was written.
"""
from __future__ import annotations

import collections
import io
import pickle
import threading
import traceback
from typing import Any, Callable

import cloudpickle

_FAST = (int, float, str, bytes, bool, type(None))
_tls = threading.local()
_reducers: dict = {}                      # cls -> reducer, this process's custom serializers
_cloudpickle_dumps = cloudpickle.dumps    # swapped for _dumps_custom while _reducers is non-empty


class _CustomPickler(cloudpickle.CloudPickler):
    dispatch_table = collections.ChainMap(_reducers, cloudpickle.CloudPickler.dispatch_table)


def _dumps_custom(value: Any, protocol: int, buffer_callback: Any = None) -> bytes:
    with io.BytesIO() as f:
        _CustomPickler(f, protocol, buffer_callback=buffer_callback).dump(value)
        return f.getvalue()


def add_reducer(cls: type, reducer: Callable[[Any], tuple]) -> None:
    """Pickles instances of exactly `cls` with `reducer(obj)` in this process from now on."""
    global _cloudpickle_dumps
    _reducers[cls] = reducer
    _cloudpickle_dumps = _dumps_custom


def remove_reducer(cls: type) -> None:
    """Forgets `cls`'s reducer (nothing happens if there is none)."""
    global _cloudpickle_dumps
    _reducers.pop(cls, None)
    if not _reducers:
        _cloudpickle_dumps = cloudpickle.dumps


def note_ref(ref: Any) -> None:
    """Called by ObjectRef.__reduce__: records a ref pickled inside the current value."""
    refs = getattr(_tls, "refs", None)
    if refs is not None:
        refs.append(ref)


def dumps(value: Any) -> bytes:
    """Serializes a value; raises TypeError naming the value when it cannot be."""
    if type(value) in _FAST:
        return pickle.dumps(value, 5)
    try:
        return _cloudpickle_dumps(value, 5)
    except Exception as e:
        raise TypeError(f"Could not serialize {type(value).__name__} value {_short(value)}: {e}. "
                        "Values passed to and from tasks must be picklable.") from e


def dumps_with_refs(value: Any) -> tuple[bytes, list]:
    """Serializes a value and returns it with the ObjectRefs found inside it."""
    if type(value) in _FAST:
        return pickle.dumps(value, 5), []
    outer = getattr(_tls, "refs", None)
    _tls.refs = refs = []
    try:
        return dumps(value), refs
    finally:
        _tls.refs = outer


def serialize_with_refs(value: Any) -> tuple[bytes, list, list]:
    """(pickle bytes, out-of-band buffers, refs found inside) with pickle protocol 5."""
    if type(value) in _FAST:
        return pickle.dumps(value, 5), [], []
    outer = getattr(_tls, "refs", None)
    _tls.refs = refs = []
    buffers: list = []
    try:
        return _cloudpickle_dumps(value, 5, buffer_callback=buffers.append), buffers, refs
    except Exception as e:
        raise TypeError(f"Could not serialize {type(value).__name__} value {_short(value)}: {e}. "
                        "Values passed to and from tasks must be picklable.") from e
    finally:
        _tls.refs = outer


loads = pickle.loads


def dumps_error(err: BaseException) -> bytes:
    """Serializes an error; an unpicklable one is replaced by a RuntimeError carrying its text."""
    try:
        return cloudpickle.dumps(err, 5)
    except Exception:
        from .exceptions import RayTaskError

        if isinstance(err, RayTaskError):
            cause = RuntimeError(f"{type(err.cause).__name__}: {err.cause} (the original "
                                 "exception could not be pickled)")
            err = RayTaskError(err.function_name, err.traceback_str, cause, err.pid, err.actor_repr)
        else:
            err = RuntimeError(f"{type(err).__name__}: {err}")
        return cloudpickle.dumps(err, 5)


def format_remote_traceback(exc: BaseException, skip: int = 1) -> str:
    """The traceback of a user exception without raylite's own frames on top."""
    tb = exc.__traceback__
    for _ in range(skip):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _short(value: Any) -> str:
    try:
        r = repr(value)
    except Exception:
        r = object.__repr__(value)
    return r if len(r) <= 80 else r[:77] + "..."
