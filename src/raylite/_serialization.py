"""Serialization of values, functions and errors (a leaf module).

Values go through cloudpickle (so lambdas and classes defined in __main__
travel by value) with pickle protocol 5. Plain scalars take a fast path.

While a value is being serialized, every ObjectRef pickled inside it is
recorded (`note_ref`), so the runtime knows which refs the value contains:
a ref inside an object is a borrow, not a copy of the value.
"""
from __future__ import annotations

import pickle
import threading
import traceback
from typing import Any

import cloudpickle

_FAST = (int, float, str, bytes, bool, type(None))
_tls = threading.local()


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
        return cloudpickle.dumps(value, 5)
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
        return cloudpickle.dumps(value, 5, buffer_callback=buffers.append), buffers, refs
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
