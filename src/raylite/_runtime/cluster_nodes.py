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

    the owned objects whose every copy was there (core.lineage.lost): another copy takes
    over, or the task that made it runs again (its lost arguments first), or it fails with
    ObjectReconstructionFailedError / ObjectLostError; a get() whose read failed meanwhile
    waits and reads again (_values); a task that failed reading such an argument before we
    heard of the death waits for it (parked), at most _park_s (twice the health check's
    timeout, plus PARK_SLACK_S: core.lineage.expire on the maintenance tick)

A node that died while its processes' connections stay open (frozen by SIGSTOP, its
network cut) is noticed only this way, once the GCS's health check gives up on it; a
node whose processes were killed closes its connections itself, and the same rules apply
as to any worker's death. The rules are the owner core's (tasks.node_died,
actors.conn_lost); this file only maps the node to the connections and closes them.
"""
from __future__ import annotations

from typing import Any

from .. import _config
from .._protocol import messages as m
from ..exceptions import ObjectLostError


PARK_SLACK_S = 5.0


class NodeDeaths:
    _lock: Any
    _core: Any
    _connect_lock: Any
    _peers: dict
    _task_peers: dict
    _objects: Any
    _value: Any
    _send_all: Any
    _lease_granted: Any

    def _init_node_deaths(self) -> None:
        config = _config.from_env()
        self._lineage_bytes = config.max_lineage_bytes  # the owner core's lineage bound
        # a task that could not read an argument waits this long for its node's death
        self._park_s = 2 * config.health_check_timeout_s + PARK_SLACK_S
        self._dead_nodes: dict[str, str] = {}   # dead node's daemon address -> how it died
        self._dead_conns: dict[Any, str] = {}   # connection closed by us for that -> how
        self._dead_tags: set[str] = set()       # their node tags (what object locations name)

    def _on_node_died(self, conn: Any, msg: m.NodeDied) -> None:
        died = f"{msg.node_id.hex()} at {msg.address} {msg.why}"
        with self._lock:
            self._dead_nodes[msg.address] = died
            self._dead_tags.add(msg.node_id.hex()[:12])
            out, conns = self._core.node_died(msg.address)
            lost, _ = self._core.lineage.lost(frozenset(self._dead_tags))  # after node_died:
            out += lost                         # rebuilds never take a lease on the dead node
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

    def _values(self, refs: Any) -> list | None:
        """get()'s values; None when one of them turned out lost with a dead node and is now
        rebuilding, or moved to another copy, or failed precisely, or (borrowed) is to be
        asked of its owner again: get() waits and reads again. A read that failed for any
        other reason raises as it did."""
        values = []
        entries = self._objects.entries
        for r in refs:
            o = entries.get(r._id)
            data = o.data if o is not None else None
            try:
                values.append(self._value(r._id))
            except ObjectLostError:
                if o is not None and not o.owned:
                    with self._lock:  # borrowed: ask its owner again (it rebuilds it)
                        again = self._core.objects.refetch(r._id, self._dead_tags)
                    if not again:
                        raise
                    return None
                if o is None or data is None:
                    raise
                with self._lock:
                    if o.data is not data or not o.ready:  # NodeDied was handled meanwhile
                        return None
                    node = getattr(data, "node", None)
                    if node not in self._dead_tags:
                        raise
                    out, changed = self._core.lineage.lost(frozenset(self._dead_tags), [r._id])
                if not changed:
                    raise
                self._send_all(out)
                return None
        return values

    def _lease_reply(self, msg: m.LeaseGranted) -> None:
        """Our daemon sends a request to another node only while that node is alive: a node
        marked dead here that is named again (a daemon started again at its address) is
        no longer dead to us."""
        if msg.retry_at and self._dead_nodes:
            self._dead_nodes.pop(msg.retry_at, None)
        self._lease_granted(msg)

    def _dead_daemon(self, address: str) -> None:
        """ConnectionError for a daemon of a node known dead (nothing is sent there)."""
        died = self._dead_nodes.get(address)
        if died is not None:
            raise ConnectionError(f"the node {died}")
