"""The GCS's placement groups: a pure state machine (no I/O, no clock).

    create ──► PENDING ──place_bundles fits──► (each node: Prepare) ──every node Prepared──►
                  ▲  │                                    CREATED (each node: Commit)
                  │  └── does not fit: stays PENDING, Warn once; tried again when a node
                  │      joins or a group lets go of its bundles
                  └── a node holding a bundle left: the other nodes Return theirs, placed again
    remove (or its job ends, unless detached) ──► REMOVED (each node holding bundles: Return)

Two-phase reservation, all bundles or none: the GCS picks the nodes (placement.place_bundles,
from totals less what other groups hold), each chosen node's scheduler holds its bundles at
once when they are free (Prepare, queued there until then; Prepared back), and only when
every node holds its part are they committed (Commit: the bundles become resources of their
own names on their node) and the group is CREATED. A group spanning several nodes holds its
first nodes' part while it waits for the others, so such groups prepare one at a time (the
`spanning` token): two could otherwise each hold what the other waits for. A group on one
node has nothing to wait for elsewhere and prepares at once.

Events return instructions for the service (service.py):
    Prepare(node, group, {index: bundle})   Commit(node, group)   Return(node, group)
    Created(group)   the actors waiting for it may be placed
    Removed(group)   what runs in it ends for good
    Warn(group, text)   once per group: it cannot be placed on the cluster as it is

`state()` gives PlacementGroupRecords. Given a Storage, every change of a group is written
through (table "placement_groups": group id -> pickled (spec, state, nodes)) and
`Groups.load(storage)` rebuilds the table: a CREATED group keeps its nodes, a PENDING one
is placed afresh by the next retry.
"""
from __future__ import annotations

import pickle
from collections import deque
from typing import Any, NamedTuple

from .._core.records import PlacementGroupRecord
from .._resources import add, describe
from .placement import place_bundles

LOG_SIZE = 256


class Prepare(NamedTuple):
    node_id: bytes
    group: bytes
    bundles: dict


class Commit(NamedTuple):
    node_id: bytes
    group: bytes


class Return(NamedTuple):
    node_id: bytes
    group: bytes
    removed: bool = True       # False: the group is placed again (a node of it left)


class Created(NamedTuple):
    group: bytes


class Removed(NamedTuple):
    group: bytes


class Warn(NamedTuple):
    group: bytes
    text: str


class GroupSpec(NamedTuple):
    """What a driver asks for (messages.CreatePlacementGroup carries it)."""
    group_id: bytes
    bundles: tuple             # of dicts {resource: amount}
    strategy: str
    name: str
    namespace: str
    detached: bool
    job_id: bytes


class GroupEntry:
    __slots__ = ("spec", "state", "nodes", "waiting", "warned")

    def __init__(self, spec: GroupSpec):
        self.spec = spec
        self.state = "PENDING"              # PENDING | CREATED | REMOVED
        self.nodes: list | None = None      # node id per bundle, once placed
        self.waiting: set = set()           # nodes not yet holding their part
        self.warned = False


