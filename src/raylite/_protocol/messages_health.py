"""Node health messages of the one vocabulary (messages.py re-exports them).

    joined node ──NodeHeartbeat──► GCS   (when it sent nothing else for heartbeat_s;
                                          NodeRegistered.heartbeat_s says how often)
    GCS ──NodeDied(node, address, why, actors)──► every live node ──► each of its drivers
          and workers
          (a node the GCS marked dead: silent past the timeout, or its link closed)
"""

from typing import NamedTuple


class NodeHeartbeat(NamedTuple):
    """Node -> GCS: still here (sent only when nothing else went to the GCS for a while)."""


class NodeDied(NamedTuple):
    """GCS -> nodes -> their clients: the node `node_id` whose daemon listened at `address`
    is dead; what ran there is lost (tasks are retried, actors restarted, elsewhere)."""
    node_id: bytes
    address: str
    why: str
    actors: tuple = ()         # where callers reached the actors that lived there
