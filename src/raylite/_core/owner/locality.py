"""Which node's daemon a task's lease request goes to first: the one holding the most bytes
of its arguments (Ray's locality-aware leasing). Pure: no I/O, no clock.

    TaskTable.enqueue (default strategy only: not SPREAD, node affinity or a placement group)
      ─► arg_holders(task, entries): (size, ((node tag, daemon address), ...)) for each
         argument in shared memory: its value's node, the copies in the owner's directory,
         and the task's own argument blob (a large value passed by value lives here)
      ─► preferred(holders, here) ─► ""            our node: our daemon, as any task
                                   └► an address    that node's daemon is asked first
    that daemon grants the lease when what is free there fits; else it treats the request
    as any other (spills it to a node where it fits now, or queues it), so a busy node
    holding the bytes does not hold the task back (Ray's rule: locality first, but "if the
    locality preferred node is not available, Ray may run the task somewhere else").

Ties go to our own node, then to the smallest node tag (the same choice every time). A
node whose daemon address is not known cannot be asked and counts for nothing.
"""
from __future__ import annotations

from typing import Any, Iterable


def preferred(args: Iterable[tuple[int, tuple]], here: str) -> str:
    """The daemon address of the node holding the most bytes of `args` ((size, ((node tag,
    address), ...)) each), or "" when that is `here` (our node's tag) or nothing is known."""
    on: dict[str, int] = {}
    address: dict[str, str] = {}
    for size, holders in args:
        counted = set()
        for node, at in holders:
            if node in counted or not (at or node == here):
                continue
            counted.add(node)
            on[node] = on.get(node, 0) + size
            if at and node not in address:
                address[node] = at
    if not on:
        return ""
    best = min(on, key=lambda n: (-on[n], n != here, n))
    return "" if best == here else address[best]


def arg_holders(args_blob: Any, inlined: dict, entries: dict) -> list:
    """The (size, holders) of a task's arguments that live in shared memory: `args_blob` (its
    serialized arguments, in shared memory when large), the values in `inlined` ({id: (data,
    error)}) and the copies the owner's directory (`entries`, id -> Obj) knows of."""
    out = []
    if hasattr(args_blob, "node"):
        out.append((args_blob.size, ((args_blob.node, args_blob.at),)))
    for id, (data, _) in inlined.items():
        if not hasattr(data, "node"):
            continue
        holders = ((data.node, data.at),)
        o = entries.get(id)
        if o is not None and o.copies:
            holders += tuple(o.copies.items())
        out.append((data.size, holders))
    return out
