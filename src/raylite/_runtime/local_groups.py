"""Placement groups in local mode (a mixin of LocalRuntime; its lock, resources and actors).

    create_placement_group ─► the GCS's own group table (_gcs/groups.py, in LocalRuntime's
        GcsTables) with this process as the one node ─► Prepare: reserved from `_available`
        at once when it fits (else when an actor ends), then committed: the bundles' renamed
        resources join `_total` and `_available`, as on a cluster node (_node/scheduler.py)
    a group that can never fit here stays PENDING; the warning is printed once
    remove_placement_group ─► its actors end (for good), its resources come back

The same rules as a cluster's: the strategy (STRICT_SPREAD needs a node per bundle, so more
than one bundle never fits here), the names per namespace, the renamed resources a task
in a group asks for. What local mode cannot do: a task runs at once on the caller's thread,
so a task or actor sent to a group not reserved yet raises instead of waiting (call
pg.ready() or pg.wait() first).
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Sequence

from .. import _resources as resources
from .._actor_ends import ended_error
from .._gcs import groups as grp
from .._options import placement
from .._protocol.messages import PlacementGroupSpec
from ..exceptions import GetTimeoutError, TaskPlacementGroupRemoved
from .object_ref import ObjectRef


class _Node:
    """This process, as the group table sees a node."""
    __slots__ = ("node_id", "alive", "resources")

    def __init__(self, node_id: bytes, total: dict):
        self.node_id, self.alive, self.resources = node_id, True, total


class LocalGroups:
    _lock: Any
    _gcs: Any
    _hosts: dict
    _total: dict
    _available: dict
    _node_id: bytes
    _namespace: str
    _job_id: bytes
    _core: Any
    _set: Any
    _new_refs: Any
    _mark_dead: Any

    def _init_groups(self) -> None:
        self._node = _Node(self._node_id, {k: v for k, v in self._total.items()})
        self._held: dict[bytes, tuple] = {}       # group -> (what it holds, its renamed resources)
        self._preparing: dict[bytes, dict] = {}   # group -> its bundles, waiting to fit
        self._ready_refs: dict[bytes, list] = {}  # group -> [(ref, value)] of ready()
        # Every other ref is complete once .remote() returns; ready() refs are the only ones
        # a get() or wait() here may wait for (another thread may remove a group, end an actor).
        self._resolved = threading.Condition(self._lock)
        self._awaiting = 0

    def _await_refs(self, refs: Sequence[ObjectRef], n: int, timeout: float | None,
                    must: bool) -> set:
        """ids (id()) of the `refs` complete once `n` are, or `timeout` passed (GetTimeoutError
        then, if `must`)."""
        entries = self._core.objects.entries
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                done = {id(r) for r in refs if (o := entries.get(r._id)) is None or o.ready}
                left = None if deadline is None else deadline - time.monotonic()
                if len(done) >= n or (left is not None and left <= 0):
                    break
                self._awaiting += 1
                try:
                    self._resolved.wait(left)
                finally:
                    self._awaiting -= 1
        if must and len(done) < n:
            raise GetTimeoutError(f"get() timed out after {timeout}s: a placement group's "
                                  "ready() is not resolved (the group is still pending).")
        return done

    def create_placement_group(self, group_id: bytes, bundles: list, strategy: str, name: str,
                               detached: bool) -> None:
        spec = PlacementGroupSpec(group_id, tuple(dict(b) for b in bundles), strategy,
                                  name or "", self._namespace, detached, self._job_id)
        with self._lock:
            error, out = self._gcs.groups.create(spec, [self._node])
        if error is not None:
            raise ValueError(error)
        self._groups_do(out)

    def remove_placement_group(self, group_id: bytes) -> None:
        with self._lock:
            if group_id not in self._gcs.groups.groups:
                raise ValueError(f"Cannot remove the placement group: no placement group has "
                                 f"the id {group_id.hex()}.")
            out = self._gcs.groups.remove(group_id, [self._node])
        self._groups_do(out)

    def placement_groups(self, group_id: bytes | None, name: str | None) -> tuple:
        with self._lock:
            groups = self._gcs.groups
            if group_id is None and name is None:
                return groups.state()
            entry = groups.lookup(group_id, name, self._namespace)
            return tuple(r for r in groups.state() if entry is not None
                         and r.placement_group_id == entry.spec.group_id.hex())

    def placement_group_ready(self, group_id: bytes, value: Any) -> ObjectRef:
        ref = self._new_refs(1)[0]
        with self._lock:
            entry = self._gcs.groups.groups.get(group_id)
            state = entry.state if entry is not None else "REMOVED"
            if state == "PENDING":
                self._ready_refs.setdefault(group_id, []).append((ref, value))
        if state == "CREATED":
            self._set(ref, value)
        elif state == "REMOVED":
            self._set(ref, error=_removed(group_id))
        return ref

    def _check_group(self, strategy: Any, what: str, name: str, unschedulable: type) -> None:
        """A task or actor in a group runs now: its group must be reserved already."""
        p = placement(strategy)
        if p is None:
            return
        entry = self._gcs.groups.groups.get(p[0])
        if entry is None or entry.state == "REMOVED":
            raise _removed(p[0], f"{what} {name}")
        if entry.state != "CREATED":
            raise unschedulable(f"{what} {name} is to run in placement group {p[0].hex()}, "
                                "which is not reserved yet (PENDING). In local mode it would run "
                                "at once: wait for pg.ready() (or pg.wait()) first.")
        if p[1] >= len(entry.spec.bundles):
            raise ValueError(f"{what} {name}: placement_group_bundle_index {p[1]} is out of "
                             f"range: the group has {len(entry.spec.bundles)} bundles.")

    # -- carrying out the group table's instructions ------------------------------------
    def _groups_do(self, out: list) -> None:
        for x in out:
            t = type(x)
            if t is grp.Prepare:
                with self._lock:
                    self._preparing[x.group] = x.bundles
                self._groups_retry()
            elif t is grp.Commit:
                self._commit(x.group)
            elif t is grp.Return:
                self._return(x.group)
            elif t is grp.Created:
                with self._lock:
                    ready = self._ready_refs.pop(x.group, [])
                for ref, value in ready:
                    self._set(ref, value)
            elif t is grp.Warn:
                print(f"raylite warning: {x.text}", file=sys.stderr, flush=True)

    def _groups_retry(self) -> None:
        """Reserves the groups waiting for resources that fit now, oldest first."""
        out: list = []
        with self._lock:
            for group, bundles in list(self._preparing.items()):
                held: dict = {}
                for b in bundles.values():
                    resources.add(held, b)
                if resources.fits(held, self._available):
                    del self._preparing[group]
                    resources.subtract(self._available, held)
                    self._held[group] = (held, {})
                    out += self._gcs.groups.prepared(group, self._node_id)
        self._groups_do(out)

    def _commit(self, group: bytes) -> None:
        with self._lock:
            entry = self._gcs.groups.groups[group]
            renamed: dict = {}
            for index, bundle in enumerate(entry.spec.bundles):
                resources.add(renamed, resources.bundle_resources(group.hex(), index, bundle))
            held, _ = self._held[group]
            self._held[group] = (held, renamed)
            resources.add(self._total, renamed)
            resources.add(self._available, renamed)

    def _return(self, group: bytes) -> None:
        why = "its placement group was removed"
        with self._lock:
            self._preparing.pop(group, None)
            ready = self._ready_refs.pop(group, [])
            hosts = [h for h in self._hosts.values() if h.instance is not None
                     and (placement(h.options.scheduling_strategy) or (None,))[0] == group]
        for h in hosts:
            self._mark_dead(h, ended_error(h.meta.class_name, h.id, why))
        for ref, _ in ready:
            self._set(ref, error=_removed(group))
        with self._lock:
            held, renamed = self._held.pop(group, ({}, {}))
            for k in renamed:
                self._total.pop(k, None)
                self._available.pop(k, None)
            resources.add(self._available, held)
        self._groups_retry()


def _removed(group: bytes, what: str = "ready()") -> TaskPlacementGroupRemoved:
    return TaskPlacementGroupRemoved(f"{what} cannot run: its placement group {group.hex()} "
                                     "was removed. Create a new placement group and schedule "
                                     "into that one.")
