"""Whole tasks: tasks whose runs returned before their openings were sent, an owner's or a
worker's runs of tasks pushed with their openings, one batch of columns (pure; the
vocabulary and the store are task_events.py).

    owner (owner/events.py: build) ── pack(columns) ──► TaskEvents.whole ──► daemon ──► GCS
    worker (whole_runs.by_owner) ── pack(columns) ──► TaskEvents.runs, by owner ──► ...
    TaskEventTable.add_whole ──► a WholeBatch, kept as it came: counted in its job at once;
        put in the table's index (`tasks`) when something reads the table or pushes its
        oldest out; each task made a row only when read (WholeBatch.row)

The wire form holds what is per task in a few objects, so a batch of a thousand tasks costs
its owner's pickling, the daemon's decode and checks and the store a few passes at C speed:

    ids                        bytes, ID (16) per task
    attempts, states, kinds,   a tuple each: a value per task, or one value for them all
      who                        (kind: (job id, name, actor id or None, class name, parent
                                 task id or None); who: (node id hex, worker id hex, pid,
                                 address) or None)
    created, ends, starts      bytes, 8 per task: float64 seconds since the epoch, little-endian
"""
from __future__ import annotations

import struct
import sys
from array import array
from itertools import chain, count, repeat
from math import fsum, isfinite
from operator import is_
from typing import Any

ID = 16                         # bytes in a task id
_BIG = sys.byteorder == "big"   # the wire's floats are little-endian


def pack(ids: tuple, attempts: tuple, states: tuple, created: Any, kinds: tuple,
         ends: Any, starts: Any, whos: tuple) -> tuple:
    """The wire form of whole tasks' columns (a value per task each; or one for all, for
    kinds and who; times as tuples or arrays of floats)."""
    return (b"".join(ids), _one(attempts), _one(states), _floats(created), _one(kinds),
            _floats(ends), _floats(starts), _one(whos))


def join(batches: list) -> tuple:
    """Packed batches as one (() for none): a tuple column keeps one value when every batch
    has that one value, else holds one per task."""
    if len(batches) < 2:
        return batches[0] if batches else ()
    sizes = list(map(size, batches))
    cols = list(zip(*batches))
    for c in (1, 2, 4, 7):
        col = cols[c]
        if all(len(v) == 1 for v in col) and col.count(col[0]) == len(col):
            cols[c] = col[0]
        else:
            cols[c] = tuple(chain.from_iterable(v if len(v) == n else v * n
                                                for v, n in zip(col, sizes)))
    for c in (0, 3, 5, 6):
        cols[c] = b"".join(cols[c])
    return tuple(cols)


def kinds(jobs: tuple, names: tuple, actors: tuple, classes: tuple, parents: tuple,
          memo: dict) -> tuple:
    """The kinds column of tasks given a value per task each: one kind when they all share
    it, else one per task; each kind one object (pickled once), kept in `memo` (kind ->
    itself, the caller's; cleared past 4096)."""
    if len(memo) > 4096:
        memo.clear()
    n = len(jobs)
    if all(c.count(c[0]) == n for c in (names, jobs, actors, classes, parents)):
        kind = (jobs[0], names[0], actors[0], classes[0], parents[0])  # one function
        return (memo.setdefault(kind, kind),)
    mine = list(zip(jobs, names, actors, classes, parents))
    return tuple(map(memo.setdefault, mine, mine))


def _one(column: tuple) -> tuple:
    """One value for them all when every value equals the first (the owner's own values:
    equal is as good as one object), else the column."""
    return column[:1] if column.count(column[0]) == len(column) else tuple(column)


def one_object(column: Any) -> bool:
    """True when a non-empty column holds one object throughout (an identity test: fast)."""
    return all(map(is_, column, repeat(column[0])))


def _floats(column: Any) -> bytes:
    """Numbers as the wire's float64 column (struct, one call: a third of array()'s time)."""
    n = len(column)
    s = _STRUCTS.get(n)
    if s is None:
        if len(_STRUCTS) > 64:
            _STRUCTS.clear()
        s = _STRUCTS[n] = struct.Struct(f"<{n}d")
    return s.pack(*column)


_STRUCTS: dict = {}  # n -> the struct of n little-endian float64s


def floats(blob: bytes) -> array:
    """A wire column of floats, read."""
    a = array("d", blob)
    if _BIG:
        a.byteswap()
    return a


def shaped(whole: Any, most: int) -> bool:
    """True when `whole` has the wire form's shape, holds 1 to `most` tasks, and its times
    are finite floats (the values of its tuple columns are the caller's to check)."""
    if type(whole) is not tuple or len(whole) != 8 or type(whole[0]) is not bytes:
        return False
    n, rest = divmod(len(whole[0]), ID)
    if rest or not 0 < n <= most:
        return False
    ids, attempts, states, created, kinds, ends, starts, whos = whole
    return all(type(c) is tuple and len(c) in (1, n) for c in (attempts, states, kinds, whos)) \
        and all(type(c) is bytes and len(c) == 8 * n for c in (created, ends, starts)) \
        and isfinite(fsum(floats(created + ends + starts)))


def size(whole: tuple) -> int:
    """How many tasks a wire batch holds."""
    return len(whole[0]) // ID


class WholeBatch:
    """An owner's batch of whole tasks in the store, as it came. `lo`: its first task the
    store's bound has not pushed out; `keys`: (task id, attempt) of each, made when the
    batch is indexed (`indexed`); its tasks are made rows one at a time, when read
    (TaskEventTable.row)."""
    __slots__ = ("cols", "address", "n", "lo", "keys", "indexed", "where", "_times")

    def __init__(self, cols: tuple, address: str | None):
        self.cols, self.address = cols, address
        self.n = size(cols)
        self.lo = 0
        self.keys: list | None = None
        self.indexed = False
        self.where: dict | None = None  # key -> its place, made when a row is read by key
        self._times: tuple | None = None

    def key_list(self) -> list:
        if self.keys is None:
            ids, attempts, n = self.cols[0], self.cols[1], self.n
            tids = map(ids.__getitem__, map(slice, range(0, ID * n, ID),
                                            range(ID, ID * n + ID, ID)))
            self.keys = list(zip(tids, attempts if len(attempts) == n else repeat(attempts[0])))
        return self.keys

    def at(self, column: int, i: int) -> Any:
        """The i-th task's value of a tuple column."""
        c = self.cols[column]
        return c[i] if len(c) > 1 else c[0]

    def jobs(self) -> set:
        """The job ids of its tasks."""
        return {kind[0] for kind in self.cols[4]}

    def times_all(self) -> tuple:
        """(created, starts, ends): arrays, a float per task."""
        if self._times is None:
            self._times = (floats(self.cols[3]), floats(self.cols[6]), floats(self.cols[5]))
        return self._times

    def times(self, i: int) -> tuple[float, float, float]:
        """(created, start, end) of the i-th task."""
        created, starts, ends = self.times_all()
        return created[i], starts[i], ends[i]

    def place(self, key: tuple) -> int:
        if self.where is None:
            self.where = dict(zip(self.key_list(), count()))
        return self.where[key]

    def forget(self) -> None:
        """Drops what reading its tasks made (each is a row in the store now)."""
        self.where = self._times = None

    def task(self, i: int) -> tuple:
        """The i-th task: (kind, opening state, created, start, end, who)."""
        created, start, end = self.times(i)
        return self.at(4, i), self.at(2, i), created, start, end, self.at(7, i)
