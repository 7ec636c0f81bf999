"""The daemon's checks of a TaskEvents batch (validate.py's SPECS use them): its events, its
owner's whole tasks and a worker's runs told whole, a column at a time at C speed, event by
event only to name a bad one (_core/task_events.py says what an event is,
_core/whole_tasks.py the whole tasks' wire form)."""
from __future__ import annotations

import math
import operator
from itertools import compress
from typing import Any

from .._core import task_events as tev
from .._core import whole_tasks as whole
from .checks import ID, MAX_INT, MAX_ITEMS, MAX_TEXT, _at, _show, address

MAX_EVENTS = 2**20       # events in one TaskEvents batch


def _event_info(state: str, info: Any) -> bool:
    t = type(info)
    if state in (tev.PENDING_ARGS, tev.PENDING_NODE, tev.PENDING_ACTOR):
        return info is None or (t is tuple and len(info) == 4 and type(info[0]) is bytes
                                and len(info[0]) <= ID and type(info[1]) is str
                                and len(info[1]) <= MAX_TEXT
                                and (info[2] is None or type(info[2]) is bytes and len(info[2]) == ID)
                                and (info[3] is None or type(info[3]) is bytes and len(info[3]) == ID))
    if state == tev.RUNNING or state == tev.RAN or state == tev.FINISHED:
        return t is tuple and len(info) == (2 if state == tev.RUNNING else 3) \
            and type(info[0]) is bytes and len(info[0]) <= ID \
            and type(info[1]) is str and len(info[1]) <= MAX_TEXT \
            and (state == tev.RUNNING or type(info[2]) is float and math.isfinite(info[2]))
    if state == tev.FAILED:
        return t is tuple and len(info) == 2 and all(type(x) is str and len(x) <= MAX_TEXT
                                                     for x in info)
    if state == tev.DONE or state == tev.RUN:
        return t is tuple and len(info) == 2 and type(info[0]) is float \
            and math.isfinite(info[0]) and _who_ok(info[1])
    return info is None


def _who_ok(who: Any) -> bool:
    """Who ran a task, as its worker says: (node id hex, worker id hex, pid, address), or
    None (not known)."""
    return who is None or type(who) is tuple and len(who) == 4 and type(who[0]) is str \
        and len(who[0]) == 2 * ID and type(who[1]) is str and len(who[1]) == 2 * ID \
        and type(who[2]) is int and 0 < who[2] <= MAX_INT \
        and type(who[3]) is str and len(who[3]) <= MAX_TEXT


def task_events(v: Any) -> str | None:
    """A batch of task events: (task id, attempt, state, time, info) each, info as the state
    wants (_core/task_events.py). A good batch passes the column checks of _batch_ok; any
    other is looked at an event at a time, which names the first bad one."""
    if type(v) is not tuple or len(v) > MAX_EVENTS:
        return f"must be a tuple of at most {MAX_EVENTS} events, not {_show(v)}"
    if _batch_ok(v):
        return None
    states, isfinite = _STATES, math.isfinite
    seen = set()   # ids of info tuples checked already: an owner shares one per function
    for i, e in enumerate(v):
        if not (type(e) is tuple and len(e) == 5 and type(e[0]) is bytes and len(e[0]) == ID
                and type(e[1]) is int and 0 <= e[1] <= MAX_INT and type(e[2]) is str
                and e[2] in states and type(e[3]) is float and isfinite(e[3])
                and (id(e[4]) in seen or _event_info(e[2], e[4]))):
            return f"[{i}] must be a task event (id, attempt, state, time, info), not {_show(e)}"
        if type(e[4]) is tuple and e[2] in _SHARED:
            seen.add(id(e[4]))
    return None


_STATES = frozenset(tev.STATES)
_SHARED = frozenset((tev.PENDING_ARGS, tev.PENDING_NODE, tev.PENDING_ACTOR))  # same info shape
_TUPLE, _BYTES, _INT, _STR, _FLOAT, _TWO, _FIVE, _THREE, _ID = \
    {tuple}, {bytes}, {int}, {str}, {float}, {2}, {5}, {3}, {ID}


def _finite(floats: tuple) -> bool:
    return set(map(type, floats)) == _FLOAT and math.isfinite(math.fsum(floats))


def _ends_ok(infos: tuple) -> bool:
    """The infos of FINISHED and RAN events, (job id, name, start) each, as columns."""
    if set(map(type, infos)) != _TUPLE or set(map(len, infos)) != _THREE:
        return False
    jobs, names, starts = zip(*infos)
    return set(map(type, jobs)) == _BYTES and max(map(len, jobs)) <= ID \
        and set(map(type, names)) == _STR and max(map(len, names)) <= MAX_TEXT \
        and _finite(starts)


