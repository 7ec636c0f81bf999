"""Placement groups (Ray's ray.util.placement_group): reserve bundles of resources,
atomically (all bundles or none), then run tasks and actors in them.

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")   returns at once
    pg.ready() ─► an ObjectRef resolved (to pg) once every bundle is reserved
    pg.wait(timeout_seconds) ─► True once reserved, False when the timeout passes first
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    remove_placement_group(pg) ─► its bundles freed, what ran in them ended

The runtime does the work (`create_placement_group`, `remove_placement_group`,
`placement_groups`, `placement_group_ready` of _runtime/base.py): on a cluster the GCS
places the bundles on nodes and each node's scheduler reserves them (_gcs/groups.py,
_node/scheduler.py); in local mode the process's own resources are reserved
(_runtime/local_groups.py). A group that cannot be placed stays PENDING with a warning
printed once in the driver; ready() then never resolves and wait() returns False.
"""
from __future__ import annotations

import numbers
import sys
import types
from typing import Any

from .._ids import PlacementGroupID, random_id
from .scheduling_strategies import PlacementGroupSchedulingStrategy

VALID_PLACEMENT_GROUP_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
STATES = {"PENDING": "PENDING", "CREATED": "CREATED", "REMOVED": "REMOVED"}

_check_task: Any = None


def _runtime() -> Any:
    from .._api import require

    return require()


def _reservation_check() -> Any:
    """A task needing nothing but a mark of the group (Ray's bundle_reservation_check): it
    runs once the group's bundles are reserved on its node."""
    global _check_task
    if _check_task is None:
        from ..remote_function import RemoteFunction

        def bundle_reservation_check(placement_group: Any) -> Any:
            return placement_group

        _check_task = RemoteFunction(bundle_reservation_check, {"num_cpus": 0, "max_retries": 0})
    return _check_task


class PlacementGroup:
    """A handle to a placement group: its id, its bundles, ready() and wait()."""

    _is_placement_group = True   # what PlacementGroupSchedulingStrategy checks

    def __init__(self, id: PlacementGroupID, bundle_cache: list | None = None):
        self.id = id
        self.bundle_cache = bundle_cache
        self._ready: tuple | None = None   # (runtime, the ready() ref) for this runtime

    @staticmethod
    def empty() -> "PlacementGroup":
        return PlacementGroup(PlacementGroupID.nil())

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict]:
        """The bundles, as given to placement_group()."""
        if self.bundle_cache is None:
            records = _runtime().placement_groups(self.id.binary(), None)
            if not records:
                raise ValueError(f"No placement group has the id {self.id.hex()}.")
            self.bundle_cache = [dict(b) for b in records[0].bundles]
        return [dict(b) for b in self.bundle_cache]

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def _known_count(self) -> int | None:
        return len(self.bundle_cache) if self.bundle_cache is not None else None

    def ready(self) -> Any:
        """An ObjectRef that resolves (to this PlacementGroup) once every bundle is reserved."""
        rt = _runtime()
        if self._ready is not None and self._ready[0] is rt:
            return self._ready[1]
        ref = rt.placement_group_ready(self.id.binary(), self)
        if ref is None:  # the runtime runs a task in the group: it starts once it is reserved
            ref = _reservation_check().options(
                scheduling_strategy=PlacementGroupSchedulingStrategy(self)).remote(self)
        self._ready = (rt, ref)
        return ref

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """True once every bundle is reserved; False when `timeout_seconds` pass first."""
        from .. import _api

        ready, _ = _api.wait([self.ready()], timeout=timeout_seconds)
        return bool(ready)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __reduce__(self):
        return (PlacementGroup, (self.id, self.bundle_cache))

    def __repr__(self) -> str:
        return f"PlacementGroup({self.id.hex()})"


