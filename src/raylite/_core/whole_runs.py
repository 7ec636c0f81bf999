"""A worker's runs that returned, of tasks pushed with their opening (PushTask.opened), as
whole tasks by owner (pure; the wire form is whole_tasks.py's, the store task_events.py's).

    worker (task_executor.py): a run returned, its reply sent ─► (task id, attempt,
        created, parent, start, end, job id, name, owner address) kept; PART of them packed
        at once, by_owner(runs, who), on the worker's thread while it waits for its next
        task ─► its sender, every ~0.5 s or once the worker is idle: joined(those, the rest
        packed) ─► TaskEvents.runs: ((owner address, columns), ...) ─► daemon ─► GCS:
        TaskEventTable.add_whole(columns, owner address)

Why the worker: what its owner would do for such a run (note its times, make the record,
pack it) is on the owner's way from one task's reply to the next task's send, while the
worker does it after its reply has gone, waiting for the next task (docs/performance.md).
The owner still notes the opening (owner/events.py: later_run) and sends it when the task
has not ended by its next batch, or failed, or is retried: those runs, and any run not
pushed with its opening, are the owner's to tell, as before.
"""
from __future__ import annotations

from math import isfinite
from typing import Any

from .task_events import PENDING_NODE
from .whole_tasks import ID, join, kinds, pack

PART = 24  # runs a worker packs at a time after a reply: 10-15 us, less than a caller making
           # calls one at a time takes to send the next (the same as owner/events.py's)


def by_owner(runs: list, who: Any, memo: dict | None = None) -> tuple[tuple, int]:
    """((owner address, whole tasks in the wire form), ...) of `runs`, as the worker kept
    them, ran by `who` (node id hex, worker id hex, pid, address), each kind one object
    (`memo`: whole_tasks.kinds'); and how many were left
    out: a run whose opening is not (a finite time, a parent task id or None), or whose
    times are not finite floats (an owner's or a clock's fault, never the batch's). A few
    passes at C speed over the lot (a run of another shape: one at a time)."""
    if not runs:
        return (), 0
    if memo is None:
        memo = {}
    cols = _good(runs)
    lost = 0
    if cols is None:
        kept = [r for r in runs if type(r) is tuple and len(r) == 9 and _good([r])]
        lost = len(runs) - len(kept)
        if not kept:
            return (), lost
        cols = _good(kept)
    owners = cols[-1]
    if owners.count(owners[0]) == len(owners):
        return ((owners[0], _columns(cols, who, memo)),), lost
    groups: dict = {}
    for i, owner in enumerate(owners):
        groups.setdefault(owner, []).append(i)
    return tuple((owner, _columns(tuple(tuple(map(c.__getitem__, at)) for c in cols), who,
                                  memo)) for owner, at in groups.items()), lost


def _good(runs: list) -> tuple | None:
    """The runs' columns (ids, attempts, created, parents, starts, ends, jobs, names,
    owners) when every run is good, else None."""
    try:
        ids, attempts, created, parents, starts, ends, jobs, names, owners = zip(*runs)
        times = created + starts + ends
        if not (isfinite(sum(times)) and set(map(type, times)) == _FLOAT
                and set(map(type, ids + jobs)) == _BYTES and set(map(len, ids)) == _ID
                and set(map(type, attempts)) == _INT and min(attempts) >= 0
                and set(map(type, names + owners)) == _STR
                and (parents.count(None) == len(parents) or all(map(_parent_ok, parents)))):
            return None
    except (TypeError, ValueError, ArithmeticError):  # a run of another shape, ...
        return None
    return ids, attempts, created, parents, starts, ends, jobs, names, owners


_FLOAT, _BYTES, _INT, _STR, _ID = {float}, {bytes}, {int}, {str}, {ID}


def _parent_ok(parent: Any) -> bool:
    return parent is None or type(parent) is bytes and len(parent) == ID


def _columns(cols: tuple, who: Any, memo: dict) -> tuple:
    ids, attempts, created, parents, starts, ends, jobs, names, _ = cols
    n = len(ids)
    kind = kinds(jobs, names, (None,) * n, ("",) * n, parents, memo)  # no actor, no class
    return pack(ids, attempts, (PENDING_NODE,), created, kind, ends, starts, (who,))


def joined(parts: list) -> tuple[tuple, int]:
    """by_owner's results as one: a batch per owner, and how many were left out in all."""
    if len(parts) == 1:
        return parts[0]
    by: dict = {}
    lost = 0
    for batches, n in parts:
        lost += n
        for owner, cols in batches:
            by.setdefault(owner, []).append(cols)
    return tuple((owner, join(cs)) for owner, cs in by.items()), lost
