"""Placement groups on Ray (RAYLITE_RUNTIME=ray): raylite.util.placement_group over Ray's.

    placement_group(bundles, ...) ─► create_placement_group ─► ray.util.placement_group(...)
                                     returns Ray's group id: the raylite group has Ray's id, so
                                     any process (a Ray worker too) names the same group
    PlacementGroupSchedulingStrategy(pg, i, capture) ─► Ray's strategy of that group (_options_for)
    pg.ready()                       ─► raylite's reservation task, run in the group on Ray
    placement_group_table, get_placement_group ─► ray.util.placement_group_table(), as records
    remove_placement_group           ─► ray.util.remove_placement_group

In a Ray worker, the task or actor's group (Ray's get_current_placement_group()) becomes
raylite's scope (`group_scope`), so get_current_placement_group(),
get_runtime_context().get_placement_group_id() and child-task capture read it as on
raylite's own runtimes.
"""
from __future__ import annotations

from typing import Any

from . import context


def group_scope() -> "context.TaskScope | None":
    """A scope naming the Ray placement group this Ray worker's task or actor runs in (None
    outside any)."""
    import ray

    pg = ray.util.get_current_placement_group()
    if pg is None:
        return None
    capture = ray.get_runtime_context().should_capture_child_tasks_in_placement_group
    return context.TaskScope(placement=(pg.id.binary(), -1, bool(capture)))


def ray_group_strategy(placement: tuple) -> Any:
    """Ray's PlacementGroupSchedulingStrategy for raylite's (group id, bundle index, capture)."""
    from ray.util.placement_group import PlacementGroup
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    from ray._raylet import PlacementGroupID

    group, index, capture = placement
    return PlacementGroupSchedulingStrategy(PlacementGroup(PlacementGroupID(group)), index,
                                            capture)


class RayGroups:
    """RayRuntime's placement-group calls (the runtime has `_ray`, `_namespace`, `_in_worker`
    and `_groups_made`)."""

    _groups_made: list

    def create_placement_group(self, group_id: bytes, bundles: list, strategy: str, name: str,
                               detached: bool) -> bytes:
        """Ray's group for raylite's request; returns Ray's id (the group's id from now on)."""
        from .ray_errors import translate

        if name and self.placement_groups(None, name):
            raise ValueError(f"A placement group named {name!r} exists already in this "
                             "namespace: remove it first, or pick another name.")
        try:
            pg = self._ray.util.placement_group(bundles, strategy=strategy, name=name,
                                                lifetime="detached" if detached else None)
        except Exception as e:
            raise translate(e)
        if not detached and not self._in_worker:
            self._groups_made.append(pg)
        return pg.id.binary()

    def _remove_groups_made(self) -> None:
        """At shutdown of a runtime that joined a Ray it did not start: the groups it made
        that are not detached are removed, as the end of a Ray job would."""
        made, self._groups_made = self._groups_made, []
        for pg in made:
            try:
                self._ray.util.remove_placement_group(pg)
            except Exception:  # removed already
                pass

    def remove_placement_group(self, group_id: bytes) -> None:
        from ray.util.placement_group import PlacementGroup
        from ray._raylet import PlacementGroupID
        from .ray_errors import translated

        if any(r.state != "REMOVED" for r in self.placement_groups(group_id, None)):
            translated(self._ray.util.remove_placement_group)(
                PlacementGroup(PlacementGroupID(group_id)))

    def placement_groups(self, group_id: bytes | None, name: str | None) -> tuple:
        from .._core.records import PlacementGroupRecord
        from .ray_errors import translated

        table = translated(self._ray.util.placement_group_table)()
        out = []
        for hex_id, g in table.items():
            if group_id is not None and hex_id != group_id.hex():
                continue
            if name is not None and (g.get("name") != name or g.get("state") == "REMOVED"):
                continue
            bundles = g.get("bundles") or {}
            nodes = [n for _, n in sorted((g.get("bundles_to_node_id") or {}).items())]
            out.append(PlacementGroupRecord(
                hex_id, g.get("name") or "", self._namespace or "", g.get("state", ""),
                g.get("strategy", ""), tuple(dict(bundles[i]) for i in sorted(bundles)),
                tuple(nodes) if all(nodes) else (), bool(g.get("is_detached")),
                g.get("job_id") or ""))
        return tuple(out)
