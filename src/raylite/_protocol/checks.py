"""The field checks of raylite._protocol.validate: each takes a value and returns None for a
good one or says what is wrong with it (a string that reads after the field's name)."""
from __future__ import annotations

import math
from typing import Any, Callable

Check = Callable[[Any], "str | None"]

ID = 16                  # bytes in a task, object, actor, worker, node or lease id
MAX_INT = 2**63 - 1
MAX_TEXT = 2**16         # characters in a name, namespace, address, hostname or reason
MAX_ITEMS = 2**16        # entries in a resource dict, an id tuple, env vars, sys.path
MAX_AMOUNT = 1e18        # a resource amount (bytes of memory are the largest)


def _at(where: str, why: str) -> str:
    """`why` said of the part of a value at `where` ("[3]", ".name", "Type.field")."""
    return where + (why if why[0] in " [.:" else " " + why)


def _show(v: Any) -> str:
    try:
        text = repr(v)
    except Exception:  # a tuple built by hand with too few fields for its class's repr
        text = f"of {len(v)} items" if isinstance(v, tuple) else "(no repr)"
    return f"{type(v).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


# -- checks ---------------------------------------------------------------------
def integer(lo: int = 0, hi: int = MAX_INT) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is int and lo <= v <= hi:
            return None
        return f"must be an integer from {lo} to {hi}, not {_show(v)}"
    return check


def amount(v: Any) -> str | None:
    t = type(v)
    if (t is float and math.isfinite(v) or t is int) and 0 <= v <= MAX_AMOUNT:
        return None
    return f"must be a finite number from 0 to {MAX_AMOUNT:g}, not {_show(v)}"


def ident(n: int = ID) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is bytes and len(v) == n:
            return None
        return f"must be a {n}-byte id, not {_show(v)}"
    return check


def blob(v: Any) -> str | None:
    return None if type(v) is bytes else f"must be bytes, not {_show(v)}"


def bytes_of(limit: int, empty: bool = True) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is bytes and len(v) <= limit and (empty or v):
            return None
        return f"must be{'' if empty else ' non-empty'} bytes of at most {limit}, not {_show(v)}"
    return check


def text(limit: int = MAX_TEXT, empty: bool = True) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is str and len(v) <= limit and (empty or v):
            return None
        return f"must be a{'' if empty else ' non-empty'} string of at most {limit} characters, not {_show(v)}"
    return check


def address(v: Any) -> str | None:
    if type(v) is str and len(v) <= 300:
        host, _, port = v.rpartition(":")
        if host and port.isascii() and port.isdigit() and int(port) <= 65535:
            return None
    return f"must be a \"host:port\" address, not {_show(v)}"


def optional_address(v: Any) -> str | None:
    return None if v == "" and type(v) is str else address(v)


def flag(v: Any) -> str | None:
    return None if type(v) is bool else f"must be True or False, not {_show(v)}"


def anything(v: Any) -> None:
    return None


def optional(check: Check) -> Check:
    def opt(v: Any) -> str | None:
        return None if v is None else check(v)
    return opt


def one_of(*values: Any) -> Check:
    def check(v: Any) -> str | None:
        return None if type(v) is str and v in values else f"must be one of {values}, not {_show(v)}"
    return check


def sequence(item: Check, limit: int = MAX_ITEMS, types: tuple = (tuple, list)) -> Check:
    def check(v: Any) -> str | None:
        if type(v) not in types or len(v) > limit:
            return f"must be a {' or '.join(t.__name__ for t in types)} of at most {limit} items, not {_show(v)}"
        for i, x in enumerate(v):
            why = item(x)
            if why is not None:
                return _at(f"[{i}]", why)
        return None
    return check


def mapping(key: Check, value: Check, limit: int = MAX_ITEMS) -> Check:
    def check(v: Any) -> str | None:
        if type(v) is not dict or len(v) > limit:
            return f"must be a dict of at most {limit} items, not {_show(v)}"
        for k, x in v.items():
            why = key(k)
            if why is not None:
                return _at(" key", why)
            why = value(x)
            if why is not None:
                return _at(f"[{k!r:.40}]", why)
        return None
    return check
