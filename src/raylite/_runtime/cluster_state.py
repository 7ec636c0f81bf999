"""The owner's answer to a state request, and what the runtime reads from a snapshot.

    daemon ──GetState──► ClusterRuntime._on_get_state ──► owner_state(rt) ──StateReply──► daemon
    nodes(), cluster_resources(), available_resources() ──► GetState(("nodes",)) ──► below

owner_state() is the owner core's state() (raylite._core.owner), taken under the
runtime's lock: its tasks and objects. Actors are the GCS's to report, not the owner's.
"""
from __future__ import annotations

from typing import Any

from .._core.records import StateSnapshot


def owner_state(rt: Any) -> StateSnapshot:
    """The tasks and objects the process owns or holds (rt: a ClusterRuntime)."""
    with rt._lock:
        return rt._core.state(("tasks", "objects"))


# -- reading a snapshot ------------------------------------------------------------
def ray_nodes(snapshot: StateSnapshot) -> list[dict]:
    """The nodes as ray.nodes() describes them."""
    out = []
    for n in snapshot.nodes:
        host, _, port = (n.address or "").rpartition(":")
        out.append({"NodeID": n.node_id, "Alive": n.alive, "alive": n.alive,
                    "NodeManagerAddress": host.strip("[]"),
                    "NodeManagerPort": int(port) if port.isdigit() else None,
                    "NodeManagerHostname": n.hostname, "Resources": dict(n.resources_total),
                    "Labels": dict(n.labels or {}), "IsHead": bool(n.is_head)})
    return out


def resource_sum(snapshot: StateSnapshot, field: str) -> dict:
    """`field` (resources_total or resources_available) summed over the live nodes."""
    out: dict = {}
    for n in snapshot.nodes:
        if n.alive:
            for k, v in getattr(n, field).items():
                out[k] = out.get(k, 0.0) + v
    return out
