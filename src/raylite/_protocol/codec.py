"""A message's bytes in a frame, and back: the one encoding of every connection (connection.py),
the daemon's outbox (_node/outbox.py) and inproc's pickling mode.

    a message class of messages.py ─► pickle((its code, its fields as a plain tuple))
    a plain tuple                  ─► pickle((-1, the tuple))
    anything else                  ─► pickle(itself)

Why: a plain tuple of builtins pickles and unpickles on pickle's C fast path, while a
NamedTuple goes through Python-level __reduce_ex__/__getnewargs__ and __new__ and has its class
looked up by name every time. A TaskDone's round trip (dumps + loads) took 4.2 µs and takes
1.5 µs coded; a PushTask's 5.1 µs and 2.3 µs: two of them travel for every task.

Codes number the message classes in the order of their names: every process running this
version of raylite agrees on them. A frame with an unknown code, or fields that do not fit its
class, is an UnpicklingError, the error garbage gives.
"""
from __future__ import annotations

import pickle
from typing import Any

from . import messages

_dumps, _loads, _tuple_new = pickle.dumps, pickle.loads, tuple.__new__


def _message_classes() -> list:
    found = {cls for cls in vars(messages).values()
             if isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")
             and cls.__module__.startswith("raylite._protocol.messages")}
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))


CLASSES: dict = {}   # code -> (class, its number of fields)
CODES: dict = {}     # class -> code
for _code, _cls in enumerate(_message_classes()):
    CLASSES[_code] = (_cls, len(_cls._fields))
    CODES[_cls] = _code
del _code, _cls


def encode(msg: Any) -> bytes:
    code = CODES.get(type(msg))
    if code is not None:
        return _dumps((code, tuple(msg)), 5)
    if type(msg) is tuple:
        return _dumps((-1, msg), 5)
    return _dumps(msg, 5)


def decode(data: Any) -> Any:
    obj = _loads(data)
    if type(obj) is not tuple:
        return obj
    try:
        code, fields = obj
        if code == -1:
            return fields
        cls, n = CLASSES[code]
        if type(fields) is not tuple or len(fields) != n:
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise pickle.UnpicklingError("a frame that is no message of this raylite version") from None
    return _tuple_new(cls, fields)