def _check_bundles(bundles: Any) -> list[dict]:
    if not isinstance(bundles, (list, tuple)) or not bundles:
        raise ValueError("placement_group() needs `bundles`, a non-empty list of dicts such as "
                         f"[{{'CPU': 1}}, {{'CPU': 1, 'GPU': 1}}]; got {bundles!r}.")
    out = []
    for i, b in enumerate(bundles):
        if not isinstance(b, dict):
            raise ValueError(f"Bundle {i} must be a dict of resource name -> amount, got {b!r}.")
        for k, v in b.items():
            if not isinstance(k, str) or not k:
                raise ValueError(f"Bundle {i}: resource names must be non-empty strings, "
                                 f"got {k!r}.")
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < 0 or v != v:
                raise ValueError(f"Bundle {i}: {k} must be a number >= 0, got {v!r}.")
        clean = {k: float(v) for k, v in b.items() if v}
        if not clean:
            raise ValueError(f"Bundle {i} is empty or only zeros ({b!r}): a bundle must reserve "
                             "something, e.g. {'CPU': 1}.")
        out.append(clean)
    return out


def placement_group(bundles: list, strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None) -> PlacementGroup:
    """Asks for `bundles` (dicts of resources) placed by `strategy` (PACK, SPREAD,
    STRICT_PACK, STRICT_SPREAD); returns at once: ready() or wait() tell when it is
    reserved. `name`: find it with get_placement_group(name) (in this namespace);
    lifetime="detached": it outlives this driver (else it is removed when the job ends)."""
    clean = _check_bundles(bundles)
    if strategy not in VALID_PLACEMENT_GROUP_STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy!r}. Supported strategies "
                         f"are: {', '.join(VALID_PLACEMENT_GROUP_STRATEGIES)}.")
    if not isinstance(name, str):
        raise TypeError(f"The placement group name must be a string, got {name!r}.")
    if lifetime not in (None, "detached"):
        raise ValueError("placement_group() lifetime must be None (ends with the job) or "
                         f"'detached', got {lifetime!r}.")
    group_id = random_id(16)  # the ray runtime answers with Ray's id for the group
    group_id = _runtime().create_placement_group(group_id, clean, strategy, name,
                                                 lifetime == "detached") or group_id
    return PlacementGroup(PlacementGroupID(group_id), clean)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Frees the group's bundles; the tasks and actors running in them are ended."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() needs a PlacementGroup, got {placement_group!r}.")
    _runtime().remove_placement_group(placement_group.id.binary())


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live placement group of that name in this job's namespace (ValueError if none)."""
    if not isinstance(placement_group_name, str) or not placement_group_name:
        raise ValueError(f"get_placement_group() needs a name, got {placement_group_name!r}.")
    records = _runtime().placement_groups(None, placement_group_name)
    if not records:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name} "
                         "(none of that name is alive in this namespace).")
    r = records[0]
    return PlacementGroup(PlacementGroupID.from_hex(r.placement_group_id),
                          [dict(b) for b in r.bundles])


def _table_row(r: Any) -> dict:
    return {"placement_group_id": r.placement_group_id, "name": r.name,
            "bundles": {i: dict(b) for i, b in enumerate(r.bundles)},
            "bundles_to_node_id": {i: n for i, n in enumerate(r.bundle_nodes)},
            "strategy": r.strategy, "state": STATES.get(r.state, r.state),
            "is_detached": r.detached}


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """One group's state (a dict), or every group's, keyed by id (hex)."""
    rt = _runtime()
    if placement_group is not None:
        records = rt.placement_groups(placement_group.id.binary(), None)
        return _table_row(records[0]) if records else {}
    return {r.placement_group_id: _table_row(r) for r in rt.placement_groups(None, None)}


def get_current_placement_group() -> PlacementGroup | None:
    """The placement group the calling task or actor runs in; None in a driver, or outside
    any group."""
    from .._runtime import context

    s = context.current()
    if s is None or s.placement is None:
        return None
    return PlacementGroup(PlacementGroupID(s.placement[0]))


class _Module(types.ModuleType):
    """`raylite.util.placement_group` is the function (as in Ray) and, once something imported
    `raylite.util.placement_group.X`, the package attribute is this module: calling it calls
    the function, so `raylite.util.placement_group([...])` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> PlacementGroup:
        return placement_group(*args, **kwargs)


sys.modules[__name__].__class__ = _Module
