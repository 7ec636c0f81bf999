"""Cluster-level actor placement: which node's daemon starts an actor (pure, no I/O).

    GCS service ── pick_node(nodes, demand, prefer) ──► node id ──PlaceActor──► that daemon
                                                      None: no node is alive; the actor
                                                      waits until one registers

The GCS knows each node's total resources, not what is free on it right now: the
node's own scheduler (_node/scheduler.py) queues the actor until a worker and its
resources are free there. So the choice is about what fits at all:

    1. the preferred node (the head) when its totals fit the actor's demand;
    2. else the first alive node, in registration order, whose totals fit it;
    3. else the preferred node if alive (else the first alive one): the actor waits
       there, and that daemon warns its drivers that nothing can run it.

Today this places every actor that fits the head on the head: one node runs the
cluster's actors, as before the GCS was its own service. Spreading by load is a
later issue; it changes this module only.
"""
from __future__ import annotations

from typing import Any, Iterable

from .._resources import fits


def pick_node(nodes: Iterable[Any], demand: dict, prefer: bytes | None) -> bytes | None:
    """The node to start an actor needing `demand` on. `nodes` have node_id, alive and
    resources (GcsTables.nodes' values, in registration order)."""
    alive = [n for n in nodes if n.alive]
    if not alive:
        return None
    preferred = next((n for n in alive if n.node_id == prefer), None)
    if preferred is not None and fits(demand, preferred.resources):
        return preferred.node_id
    for n in alive:
        if fits(demand, n.resources):
            return n.node_id
    return (preferred or alive[0]).node_id
