"""The state API's filters, one rule for every place that applies them (pure).

A filter is (key, predicate, value) with predicate "=" or "!="; every filter must hold.
Values compare as Ray's do: a string value matches a string field case-insensitively, and a
field of another type (bool, int, float, None) by its text ("true", "3", "none"), so
`--filter is_alive=True` and `filters=[("pid", "=", 1234)]` both work.

The state API (raylite.util.state.common) filters rows (dicts); the task-event table
(task_events.py) filters its records where they live, before any limit. The table also takes
"~" (the field's text contains the value's, case-insensitively): raylite's own, for the
dashboard's search boxes; the state API offers Ray's two predicates only.
"""
from __future__ import annotations

from typing import Any, Callable

PREDICATES = ("=", "!=")
CONTAINS = "~"


def _text(v: Any) -> str:
    return str(v).casefold()


def same(have: Any, want: Any) -> bool:
    """Whether a field's value `have` matches a filter's `want`."""
    if isinstance(want, str) or isinstance(have, str) or type(have) is not type(want):
        return _text(have) == _text(want)
    return have == want


def compile_filters(filters: Any) -> tuple:
    """The filters with each wanted value's text computed once (for matching many rows)."""
    return tuple((key, pred == "=" or (CONTAINS if pred == CONTAINS else False), want,
                  _text(want)) for key, pred, want in filters)


def match_compiled(row: Any, compiled: tuple, get: Callable[[Any, str], Any] = getattr) -> bool:
    """matches(), for filters from compile_filters() (the same rule, as a tight loop)."""
    for key, eq, want, text in compiled:
        have = get(row, key)
        if eq is CONTAINS:
            if text not in ("" if have is None else _text(have)):
                return False
            continue
        if isinstance(want, str) or isinstance(have, str) or type(have) is not type(want):
            ok = (have.casefold() if type(have) is str else _text(have)) == text
        else:
            ok = have == want
        if ok != eq:
            return False
    return True


def matches(row: Any, filters: Any, get: Callable[[Any, str], Any] = dict.get) -> bool:
    """Whether every filter holds for `row` (`get(row, key)` reads a field: dict.get for a
    dict, getattr for a record)."""
    for key, pred, want in filters:
        if same(get(row, key), want) != (pred == "="):
            return False
    return True
