"""Other nodes' deaths, as a driver or worker sees them (mixed into ClusterRuntime).

    GCS ──NodeDied(node, daemon address, why, actor addresses)──► our node daemon ──► here
    _on_node_died: core.node_died(daemon) ─► lease requests asked there go to our daemon;
                   the connections of leases it granted, to its actors' workers and to its
                   daemon ─► booked in _dead_conns (why), then closed
    each closed connection's reader ends ─► _peer_lost (cluster_tasks.py) ─► core.peer_lost(
        conn, why): tasks retried elsewhere within max_retries, else WorkerCrashedError
        naming the node; actor calls with retries left wait for the restart, the others
        fail with ActorUnavailableError (they may or may not have run); the actor itself is
        looked up again (restarted elsewhere, or DEAD with the node named)

A node that died while its processes' connections stay open (frozen by SIGSTOP, its
network cut) is noticed only this way, once the GCS's health check gives up on it; a
node whose processes were killed closes its connections itself, and the same rules apply
as to any worker's death. The rules are the owner core's (tasks.node_died,
actors.conn_lost); this file only maps the node to the connections and closes them.
"""
from __future__ import annotations

from typing import Any

from .._protocol import messages as m


class NodeDeaths:
    _lock: Any
    _core: Any
    _connect_lock: Any
    _peers: dict
    _task_peers: dict

    def _init_node_deaths(self) -> None:
        self._dead_nodes: dict[str, str] = {}   # dead node's daemon address -> how it died
        self._dead_conns: dict[Any, str] = {}   # connection closed by us for that -> how

    def _on_node_died(self, conn: Any, msg: m.NodeDied) -> None:
        died = f"{msg.node_id.hex()} at {msg.address} {msg.why}"
        with self._lock:
            self._dead_nodes[msg.address] = died
            out, conns = self._core.node_died(msg.address)
        with self._connect_lock:
            for address in (msg.address, *msg.actors):
                for peers in (self._task_peers, self._peers):
                    c = peers.get(address)
                    if c is not None:
                        conns.add(c)
        for c in conns:
            self._dead_conns[c] = died
            c.close()  # its reader sees the close: _peer_lost(c) with why
        self._send_all(out)

    def _dead_daemon(self, address: str) -> None:
        """ConnectionError for a daemon of a node known dead (nothing is sent there)."""
        died = self._dead_nodes.get(address)
        if died is not None:
            raise ConnectionError(f"the node {died}")
