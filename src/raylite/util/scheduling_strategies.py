"""Scheduling strategies, as Ray's `ray.util.scheduling_strategies`.

    @remote(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
        ─► options (_options.py) ─► the wire form ("NODE", node_id, soft) on each lease
           request (tasks) or actor spec (actors) ─► the node scheduler (_node/spillback.py)
           or the GCS's placement (_gcs/placement.py)

`scheduling_strategy="SPREAD"` and `"DEFAULT"` are plain strings and need nothing
from here. A node id is the hex string `ray.nodes()` lists as "NodeID" (and
`get_runtime_context().get_node_id()` returns).
"""
from __future__ import annotations

__all__ = ["NodeAffinitySchedulingStrategy"]


class NodeAffinitySchedulingStrategy:
    """Run on the node `node_id` while it is alive and could ever run it (there it waits for
    what it needs). Else soft=False fails (TaskUnschedulableError; an actor is dead with
    ActorUnschedulableError) and soft=True runs wherever the default strategy says."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False):
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def _wire(self) -> tuple:
        if not isinstance(self.node_id, str) or not self.node_id:
            raise ValueError("NodeAffinitySchedulingStrategy needs node_id as the hex string "
                             f"ray.nodes() lists as 'NodeID', got {self.node_id!r}.")
        if not isinstance(self.soft, bool):
            raise ValueError(f"NodeAffinitySchedulingStrategy's soft must be True or False, got "
                             f"{self.soft!r}.")
        if self._spill_on_unavailable or self._fail_on_unavailable:
            raise ValueError("NodeAffinitySchedulingStrategy's _spill_on_unavailable and "
                             "_fail_on_unavailable are not supported by raylite: leave them "
                             "False.")
        return ("NODE", self.node_id.lower(), self.soft)

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"