def _unique_ok(check: Any, values: Any) -> bool:
    """check() of each distinct object of `values` (an owner shares one per function, or
    per worker)."""
    if values and whole.one_object(values):  # one object n times: checked once
        return check(values[0])
    return all(map(check, dict(zip(map(id, values), values)).values()))


def _dones_ok(infos: tuple) -> bool:
    """The infos of DONE and RUN events, (start, who), as columns."""
    if set(map(type, infos)) != _TUPLE or set(map(len, infos)) != _TWO:
        return False
    starts, whos = zip(*infos)
    return _finite(starts) and _unique_ok(_who_ok, whos)


def _opening_ok(info: Any) -> bool:
    return _event_info(tev.PENDING_NODE, info)


_COLUMNS = {tev.FINISHED: _ends_ok, tev.RAN: _ends_ok, tev.DONE: _dones_ok, tev.RUN: _dones_ok}
# ... the kinds whose infos are one per event: checked as columns


def whole_tasks(v: Any) -> str | None:
    """An owner's whole tasks, in the wire form of _core/whole_tasks.py: its shape and times
    checked there, the values of its tuple columns here (a kind or who shared by many
    tasks, once)."""
    if v == ():
        return None
    try:
        if whole.shaped(v, MAX_EVENTS) and set(map(type, v[1])) == _INT and min(v[1]) >= 0 \
                and max(v[1]) <= MAX_INT and set(v[2]) <= _SHARED \
                and _unique_ok(_kind_ok, v[4]) and _unique_ok(_who_ok, v[7]):
            return None
    except (TypeError, ValueError, OverflowError):  # unhashable states, ...
        pass
    return f"must be whole tasks (ids, attempts, states, opening times, kinds, ends, starts, " \
           f"who, as _core/whole_tasks.py packs them), not {_show(v)}"


def runs(v: Any) -> str | None:
    """A worker's runs whole, by owner: ((owner address, whole tasks), ...)."""
    if type(v) is not tuple or len(v) > MAX_ITEMS:
        return f"must be a tuple of (owner address, whole tasks) pairs, not {_show(v)}"
    for i, pair in enumerate(v):
        if type(pair) is not tuple or len(pair) != 2:
            return f"[{i}] must be an (owner address, whole tasks) pair, not {_show(pair)}"
        why = address(pair[0]) or (whole_tasks(pair[1]) if pair[1] != () else "must not be empty")
        if why is not None:
            return _at(f"[{i}]", why)
    return None


def _kind_ok(kind: Any) -> bool:
    """What a whole task is: (job id, name, actor id, class name, parent task id)."""
    return type(kind) is tuple and len(kind) == 5 and type(kind[0]) is bytes \
        and len(kind[0]) <= ID and type(kind[1]) is str and len(kind[1]) <= MAX_TEXT \
        and (kind[2] is None or type(kind[2]) is bytes and len(kind[2]) == ID) \
        and type(kind[3]) is str and len(kind[3]) <= MAX_TEXT \
        and (kind[4] is None or type(kind[4]) is bytes and len(kind[4]) == ID)


def _batch_ok(v: tuple) -> bool:
    """True when every event of a non-empty batch is certainly good, checked a column at a
    time (a set of types or lengths per column, at C speed: a batch of thousands costs a
    tenth of the event-at-a-time check); False means "look closer", never "bad". The
    info tuples of an owner's events (one per function) are checked once each; a worker's
    (job id, name, start) of FINISHED and RAN events, as columns too."""
    try:
        if set(map(type, v)) != _TUPLE or set(map(len, v)) != _FIVE:
            return False
        ids, attempts, states, times, infos = zip(*v)
        kinds = set(states)
        if set(map(type, ids)) != _BYTES or set(map(len, ids)) != _ID \
                or set(map(type, attempts)) != _INT or min(attempts) < 0 \
                or max(attempts) > MAX_INT or set(map(type, states)) != _STR \
                or not kinds <= _STATES or not _finite(times):
            return False
        if kinds <= _SHARED:  # an owner's: its infos are one tuple per function
            return _unique_ok(_opening_ok, infos)
        if len(kinds) == 1 and states[0] in _COLUMNS:
            return _COLUMNS[states[0]](infos)
        columns = kinds.intersection(_COLUMNS)
        for kind in columns:
            if not _COLUMNS[kind](tuple(compress(infos, map(kind.__eq__, states)))):
                return False
        if len(columns) == len(kinds):
            return True
        rest = compress(zip(states, infos),
                        map(operator.not_, map(_COLUMNS.__contains__, states)))
        unique = {(s, id(i)): (s, i) for s, i in rest}
        return all(_event_info(s, i) for s, i in unique.values())
    except (TypeError, ValueError, OverflowError):  # an unhashable state, an empty batch...
        return False
