"""Where a lease request runs: here, or another node (spillback). Pure: no I/O, no clock.

    GCS ──ClusterView(every live node: id, address, total, available, labels)──► update()
    NodeScheduler.request_lease ──► choose(demand, strategy, spilled, here_free) ──► HERE
                                                                                │  Peer
                                                                                └► Refusal

The view of the other nodes is what the GCS last broadcast (each node reports what
is free on it when that changes, at a bounded rate: server.py). It is stale by a
report or two, so a request sent to a peer takes what it needs from that peer's
view at once (optimistic, as Ray does), and the next broadcast puts the truth back.
A spilled request (`spilled`) is never spilled again: the node it reached grants it
or queues it.

The strategies (the wire forms of Ray's scheduling_strategy, `strategy`):

    ()                       default: here when it fits what is free here now; else the
                             peer with the most free CPU (share of its total) that fits what is
                             free there; else here when this node could ever run it (it
                             queues); else the first peer whose totals fit (it queues there);
                             else here (the shell warns: nothing can run it)
    ("SPREAD",)              round robin over every node (this one included) whose totals fit
    ("NODE", id hex, soft)   that node while it is alive and could ever run it (there it
                             waits for what it needs, as Ray's); else hard (soft False) refuses
                             the request (TaskUnschedulableError) and soft falls back to
                             the default.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from .._resources import fits

HERE = None


class Peer:
    __slots__ = ("node_id", "address", "total", "available", "labels")

    def __init__(self, node_id: str, address: str, total: dict, available: dict, labels: dict):
        self.node_id, self.address, self.labels = node_id, address, labels
        self.total, self.available = dict(total), dict(available)


class Refusal(NamedTuple):
    why: str


def strategy_text(strategy: tuple) -> str:
    if not strategy:
        return "DEFAULT"
    if strategy[0] == "NODE":
        return f"NodeAffinitySchedulingStrategy(node_id={strategy[1]!r}, soft={strategy[2]})"
    return strategy[0]


class ClusterView:
    """The other live nodes as the GCS last said, and the round-robin position of SPREAD."""

    def __init__(self, node_id: str):
        self.node_id = node_id      # this node's id (hex): never a peer
        self.peers: dict[str, Peer] = {}
        self._spread = 0

    def update(self, nodes: tuple) -> None:
        """The GCS's broadcast: (node id hex, address, total, available, labels) per node."""
        self.peers = {n[0]: Peer(*n) for n in nodes if n[0] != self.node_id}

    def feasible_anywhere(self, demand: dict, total: dict) -> bool:
        return fits(demand, total) or any(fits(demand, p.total) for p in self.peers.values())

    def choose(self, demand: dict, strategy: tuple, spilled: bool, total: dict,
               available: dict) -> Any:
        """HERE, a Peer to send the request to, or a Refusal. `total` and `available` are
        this node's."""
        if spilled:
            return HERE
        kind = strategy[0] if strategy else "DEFAULT"
        if kind == "NODE":
            node, soft = strategy[1], strategy[2]
            peer = self.peers.get(node)
            node_total = total if node == self.node_id else peer.total if peer else None
            if node_total is not None and fits(demand, node_total):
                return HERE if node == self.node_id else self.take(peer, demand)
            if not soft:
                why = (f"no live node has the id {node!r} (it may have died)"
                       if node_total is None else f"that node has only {node_total}")
                return Refusal(f"its scheduling strategy is {strategy_text(strategy)}, and {why}; "
                               "pass soft=True to run it elsewhere then")
        elif kind == "SPREAD":
            ids = sorted([p.node_id for p in self.peers.values() if fits(demand, p.total)]
                         + ([self.node_id] if fits(demand, total) else []))
            if ids:
                pick = ids[self._spread % len(ids)]
                self._spread += 1
                return HERE if pick == self.node_id else self.take(self.peers[pick], demand)
        return self._default(demand, total, available)

    def _default(self, demand: dict, total: dict, available: dict) -> Any:
        if fits(demand, available):
            return HERE
        peer = self.free_peer(demand)
        if peer is not None:
            return self.take(peer, demand)
        if fits(demand, total):
            return HERE
        for p in sorted(self.peers.values(), key=lambda p: p.node_id):
            if fits(demand, p.total):
                return self.take(p, demand)
        return HERE

    def free_peer(self, demand: dict) -> Peer | None:
        """The peer with the largest free share of its CPUs whose free resources fit."""
        best, best_share = None, -1.0
        for p in self.peers.values():
            if fits(demand, p.available):
                share = p.available.get("CPU", 0.0) / (p.total.get("CPU", 0.0) or 1.0)
                if share > best_share or (share == best_share and p.node_id < best.node_id):
                    best, best_share = p, share
        return best

    def take(self, peer: Peer, demand: dict) -> Peer:
        for k, v in demand.items():
            peer.available[k] = peer.available.get(k, 0.0) - v
        return peer
