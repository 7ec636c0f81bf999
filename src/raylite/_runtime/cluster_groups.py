"""Placement groups, the caller's side: requests to the GCS through the node daemon (a
mixin of ClusterRuntime).

    create_placement_group ──CreatePlacementGroup──► daemon ─► GCS (groups.py): PENDING,
        ◄──PlacementGroupCreated(error, warning)──     its bundles prepared on the chosen nodes
    remove_placement_group ──RemovePlacementGroup──► ... ◄──Ack
    placement_groups       ──GetPlacementGroup──► ... ◄──PlacementGroupInfo(records)

ready() has no request of its own: it is a task needing only a mark of the group
(util/placement_group.py), which the node's scheduler grants once the group's bundles
are committed there. Tasks and actors in a group ask for their demand renamed into
the group's resources (_options, _resources.in_group); PushTask and ActorSpec carry
the group (`placement`) so that get_current_placement_group() and capture_child_tasks
work in the worker.
"""
from __future__ import annotations

import sys

from .._protocol import messages as m


class PlacementGroups:
    """Methods of ClusterRuntime for placement groups."""

    def create_placement_group(self, group_id: bytes, bundles: list, strategy: str, name: str,
                               detached: bool) -> None:
        spec = m.PlacementGroupSpec(group_id, tuple(dict(b) for b in bundles), strategy,
                                    name or "", self.namespace, detached, self.job_id)
        reply = self._call(m.CreatePlacementGroup(0, spec))
        if reply.error is not None:
            raise ValueError(reply.error)
        if reply.warning is not None:  # printed once: the GCS tells only the creator, once
            print(f"raylite warning: {reply.warning}", file=sys.stderr, flush=True)

    def remove_placement_group(self, group_id: bytes) -> None:
        reply = self._call(m.RemovePlacementGroup(0, group_id))
        if reply.error is not None:
            raise ValueError(f"Cannot remove the placement group: {reply.error}.")

    def placement_groups(self, group_id: bytes | None, name: str | None) -> tuple:
        reply = self._call(m.GetPlacementGroup(0, group_id, name,
                                               self.namespace if name is not None else None))
        return reply.records
