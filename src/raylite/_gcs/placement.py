"""Cluster-level placement: which node's daemon starts an actor, which nodes hold a
placement group's bundles (pure, no I/O).

    GCS service ── pick_node(nodes, demand, prefer, strategy, spread) ──► node id ──PlaceActor──►
                                                    None: no node is alive; the actor waits
                                                    until one registers
                                                    Unplaceable(why): it never can be placed

The GCS knows each node's total resources, not what is free on it right now: the
node's own scheduler (_node/scheduler.py) queues the actor until a worker and its
resources are free there. So the choice is about what fits at all. By strategy
(the wire forms of scheduling_strategy, as a lease request's, _node/spillback.py):

    ()                      the preferred node (the head) when it is alive and its totals
                            fit, else the first alive node, in registration order, whose
                            totals fit; when none fits, the head (or the first alive node):
                            the actor waits there and that daemon warns that nothing can run it
    ("SPREAD",)             round robin (`spread`, the GCS's counter) over the alive nodes
                            whose totals fit (all alive nodes when none fits)
    ("NODE", id hex, soft)  that node while it is alive and its totals fit; else soft falls
                            back to the default and hard is Unplaceable

Objects larger than the inline limit that another node holds are pulled to the reader's
node (_node/transfer.py), so an actor on another node than its caller's receives large
arguments too.
"""
from __future__ import annotations

from typing import Any, Iterable, NamedTuple

from .._resources import add, fits, subtract

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class Unplaceable(NamedTuple):
    why: str


def pick_node(nodes: Iterable[Any], demand: dict, prefer: bytes | None, strategy: tuple = (),
              spread: int = 0) -> "bytes | None | Unplaceable":
    """The node to start an actor needing `demand` on, None when no node is alive, or
    Unplaceable. `nodes` have node_id, alive and resources (GcsTables.nodes' values, in
    registration order)."""
    alive = [n for n in nodes if n.alive]
    if strategy and strategy[0] == "NODE":
        target, soft = strategy[1], strategy[2]
        node = next((n for n in alive if n.node_id.hex() == target), None)
        if node is not None and fits(demand, node.resources):
            return node.node_id
        if not soft:
            why = "no live node has that id" if node is None else \
                f"that node has only {node.resources}"
            return Unplaceable(f"its scheduling strategy is NodeAffinitySchedulingStrategy("
                               f"node_id={target!r}, soft=False), and {why}")
    if not alive:
        return None
    fitting = [n for n in alive if fits(demand, n.resources)]
    if strategy == ("SPREAD",) and fitting:
        return fitting[spread % len(fitting)].node_id
    head = [n for n in alive if n.node_id == prefer]
    for n in head + fitting:
        if fits(demand, n.resources):
            return n.node_id
    return (head or alive)[0].node_id


# -- placement groups ---------------------------------------------------------------------
#   place_bundles(nodes, held, bundles, strategy) ──► [node id per bundle] | None (not now)
#
# What a node can give a group is its totals less what other groups' bundles hold there
# (`held`, the GCS's own bookkeeping); what tasks and actors use right now is the node's
# to know: its scheduler queues the reservation until it is free (_node/scheduler.py).
#   STRICT_PACK    every bundle on one node
#   PACK           one node if one fits them all, else as few as it can: each bundle on the
#                  node already holding most of the group's bundles that fits it
#   STRICT_SPREAD  every bundle on a different node
#   SPREAD         each bundle on the node holding fewest of the group's bundles that fits it
# Nodes are tried in the order given (registration order); bundles biggest first.

def place_bundles(nodes: Iterable[Any], held: dict, bundles: list, strategy: str) -> list | None:
    """One alive node id per bundle of `bundles` (dicts of resources) by `strategy`, or None
    when they do not fit now. `nodes` have node_id, alive and resources (totals); `held`
    maps a node id to what other groups' bundles hold there."""
    free = {}
    for n in nodes:
        if n.alive:
            f = dict(n.resources)
            subtract(f, held.get(n.node_id, {}))
            free[n.node_id] = f
    if not free or not bundles:
        return None
    if strategy in ("PACK", "STRICT_PACK"):
        total: dict = {}
        for b in bundles:
            add(total, b)
        for node_id, f in free.items():
            if fits(total, f):
                return [node_id] * len(bundles)
        if strategy == "STRICT_PACK":
            return None
    order = sorted(range(len(bundles)), key=lambda i: -sum(bundles[i].values()))
    placed: list = [None] * len(bundles)
    count = {node_id: 0 for node_id in free}
    for i in order:
        candidates = [n for n in free if fits(bundles[i], free[n])]
        if strategy == "STRICT_SPREAD":
            candidates = [n for n in candidates if count[n] == 0]
        if not candidates:
            return None
        pick = max if strategy == "PACK" else min
        node_id = pick(candidates, key=lambda n: count[n])  # first of the ties: given order
        placed[i] = node_id
        count[node_id] += 1
        subtract(free[node_id], bundles[i])
    return placed
