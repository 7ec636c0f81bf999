"""Cluster-level actor placement: which node's daemon starts an actor (pure, no I/O).

    GCS service ── pick_node(nodes, demand, prefer) ──► node id ──PlaceActor──► that daemon
                                                      None: no node is alive; the actor
                                                      waits until one registers

The GCS knows each node's total resources, not what is free on it right now: the
node's own scheduler (_node/scheduler.py) queues the actor until a worker and its
resources are free there. So the choice is about what fits at all:

    candidates: the preferred node (the head) while it is alive, else every alive node
    1. the first candidate, in registration order, whose totals fit the demand;
    2. else the first candidate: the actor waits there, and that daemon warns its
       drivers that nothing can run it.

Today every actor runs on the head while there is one, as `raylite start` promises
(a large object another node holds is pulled to the reader's node: _node/transfer.py).
Spreading actors over nodes is a later issue; it widens the candidates here and
changes nothing else.
"""
from __future__ import annotations

from typing import Any, Iterable

from .._resources import fits


def pick_node(nodes: Iterable[Any], demand: dict, prefer: bytes | None) -> bytes | None:
    """The node to start an actor needing `demand` on, or None when no node is alive.
    `nodes` have node_id, alive and resources (GcsTables.nodes' values, in registration
    order)."""
    alive = [n for n in nodes if n.alive]
    candidates = [n for n in alive if n.node_id == prefer] or alive
    if not candidates:
        return None
    for n in candidates:
        if fits(demand, n.resources):
            return n.node_id
    return candidates[0].node_id