class Groups:
    def __init__(self, storage: Any = None) -> None:
        self.storage = storage                # written through when given (tables.py's)
        self.groups: dict[bytes, GroupEntry] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self.spanning: bytes | None = None  # the group spanning nodes that is preparing
        self.log: deque = deque(maxlen=LOG_SIZE)

    # -- events ----------------------------------------------------------------------
    def create(self, spec: GroupSpec, nodes: Any) -> tuple[str | None, list]:
        """(error, instructions): an error when the id or the name is taken."""
        if spec.group_id in self.groups:
            return f"A placement group with the id {spec.group_id.hex()} exists already.", []
        if spec.name:
            key = (spec.namespace, spec.name)
            if key in self.names:
                return (f"A placement group named {spec.name!r} exists already in namespace "
                        f"{spec.namespace!r}: remove it first, or choose another name."), []
            self.names[key] = spec.group_id
        g = self.groups[spec.group_id] = GroupEntry(spec)
        self.log.append(("create", spec.group_id, spec.strategy, len(spec.bundles)))
        out = self._try(g, nodes)
        self._save(g)
        return None, out

    def prepared(self, group: bytes, node_id: bytes) -> list:
        """`node_id` holds its part of `group`: once every node does, they commit."""
        g = self.groups.get(group)
        if g is None or g.state != "PENDING" or node_id not in g.waiting:
            return []  # removed or placed again since: the node was told to Return
        g.waiting.discard(node_id)
        if g.waiting:
            return []
        g.state = "CREATED"
        self._save(g)
        self.log.append(("created", group))
        out: list = [Commit(n, group) for n in _distinct(g.nodes)] + [Created(group)]
        if self.spanning == group:
            self.spanning = None
        return out

    def remove(self, group: bytes, nodes: Any) -> list:
        g = self.groups.get(group)
        if g is None or g.state == "REMOVED":
            return []
        self.log.append(("remove", group))
        out = self._let_go(g) + [Removed(group)]
        g.state = "REMOVED"
        key = (g.spec.namespace, g.spec.name)
        if g.spec.name and self.names.get(key) == group:
            del self.names[key]
        self._save(g)
        return out + self.retry(nodes)

    def job_finished(self, job_id: bytes, nodes: Any) -> list:
        """A driver left: its groups go with it, unless detached."""
        out: list = []
        for group, g in list(self.groups.items()):
            if g.spec.job_id == job_id and not g.spec.detached:
                out += self.remove(group, nodes)
        return out

    def node_lost(self, node_id: bytes, nodes: Any) -> list:
        """A node left: every group with a bundle there is placed again (the other nodes
        return their parts first)."""
        out: list = []
        for g in self.groups.values():
            if g.state != "REMOVED" and g.nodes is not None and node_id in g.nodes:
                self.log.append(("rescheduling", g.spec.group_id))
                out += [x._replace(removed=False) for x in self._let_go(g) if x.node_id != node_id]
                g.state = "PENDING"
                self._save(g)
        return out + self.retry(nodes)

    def retry(self, nodes: Any) -> list:
        """Tries the pending groups not yet placed, oldest first."""
        out: list = []
        for g in list(self.groups.values()):
            if g.state == "PENDING" and g.nodes is None:
                out += self._try(g, nodes)
        return out

    # -- storage ---------------------------------------------------------------------
    def _save(self, g: GroupEntry) -> None:
        if self.storage is not None:
            self.storage.put("placement_groups", g.spec.group_id,
                             pickle.dumps((g.spec, g.state, g.nodes), 5))

    @classmethod
    def load(cls, storage: Any) -> "Groups":
        """The groups as `storage` holds them (a GCS coming back after a restart)."""
        t = cls(storage)
        for group, value in storage.scan("placement_groups"):
            spec, state, nodes = pickle.loads(value)
            g = t.groups[group] = GroupEntry(spec)
            g.state = state
            g.nodes = nodes if state == "CREATED" else None
            if spec.name and state != "REMOVED":
                t.names[(spec.namespace, spec.name)] = group
        return t

    # -- queries ---------------------------------------------------------------------
    def lookup(self, group: bytes | None, name: str | None, namespace: str) -> GroupEntry | None:
        if group is None:
            group = self.names.get((namespace, name or ""))
        return self.groups.get(group) if group is not None else None

    def node_of(self, group: bytes, index: int, demand: dict) -> bytes | None:
        """Where an actor in bundle `index` (-1: any) of a CREATED group goes."""
        g = self.groups.get(group)
        if g is None or g.state != "CREATED":
            return None
        if index >= 0:
            return g.nodes[index] if index < len(g.nodes) else None
        return g.nodes[0]

    def state(self) -> tuple:
        return tuple(_record(g) for g in self.groups.values())

    def statistics(self) -> dict:
        states: dict[str, int] = {}
        for g in self.groups.values():
            states[g.state] = states.get(g.state, 0) + 1
        return {"placement_groups": states}

    # -- the decision ----------------------------------------------------------------
    def _held(self) -> dict:
        held: dict = {}
        for g in self.groups.values():
            if g.nodes is not None:
                for node_id, bundle in zip(g.nodes, g.spec.bundles):
                    add(held.setdefault(node_id, {}), bundle)
        return held

    def _try(self, g: GroupEntry, nodes: Any) -> list:
        nodes = list(nodes)
        placed = place_bundles(nodes, self._held(), list(g.spec.bundles), g.spec.strategy)
        if placed is None:
            if g.warned:
                return []
            g.warned = True
            return [Warn(g.spec.group_id, _infeasible(g.spec, nodes))]
        spans = len(set(placed)) > 1
        if spans and self.spanning not in (None, g.spec.group_id):
            return []  # tried again once the spanning group that prepares is done
        if spans:
            self.spanning = g.spec.group_id
        g.nodes, g.waiting = placed, set(placed)
        self._save(g)
        self.log.append(("prepare", g.spec.group_id, tuple(placed)))
        out = []
        for node_id in _distinct(placed):
            part = {i: b for i, (n, b) in enumerate(zip(placed, g.spec.bundles)) if n == node_id}
            out.append(Prepare(node_id, g.spec.group_id, part))
        return out

    def _let_go(self, g: GroupEntry) -> list:
        """Every node given a part of `g` returns it; `g` is unplaced."""
        out = [Return(n, g.spec.group_id) for n in _distinct(g.nodes or ())]
        g.nodes, g.waiting = None, set()
        if self.spanning == g.spec.group_id:
            self.spanning = None
        return out


def _distinct(nodes: Any) -> list:
    return list(dict.fromkeys(nodes))


def _infeasible(spec: GroupSpec, nodes: list) -> str:
    alive = [n for n in nodes if n.alive]
    named = {k for b in spec.bundles for k in b}
    have = "; ".join(describe({k: n.resources.get(k, 0.0) for k in sorted(named)})
                     for n in alive) or "no node is alive"
    return (f"The placement group {spec.name or spec.group_id.hex()} ({spec.strategy}, bundles "
            f"{', '.join(describe(b) for b in spec.bundles)}) cannot be placed on this cluster "
            f"now (what each node has of that: {have}). It stays pending until it fits: add nodes or resources, "
            "remove other placement groups, or ask for less.")


def _record(g: GroupEntry) -> PlacementGroupRecord:
    return PlacementGroupRecord(
        g.spec.group_id.hex(), g.spec.name, g.spec.namespace, g.state, g.spec.strategy,
        tuple(dict(b) for b in g.spec.bundles),
        tuple(n.hex() for n in g.nodes) if g.nodes is not None else (),
        g.spec.detached, g.spec.job_id.hex())
