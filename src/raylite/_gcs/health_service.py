"""The GCS service's health check (mixed into GcsService): the I/O around the pure
Health table (health.py).

    RegisterNode (a joined node) ─► health.joined; the reply says how often to heartbeat;
                                    the health thread starts with the first such node (when
                                    the service reads its links itself: serve or adopt)
    any message from a node (_locked) ─► health.heard       NodeHeartbeat ─► nothing more
    health thread, every health.period_s ─► check_health(now) ─► health.expired(now) ─►
    for each silent node:
        _node_lost(why="died: nothing heard from it for Ns ...") under the lock, as when
        its link closes (actors restart elsewhere, NodeDied to every other node), then its
        link is closed: a node that wakes up again finds it gone and stops

A node found dead either way (_node_gone): listed with Alive False from then on; every
other node hears NodeDied(node, address, why, its actors' addresses); its drivers' jobs
end, its actors restart elsewhere or die (naming the node), its placement groups move.

One thread, waking once per period (at most once a second), holding the lock only to
read the table: an idle head does no more than that.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

from .._core.actor_attempts import NODE_DIED
from .._protocol import messages as m
from .health import Health

log = logging.getLogger("raylite.gcs")
LEFT = "left the cluster"  # its link closed (the health check says "died: ..." instead)


class HealthHandlers:
    _lock: Any
    _by_id: dict
    stopped: bool
    tables: Any
    _locked: Any
    _queue: Any
    _kill: Any
    _died: Any
    _groups_do: Any
    _alive_nodes: Any
    _broadcast_view: Any

    def _init_health(self, timeout_s: float, clock: Any = None) -> None:
        self.health = Health(timeout_s)       # joined nodes: when last heard from
        self.clock = clock or time.monotonic  # tests hand in a clock of their own
        self._health_thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._serving = False  # reads its nodes' links itself (serve/adopt): a thread checks

    def _serve_health(self) -> None:
        self._serving = True

    def _watch(self, node_id: bytes) -> float:
        """Watches a joined node from now on (lock held); returns its heartbeat period."""
        self.health.joined(node_id, self.clock())
        if self._health_thread is None and self._serving and not self.stopped:
            self._health_thread = threading.Thread(target=self._health_loop, daemon=True,
                                                   name="raylite-gcs-health")
            self._health_thread.start()
        return self.health.heartbeat_s

    def _health_loop(self) -> None:
        while not self._halt.wait(self.health.period_s):
            self.check_health(self.clock())

    def check_health(self, now: float) -> None:
        """Marks dead the nodes silent past the timeout at `now` (the health thread's tick;
        tests call it with a clock of their own) and closes their links."""
        with self._lock:
            gone = [(self._by_id[n].conn, silent)
                    for n, silent in self.health.expired(now) if n in self._by_id]
        for conn, silent in gone:
            why = (f"died: nothing heard from it for {silent:.1f}s (it is frozen, its "
                   "machine is down, or the network to it is cut)")
            self._locked(functools.partial(type(self)._node_lost, why=why), conn, None)
            conn.close()

    def _node_gone(self, node_id: bytes, why: str) -> None:
        """A registered node is dead (lock held; _node_lost has forgotten its link): it stays
        listed, not alive; the others hear NodeDied; what ran there ends or moves."""
        self.health.left(node_id)
        address = self.tables.nodes[node_id].address
        (log.info if why == LEFT else log.warning)("node %s at %s %s", node_id.hex(), address, why)
        self.tables.remove_node(node_id)
        self._broadcast_view()
        died = m.NodeDied(node_id, address, why, tuple(a.address for a in map(
            self.tables.actors.get, self.tables.actors_on_node(node_id)) if a.address))
        for n in self._by_id.values():  # they tell their drivers and workers
            self._queue(n.conn, died)
        for job_id in self.tables.jobs_on_node(node_id):
            for actor_id in self.tables.finish_job(job_id):
                self._kill(actor_id, True, f"its driver's node ({address}) {why}")
        for actor_id in self.tables.actors_on_node(node_id):
            self._died(actor_id, f"its node {node_id.hex()} ({address}) {why}", NODE_DIED)
        groups = self.tables.groups
        for job_id in self.tables.jobs_on_node(node_id):
            self._groups_do(groups.job_finished(job_id, self._alive_nodes()))
        self._groups_do(groups.node_lost(node_id, self._alive_nodes()))

    def _on_node_heartbeat(self, node: Any, msg: Any) -> None:
        pass  # heard: _locked noted it, as it does for every message from a node
