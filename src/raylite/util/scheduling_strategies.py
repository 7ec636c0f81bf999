"""Scheduling strategies (Ray's ray.util.scheduling_strategies): passed as
`scheduling_strategy=` to `.options()` or `@remote`.

    @remote(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
        ─► options (_options.py) ─► the wire form ("NODE", node_id, soft) on each lease
           request (tasks) or actor spec (actors) ─► the node scheduler (_node/spillback.py)
           or the GCS's placement (_gcs/placement.py)
    PlacementGroupSchedulingStrategy(pg, bundle_index=-1, capture_child_tasks=None)
        the task or actor runs in bundle `bundle_index` of `pg` (-1: any bundle), on what
        that bundle reserved (its demand is renamed into the bundle's resources,
        _resources.in_group, which only the nodes holding the bundle have); with
        capture_child_tasks, the tasks and actors it creates without a strategy of their
        own run in the same group.

`scheduling_strategy="SPREAD"` and `"DEFAULT"` are plain strings and need nothing
from here. A node id is the hex string `ray.nodes()` lists as "NodeID" (and
`get_runtime_context().get_node_id()` returns).
"""
from __future__ import annotations

from typing import Any

__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]


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


class PlacementGroupSchedulingStrategy:
    """Run in a placement group's bundle (Ray's class of that name)."""

    __slots__ = ("placement_group", "placement_group_bundle_index",
                 "placement_group_capture_child_tasks")

    def __init__(self, placement_group: Any, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        if not getattr(placement_group, "_is_placement_group", False):  # placement_group.py's
            raise TypeError("placement_group must be a PlacementGroup (from "
                            f"raylite.util.placement_group(...)), got {placement_group!r}.")
        index = placement_group_bundle_index
        if isinstance(index, bool) or not isinstance(index, int) or index < -1:
            raise ValueError("placement_group_bundle_index must be -1 (any bundle) or a bundle's "
                             f"index, got {index!r}.")
        count = placement_group._known_count()
        if count is not None and index >= count:
            raise ValueError(f"placement_group_bundle_index {index} is out of range: the "
                             f"placement group has {count} bundles (0 to {count - 1}, or -1 for "
                             "any).")
        self.placement_group = placement_group
        self.placement_group_bundle_index = index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    @property
    def _placement(self) -> tuple:
        """(group id, bundle index, capture): what _options and the runtimes read."""
        return (self.placement_group.id.binary(), self.placement_group_bundle_index,
                bool(self.placement_group_capture_child_tasks))

    @property
    def _bundles(self) -> list | None:
        """The group's bundles when this process knows them (_options checks a demand fits)."""
        return self.placement_group.bundle_cache

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._placement == other._placement

    def __hash__(self) -> int:
        return hash(self._placement)

    def __reduce__(self):
        return (PlacementGroupSchedulingStrategy,
                (self.placement_group, self.placement_group_bundle_index,
                 self.placement_group_capture_child_tasks))

    def __repr__(self) -> str:
        return (f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
                f"placement_group_bundle_index={self.placement_group_bundle_index}, "
                f"placement_group_capture_child_tasks="
                f"{self.placement_group_capture_child_tasks})")
